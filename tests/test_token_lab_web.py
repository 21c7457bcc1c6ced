"""The tenant page's signing keys and token lab, through the web app: issue a test token, decode and validate
pasted tokens with reason, header and claims, rotate and retire keys, and who may do what."""
from __future__ import annotations

import html
import re
import time

import jwt
import pytest
import sqlalchemy as sa

from portal.models import AuditEvent, SigningKey, Tenant
from tests.test_tenants_service import ldap_body, register

HS_KEY = "k" * 20 + "0123456789abcdefghij"  # 40 bytes: enough for HS256


@pytest.fixture
def rs_tenant(app, db):
    with app.app_context():
        register(ldap_body(tenantId="acme", supportAlgorithm="RS256", signingKey=None))
    return "acme"


@pytest.fixture
def hs_tenant(app, db):
    with app.app_context():
        register(ldap_body(tenantId="weak", clientId="weak-client", clientSecret="order", supportAlgorithm="HS256",
                           signingKey=HS_KEY))
    return "weak"


def _issue(client, tenant_id: str) -> str:
    page = client.post(f"/tenants/{tenant_id}/token-lab", data={"issue": "Issue test token"})
    assert page.status_code == 200
    match = re.search(r'<textarea id="issued-token" readonly[^>]*>([^<]+)</textarea>', page.get_data(as_text=True))
    assert match, "no issued token on the page"
    return match.group(1).strip()


def _verdict(client, tenant_id: str, token: str, **extra) -> str:
    page = client.post(f"/tenants/{tenant_id}/token-lab", data={"token": token, "check": "Decode and validate",
                                                                **extra})
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    start = text.index('id="token-verdict"')
    return html.unescape(text[start:text.index("</div>", start)])


def test_issue_then_validate_shows_valid_with_claims(app, admin_client, rs_tenant):
    token = _issue(admin_client, rs_tenant)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    verdict = _verdict(admin_client, rs_tenant, token)
    assert ">valid<" in verdict and "<code class=\"reason\">ok</code>" in verdict
    assert '"TENANTID": "acme"' in verdict and f'"kid": "{header["kid"]}"' in verdict
    with app.app_context():
        events = _events(action="tenant.token_test_issue", object_id="acme")
        assert len(events) == 1 and events[0].actor == "admin-user"


def test_bearer_prefix_accepted_and_tampered_token_refused(admin_client, rs_tenant):
    token = _issue(admin_client, rs_tenant)
    assert ">valid<" in _verdict(admin_client, rs_tenant, "Bearer " + token)
    head, body, sig = token.split(".")
    forged = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(body).replace(b'"ROLE_CLIENT"', b'"ROLE_ADMIN"')).decode()
    verdict = _verdict(admin_client, rs_tenant, f"{head}.{forged}.{sig}")
    assert ">invalid<" in verdict and "bad_signature" in verdict
    assert "(unverified)" in verdict and "ROLE_ADMIN" in verdict  # claims shown, marked unverified


def test_garbage_and_wrong_audience_explained(admin_client, rs_tenant):
    assert "malformed" in _verdict(admin_client, rs_tenant, "not-a-token")
    token = _issue(admin_client, rs_tenant)
    verdict = _verdict(admin_client, rs_tenant, token, audience="another-api")
    assert ">invalid<" in verdict and "wrong_audience" in verdict


def test_empty_token_is_a_field_error(admin_client, rs_tenant):
    page = admin_client.post(f"/tenants/{rs_tenant}/token-lab", data={"token": "  ", "check": "x"})
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Paste a token to decode and validate." in text
    assert 'id="token-verdict"' not in text


def test_rotate_and_retire_from_the_page(app, admin_client, rs_tenant):
    old = _issue(admin_client, rs_tenant)
    old_kid = jwt.get_unverified_header(old)["kid"]
    response = admin_client.post(f"/tenants/{rs_tenant}/keys/rotate")
    assert response.status_code == 302 and response.headers["Location"].endswith("#keys")
    page = admin_client.get(f"/tenants/{rs_tenant}").get_data(as_text=True)
    assert "New active key" in page and 'class="key-passive"' in page
    new = _issue(admin_client, rs_tenant)
    assert jwt.get_unverified_header(new)["kid"] != old_kid
    assert ">valid<" in _verdict(admin_client, rs_tenant, old)  # passive: still validates

    response = admin_client.post(f"/tenants/{rs_tenant}/keys/{old_kid}/retire")
    assert response.status_code == 302
    assert "key_retired" in _verdict(admin_client, rs_tenant, old)
    assert ">valid<" in _verdict(admin_client, rs_tenant, new)
    with app.app_context():
        actions = [e.action for e in _events(object_id="acme")]
        assert "tenant.key_rotate" in actions and "tenant.key_retire" in actions
        statuses = sorted(k.status for k in db_keys(app, "acme"))
        assert statuses == ["active", "retired"]


def _events(**where) -> list[AuditEvent]:
    from portal.extensions import db

    return list(db.session.execute(sa.select(AuditEvent).filter_by(**where).order_by(AuditEvent.id)).scalars())


def db_keys(app, tenant_id: str) -> list[SigningKey]:
    from portal.extensions import db

    tenant = db.session.execute(sa.select(Tenant).where(Tenant.tenant_key == tenant_id)).scalar_one()
    return list(tenant.keys)


def test_retiring_the_active_key_is_refused(admin_client, rs_tenant, app):
    with app.app_context():
        kid = next(k.kid for k in db_keys(app, "acme") if k.status == "active")
    admin_client.post(f"/tenants/{rs_tenant}/keys/{kid}/retire")
    page = admin_client.get(f"/tenants/{rs_tenant}").get_data(as_text=True)
    assert "cannot be retired" in page
    with app.app_context():
        assert [k.status for k in db_keys(app, "acme")] == ["active"]


def test_hmac_key_never_shown_and_weak_secret_flagged(admin_client, hs_tenant):
    page = admin_client.get(f"/tenants/{hs_tenant}").get_data(as_text=True)
    assert HS_KEY not in page
    assert ">weak</span>" in page  # clientSecret "order", the registration guide's sample
    token = _issue(admin_client, hs_tenant)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert ">valid<" in _verdict(admin_client, hs_tenant, token)


def test_operator_may_use_the_lab_but_not_an_auditor(operator_client, auditor_client, rs_tenant):
    assert _issue(operator_client, rs_tenant)
    page = auditor_client.get(f"/tenants/{rs_tenant}").get_data(as_text=True)
    assert 'id="token-lab"' not in page and "Rotate signing key" not in page
    assert 'id="keys"' in page  # auditors see the keys, public parts only
    for path in (f"/tenants/{rs_tenant}/token-lab", f"/tenants/{rs_tenant}/keys/rotate"):
        assert auditor_client.post(path, data={"issue": "x"}).status_code == 403


def test_external_tenant_has_no_issue_button(app, admin_client, db):
    with app.app_context():
        register({"tenantId": "ext", "clientId": "ext-client", "clientSecret": "ext-client-secret-long-enough",
                  "identityProviderType": "EXTERNAL", "supportAlgorithm": "RS256",
                  "jwkSetUrl": "https://login.example.com/keys", "issuer": "https://login.example.com/",
                  "oidcSchema": {"authUrl": "https://login.example.com/authorize",
                                 "accessTokenUrl": "https://login.example.com/token", "scope": "openid"}})
    page = admin_client.get("/tenants/ext").get_data(as_text=True)
    assert 'id="token-lab"' in page and 'value="Issue test token"' not in page
    assert "Not fetched yet" in page
    response = admin_client.post("/tenants/ext/token-lab", data={"issue": "x"})
    assert "issued by its own identity provider" in html.unescape(response.get_data(as_text=True))


def test_lab_post_needs_csrf(make_app, db, rs_tenant):
    strict = make_app(WTF_CSRF_ENABLED=True)
    client = strict.test_client()
    from tests.fixtures.accounts import create_admin, csrf_token, login

    create_admin(strict, "csrf-admin")
    login(client, "csrf-admin", csrf_token=csrf_token(client))
    assert client.post("/tenants/acme/token-lab", data={"issue": "x"}).status_code == 400
    token = csrf_token(client, "/tenants/acme")
    assert client.post("/tenants/acme/token-lab", data={"issue": "x", "csrf_token": token}).status_code == 200


def test_generated_client_secret_shown_once_and_works(app, admin_client, hs_tenant):
    page = admin_client.post(f"/tenants/{hs_tenant}/client-secret")
    text = page.get_data(as_text=True)
    secret = re.search(r'id="client-secret" value="([^"]+)"', text).group(1)
    assert len(secret) >= 43 and ">weak</span>" not in text
    assert secret not in admin_client.get(f"/tenants/{hs_tenant}").get_data(as_text=True)
    for candidate, status in (("order", 401), (secret, 200)):
        response = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials"},
                                          auth=("weak-client", candidate))
        assert response.status_code == status
    assert [e.changes for e in _events(action="tenant.client_secret_generate")] == [{"clientSecret": {"changed": True}}]


def test_generated_client_secret_by_api(app, hs_tenant):
    from tests.api_helpers import make_api

    api = make_api(app)
    response = api.client.post(f"/v1/tenant/{hs_tenant}/client-secret", headers=api.headers)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    secret = response.json["clientSecret"]
    token = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials", "TENANTID": "weak"},
                                   auth=("weak-client", secret))
    assert token.status_code == 200 and token.json["token_type"] == "Bearer"
    assert api.client.get(f"/v1/tenant/{hs_tenant}", headers=api.headers).json["clientSecretWeak"] is False


# --- Issue 16 and 15: readable times, reasons in words, another tenant's token, Entra's identity claims -------------


def _hs_token(tenant_id: str, kid: str, **claims) -> str:
    """A token signed with the HS256 tenant's own key (HS_KEY), as its issuer would make it, with these claims."""
    now = int(time.time())
    body = {"iss": f"http://localhost/t/{tenant_id}", "aud": "tenant-services", "sub": "s", "TENANTID": tenant_id,
            "iat": now - 60, "nbf": now - 60, "exp": now + 3540, **claims}
    return jwt.encode(body, HS_KEY, algorithm="HS256", headers={"kid": kid})


def test_times_are_utc_with_their_age_and_the_reason_is_in_words(admin_client, hs_tenant):
    token = _issue(admin_client, hs_tenant)
    verdict = _verdict(admin_client, hs_tenant, token)
    assert ">valid<" in verdict and "The token is valid." in verdict
    assert '<code class="reason">ok</code>' in verdict  # the code stays, as detail
    assert re.search(r'<dt>Expires \(exp\)</dt>\s*<dd data-claim="exp"><time datetime="[^"]+">'
                     r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time> \((in 59 min|in 1 h)\)", verdict), verdict
    assert re.search(r'data-claim="iat"><time[^>]*>[^<]+ UTC</time> \(under a minute ago\)', verdict)
    kid = jwt.get_unverified_header(token)["kid"]
    expired = _hs_token(hs_tenant, kid, iat=int(time.time()) - 900, nbf=int(time.time()) - 900,
                        exp=int(time.time()) - 185)
    verdict = _verdict(admin_client, hs_tenant, expired)
    assert ">invalid<" in verdict and '<code class="reason">expired</code>' in verdict
    assert re.search(r"The token has expired \(exp\)\. It expired at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC "
                     r"\(3 min ago\)\.", verdict), verdict
    future = _hs_token(hs_tenant, kid, nbf=int(time.time()) + 1800)
    verdict = _verdict(admin_client, hs_tenant, future)
    assert "not_yet_valid" in verdict and re.search(r"Not before \(nbf\) is [^(]+ UTC \(in (29|30) min\)\.", verdict)


def test_another_tenants_token_is_a_warning_with_a_link_not_valid(admin_client, rs_tenant, hs_tenant):
    token = _issue(admin_client, rs_tenant)  # acme's token, pasted on weak's page
    verdict = _verdict(admin_client, hs_tenant, token)
    assert ">valid<" not in verdict and ">another tenant's token<" in verdict
    assert "This is not a token of weak. It names tenant acme and was validated against acme's own settings: " \
           "it is valid there." in verdict
    assert 'href="/tenants/acme#token-lab"' in verdict and 'data-other-tenant="acme"' in verdict
    assert "validated against tenant <code>acme</code>" in verdict
    own = _verdict(admin_client, rs_tenant, token)
    assert ">valid<" in own and "data-other-tenant" not in own


def test_identity_claims_are_shown_when_present(admin_client, hs_tenant):
    kid = jwt.get_unverified_header(_issue(admin_client, hs_tenant))["kid"]
    token = _hs_token(hs_tenant, kid, aud=["tenant-services", "api://orders"], ver="2.0", azp="0d2a8a4c-client",
                      tid="9188040d-6c67-4c5b-b112-36a304b66dad")
    verdict = _verdict(admin_client, hs_tenant, token)
    assert ">valid<" in verdict
    for label, value in (("Directory (tid)", "9188040d-6c67-4c5b-b112-36a304b66dad"), ("Token version (ver)", "2.0"),
                         ("Audience (aud)", "tenant-services, api://orders"),
                         ("Authorised party (azp)", "0d2a8a4c-client")):
        assert f"<dt>{label}</dt><dd><code>{value}</code></dd>" in verdict
    assert "Application (appid)" not in verdict  # only what the claims have
    plain = _verdict(admin_client, hs_tenant, _hs_token(hs_tenant, kid))
    assert "Directory (tid)" not in plain and "Who it is for" in plain  # the audience alone


def test_the_rule_that_decided_is_shown_when_the_verdict_names_it():
    from portal.services.tokens.service import Verdict
    from portal.web.tenants import lab_view

    decided = Verdict(False, "wrong_issuer", "acme", {}, {"iat": True, "exp": "soon", "ver": "1.0", "appid": "app-1"},
                      decided_by="The v1 issuer https://sts.windows.net/<tid>/ is not accepted: only v2.")
    result = lab_view.present(decided, "ACME")
    assert (result.word, result.badge, result.other_tenant) == ("invalid", "state-off", None)
    assert result.decided_by.startswith("The v1 issuer") and result.explanation == decided.message
    assert [(t.claim, t.at) for t in result.times] == [("exp", None), ("iat", None)]  # not NumericDates: raw
    assert result.identity == [("Token version (ver)", "1.0"), ("Application (appid)", "app-1")]
    assert lab_view.present(Verdict(True, "ok", "acme"), "acme").decided_by is None
