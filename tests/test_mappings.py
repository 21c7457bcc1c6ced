"""Thumbprint mappings: CRUD and order, one-click creation from a certificate, the lint (per-tenant key manager
users, handler lines), the IS handler line setting, the explain page (with a tenant modelled), and the generated
deployment.toml parsed back."""
from __future__ import annotations

import html
import re
import time
import tomllib
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from portal.extensions import db as _db
from portal.models import AuditEvent, Setting, Tenant
from portal.models.certificate import ThumbprintMapping
from portal.services.certificates import mapping_lint, mappings, service as certificates
from portal.services.certificates.mappings import MappingInput
from portal.services.context import Actor
from simulators.pki import ca, issue, leaf, name

ROOT_DN = "CN=Test Root CA, OU=IAM, O=WSO2, C=LK"
T1 = ":".join(["AB"] * 32)
T2 = ":".join(["CD"] * 32)


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def pki(app):
    """A CA, API Manager's certificate under it and IS 7's, stored in the portal."""
    root = ca()
    apim, is7 = leaf("apim.example.com", root), leaf("is.example.com", root)
    with app.app_context():
        certificates.upload_certificate("ca", root.pem, Actor.cli())
        stored = certificates.upload_certificate("apim", apim.pem, Actor.cli()).stored[0]
        certificates.upload_certificate("is", is7.pem, Actor.cli())
        return {"root": root, "apim": apim, "is": is7, "apim_id": stored.id,
                "apim_thumbprint": stored.thumbprint}


def _add(app, kind: str, issuer: str, thumb: str = "", users: tuple[str, ...] = (), system_user: str = "") -> int:
    with app.app_context():
        return mappings.create_mapping(kind, MappingInput(issuer, thumb, users, system_user), Actor.cli()).id


def _stored(app, kind: str, issuer: str, thumb: str, users: tuple[str, ...] = (), system_user: str = "") -> int:
    """A mapping row as stored before thumbprints were normalised on save (the lint still reads such rows)."""
    with app.app_context():
        last = _db.session.execute(sa.select(sa.func.max(ThumbprintMapping.position)).where(
            ThumbprintMapping.kind == kind)).scalar()
        row = ThumbprintMapping(kind=kind, position=(last or 0) + 1, trusted_issuer=issuer, cert_thumbprint=thumb,
                                allowed_usernames=list(users), allowed_system_user=system_user)
        _db.session.add(row)
        _db.session.commit()
        return row.id


def _tenants(app, pairs) -> None:
    """Registry rows with these (owner_username, domain); owner None for an owner-less tenant."""
    rows = [{"tenant_id": f"T{i}", "tenant_key": domain, "display_name": domain, "name_key": domain,
             "domain": domain, "owner_username": owner, "client_id": f"client-{i}", "client_secret": "s3cret-x",
             "idp_type": "LDAP", "idp_settings": {}, "support_algorithm": "HS256"}
            for i, (owner, domain) in enumerate(pairs)]
    with app.app_context():
        _db.session.execute(sa.insert(Tenant), rows)
        _db.session.commit()


def _set_line(app, line: str) -> None:
    with app.app_context():
        mappings.set_handler_line(line, Actor.cli())


def _order(db, kind: str = "user") -> list[int]:
    return list(db.session.execute(sa.select(ThumbprintMapping.id).where(ThumbprintMapping.kind == kind).order_by(
        ThumbprintMapping.position, ThumbprintMapping.id)).scalars())


# ---------------------------------------------------------------------------------------------------------------
# CRUD, order, roles.

def test_create_edit_delete_through_the_pages(admin_client, db):
    response = admin_client.post("/certificates/mappings/new/user", data={
        "trusted_issuer": ROOT_DN, "cert_thumbprint": T1, "allowed_usernames": "admin\nkim@abc.com, Admin"})
    assert response.status_code == 302
    mapping = db.session.execute(sa.select(ThumbprintMapping)).scalar_one()
    assert (mapping.kind, mapping.trusted_issuer, mapping.cert_thumbprint) == ("user", ROOT_DN, T1)
    assert mapping.allowed_usernames == ["admin", "kim@abc.com"]  # duplicates ignoring case dropped
    page = text(admin_client.get("/certificates/mappings"))
    assert ROOT_DN in page and "kim@abc.com" in page
    response = admin_client.post(f"/certificates/mappings/{mapping.id}/edit", data={
        "trusted_issuer": ROOT_DN, "cert_thumbprint": T2, "allowed_usernames": "svc"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(ThumbprintMapping, mapping.id).cert_thumbprint == T2
    assert admin_client.post(f"/certificates/mappings/{mapping.id}/delete").status_code == 302
    assert db.session.execute(sa.select(ThumbprintMapping)).first() is None
    actions = list(db.session.execute(sa.select(AuditEvent.action).where(
        AuditEvent.object_type == "thumbprint_mapping").order_by(AuditEvent.id)).scalars())
    assert actions == ["thumbprint_mapping.create", "thumbprint_mapping.update", "thumbprint_mapping.delete"]


def test_system_mapping_page(admin_client, db):
    response = admin_client.post("/certificates/mappings/new/system", data={
        "trusted_issuer": ROOT_DN, "cert_thumbprint": "*", "allowed_system_user": "svc@abc.com"})
    assert response.status_code == 302
    mapping = db.session.execute(sa.select(ThumbprintMapping)).scalar_one()
    assert (mapping.kind, mapping.allowed_system_user, mapping.allowed_usernames) == ("system", "svc@abc.com", [])
    page = admin_client.get(f"/certificates/mappings/{mapping.id}/edit").get_data(as_text=True)
    assert "allowed_system_user" in page and 'name="allowed_usernames"' not in page
    assert admin_client.get("/certificates/mappings/new/other").status_code == 404


@pytest.mark.parametrize("data, field, message", [
    ({"trusted_issuer": "  "}, "trusted_issuer", "Enter the issuer DN"),
    ({"trusted_issuer": "CN=x\x01"}, "trusted_issuer", "Use one line"),
    ({"trusted_issuer": ROOT_DN, "cert_thumbprint": "not-hex!"}, "cert_thumbprint", "Use the SHA-256 thumbprint"),
    ({"trusted_issuer": ROOT_DN, "allowed_usernames": "x" * 300}, "allowed_usernames", "at most 255 characters"),
])
def test_mapping_validation_errors_at_the_field(admin_client, db, data, field, message):
    response = admin_client.post("/certificates/mappings/new/user", data=data)
    assert response.status_code == 400
    assert message in text(response)
    assert db.session.execute(sa.select(ThumbprintMapping)).first() is None


def test_move_up_and_down_keeps_the_order(app, admin_client, db):
    first, second, third = (_add(app, "user", ROOT_DN, t) for t in (T1, T2, "*"))
    other_kind = _add(app, "system", ROOT_DN, T1, system_user="svc")
    assert _order(db) == [first, second, third]
    admin_client.post(f"/certificates/mappings/{third}/move-up")
    assert _order(db) == [first, third, second]
    admin_client.post(f"/certificates/mappings/{first}/move-down")
    assert _order(db) == [third, first, second]
    admin_client.post(f"/certificates/mappings/{third}/move-up")  # already first: nothing changes
    admin_client.post(f"/certificates/mappings/{second}/move-down")  # already last
    assert _order(db) == [third, first, second]
    assert _order(db, "system") == [other_kind]
    moves = db.session.execute(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "thumbprint_mapping.move")).scalar_one()
    assert moves == 2
    with app.app_context():
        user_rules = mappings.rules("user")
    assert [r.cert_thumbprint for r in user_rules] == ["*", T1, T2]
    assert admin_client.post("/certificates/mappings/999/move-up").status_code == 404


def test_readers_and_writers(app, pki, operator_client, auditor_client):
    mapping_id = _add(app, "user", ROOT_DN, T1, ("admin",))
    for client in (operator_client, auditor_client):
        for url in ("/certificates/mappings", "/certificates/explain", "/certificates/config",
                    "/certificates/config/download", "/certificates/truststores"):
            assert client.get(url).status_code == 200, url
        page = client.get("/certificates/mappings").get_data(as_text=True)
        assert "Move up" not in page and "Add user mapping" not in page
        assert client.get("/certificates/mappings/new/user").status_code == 403
        assert client.get(f"/certificates/mappings/{mapping_id}/edit").status_code == 403
        for action in ("delete", "move-up", "move-down"):
            assert client.post(f"/certificates/mappings/{mapping_id}/{action}").status_code == 403
        assert client.post("/certificates/mappings/handler-line", data={"line": "backport"}).status_code == 403
        assert "IS handler line" in page and 'name="line"' not in page


# ---------------------------------------------------------------------------------------------------------------
# From a certificate, in one click.

def test_create_mapping_from_a_certificate(admin_client, pki, db):
    detail = text(admin_client.get(f"/certificates/{pki['apim_id']}"))
    link = f"/certificates/mappings/new/user?certificate={pki['apim_id']}"
    assert link in detail
    form = text(admin_client.get(link))
    assert f'value="{ROOT_DN}"' in form and f'value="{pki["apim_thumbprint"]}"' in form
    assert ">\r\n*</textarea>" in form  # every tenant's key manager user: <admin>@<domain>
    assert "allowed_username is prefilled with \"*\": API Manager's auto-configured key manager" in form
    assert "one user per tenant" in form
    system_form = text(admin_client.get(f"/certificates/mappings/new/system?certificate={pki['apim_id']}"))
    assert re.search(r'<input[^>]*name="allowed_system_user"[^>]*value="admin"', system_form)
    assert "allowed_system_user is prefilled with admin" in system_form
    assert "prefilled" not in text(admin_client.get("/certificates/mappings/new/user"))
    assert admin_client.get("/certificates/mappings/new/user?certificate=999").status_code == 404


# ---------------------------------------------------------------------------------------------------------------
# Lint.

def _findings(app) -> tuple[dict[int, list[str]], list[str]]:
    with app.app_context():
        report = mapping_lint.lint()
    found = {item.mapping.id: [f"{f.level}: {f.message}" for f in item.findings]
             for item in report.user + report.system}
    return found, [f"{f.level}: {f.message}" for f in report.general]


def _has(messages: list[str], fragment: str) -> bool:
    return any(fragment in m for m in messages)


def test_lint_finds_each_problem(app, pki):
    _tenants(app, [("admin", "acme.com"), ("kim", "abc.com")])
    apim = pki["apim_thumbprint"]
    good = _add(app, "user", ROOT_DN, apim, ("*",))
    blank = _add(app, "user", ROOT_DN, "", ())
    star_issuer = _add(app, "user", "*", apim, ("admin",))
    no_colons = _stored(app, "user", ROOT_DN, apim.replace(":", ""), ("admin",))
    sha1 = _stored(app, "user", ROOT_DN, ":".join(["AB"] * 20), ("admin",))
    wildcard = _add(app, "user", ROOT_DN.replace(", ", ","), "*", ("*",))
    unknown_issuer = _add(app, "user", "CN=Nobody, O=Elsewhere", T1, ("admin",))
    lacks_km = _add(app, "user", "C=LK, O=WSO2, OU=IAM, CN=Test Root CA", "*", ("admin", "kim@abc.com"))
    shadowed = _stored(app, "user", ROOT_DN, apim.lower(), ("other",))
    sys_blank = _add(app, "system", ROOT_DN, T2, system_user="")
    sys_star = _add(app, "system", ROOT_DN, T1, system_user="*")
    sys_lower = _stored(app, "system", ROOT_DN, apim.lower(), system_user="admin")
    found, general = _findings(app)

    assert not any(m.startswith(("error", "warning")) for m in found[good]), found[good]
    assert _has(found[good], 'info: allowed_username contains "*"')
    assert _has(found[blank], 'cert_thumbprint is blank: IS reads it as "*"')
    assert _has(found[blank], 'allowed_username is empty: IS reads it as ["*"]')
    assert _has(found[star_issuer], 'error: trusted_issuer is "*": IS skips this mapping')
    assert _has(found[no_colons], "error: cert_thumbprint has no colons")
    assert _has(found[sha1], "error: cert_thumbprint has 40 hex digits")
    assert _has(found[wildcard], 'warning: cert_thumbprint "*"')
    assert _has(found[unknown_issuer], "trusted_issuer matches the issuer or subject of no uploaded certificate")
    assert _has(found[unknown_issuer], "info: No uploaded certificate has this thumbprint.")
    assert not _has(found[unknown_issuer], "key manager")  # it does not cover API Manager's certificate
    assert _has(found[lacks_km], "warning: allowed_username lacks key manager users (this mapping covers API "
                                 "Manager's certificate): 1 of 2 current tenants' key manager users would get a 401: "
                                 "admin@acme.com")
    assert _has(found[shadowed], "Never chosen: #1 has the same issuer and thumbprint")
    assert _has(found[shadowed], "2 of 2 current tenants' key manager users would get a 401: kim@abc.com, "
                                 "admin@acme.com")  # in domain order
    assert _has(found[shadowed], "warning: cert_thumbprint has lower-case letters: master ignores case")
    assert _has(found[sys_blank], 'allowed_system_user is blank: IS reads it as "*"')
    assert _has(found[sys_star], 'allowed_system_user "*"')
    assert _has(found[sys_lower], "info: cert_thumbprint has lower-case letters: both handler lines ignore case")
    assert _has(general, "info: API Manager certificate 'apim.example.com': user mapping #1 lets every tenant's "
                         'key manager user in (allowed_username "*"). IS also requires each admin to exist')
    assert not _has(general, "no system mapping covers it")  # sys_lower covers it (system: case ignored)


def test_the_backport_line_makes_lower_case_user_thumbprints_an_error(app, pki):
    apim = pki["apim_thumbprint"]
    lower = _stored(app, "user", ROOT_DN, apim.lower(), ("*",))
    sys_lower = _stored(app, "system", ROOT_DN, apim.lower(), system_user="admin")
    found, general = _findings(app)
    assert _has(found[lower], "warning: cert_thumbprint has lower-case letters: master ignores case")
    assert _has(general, "info: API Manager certificate 'apim.example.com': user mapping #1 lets every")
    _set_line(app, "backport")
    found, general = _findings(app)
    assert _has(found[lower], "error: cert_thumbprint has lower-case letters: the 1.8.x/1.11.x backport compares "
                              "user-mapping thumbprints case-sensitively")
    assert _has(found[sys_lower], "info: cert_thumbprint has lower-case letters: both handler lines ignore case")
    assert _has(general, "error: API Manager certificate 'apim.example.com': no user mapping applies to it")


def test_lint_matches_issuers_against_subjects_too(app, pki):
    self_signed = issue(name(("C", "LK"), ("CN", "standalone")), ca=True)
    with app.app_context():
        certificates.upload_certificate("is", self_signed.pem, Actor.cli())
    subject_only = _add(app, "system", "CN=apim.example.com, O=WSO2, C=LK", "*", system_user="svc")
    found, _ = _findings(app)
    assert not _has(found[subject_only], "matches the issuer or subject of no uploaded certificate")


def test_lint_models_every_tenants_key_manager_user(app, pki):
    """A mapping listing only "admin" rejects admin@<domain> of every tenant: the lint names the count and the first
    few; owner-less tenants have no key manager user to model."""
    _tenants(app, [("admin", f"t{i:02d}.example.com") for i in range(8)] + [(None, "ownerless.example.com")])
    _add(app, "user", ROOT_DN, pki["apim_thumbprint"], ("admin",))
    _, general = _findings(app)
    assert _has(general, "error: API Manager certificate 'apim.example.com': user mapping #1 applies; 8 of 8 current "
                         "tenants' key manager users would get a 401: admin@t00.example.com, admin@t01.example.com, "
                         "admin@t02.example.com, admin@t03.example.com, admin@t04.example.com and 3 more.")
    with app.app_context():
        mapping_id = mappings.list_mappings("user")[0].id
        mappings.update_mapping(mapping_id, MappingInput(ROOT_DN, pki["apim_thumbprint"], tuple(
            f"ADMIN@t{i:02d}.example.com" for i in range(8))), Actor.cli())
    _, general = _findings(app)
    assert _has(general, "info: API Manager certificate 'apim.example.com': user mapping #1 lists every current "
                         "tenant's key manager user (8)")
    with app.app_context():
        assert mapping_lint.lint().tenants == 8


def test_lint_reads_tenants_once_and_only_when_names_matter(app, pki):
    """One SELECT of (owner_username, domain) when the chosen mapping lists names; none when it holds "*" (a
    COUNT only). 20,000 tenants keep it fast."""
    _tenants(app, [("owner", f"d{i}.example.org") for i in range(20000)])
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        if "owner_username" in statement and "FROM tenant" in statement and "count(" not in statement.lower():
            statements.append(statement)

    with app.app_context():
        engine = _db.engine
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            star = mappings.create_mapping("user", MappingInput(ROOT_DN, pki["apim_thumbprint"], ("*",)), Actor.cli())
            report = mapping_lint.lint()
            assert statements == [] and report.tenants == 20000
            mappings.update_mapping(star.id, MappingInput(ROOT_DN, "*", ("admin",)), Actor.cli())
            started = time.perf_counter()
            report = mapping_lint.lint()
            elapsed = time.perf_counter() - started
            assert len(statements) == 1
            assert elapsed < 3.0, elapsed  # tens of milliseconds here; generous for a shared test machine
            assert any("20000 of 20000 current tenants' key manager users would get a 401" in f.message
                       for f in report.general)
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)


def test_lint_without_tenants_warns_about_new_ones(app, pki):
    _add(app, "user", ROOT_DN, pki["apim_thumbprint"], ("admin",))
    _, general = _findings(app)
    assert _has(general, "warning: API Manager certificate 'apim.example.com': user mapping #1 lists only admin; "
                         "there are no tenants yet, but each new tenant's key manager calls as <admin>@<tenant domain>")
    assert _has(general, "warning: API Manager certificate 'apim.example.com': no system mapping covers it")


def test_lint_without_mappings_or_apim_certificate(app):
    found, general = _findings(app)
    assert found == {} and _has(general, "There are no mappings yet")
    _tenants(app, [("kim", "abc.com"), ("lee", "xyz.com")])
    lone = _add(app, "user", ROOT_DN, T1, ("kim@abc.com",))
    found, _ = _findings(app)
    assert _has(found[lone], "no API Manager certificate is uploaded to check which mapping applies): 1 of 2 "
                             "current tenants' key manager users would get a 401: lee@xyz.com")


# ---------------------------------------------------------------------------------------------------------------
# The IS handler line setting.

def test_handler_line_setting_form_and_audit(app, pki, admin_client, db):
    page = text(admin_client.get("/certificates/mappings"))
    assert "Now: <strong>master (IS 7.x with auth-rest 1.9.38+)</strong>" in page
    assert '<option selected value="master">master (IS 7.x with auth-rest 1.9.38+)</option>' in page
    assert '<option value="backport">1.8.x/1.11.x backport</option>' in page
    assert 'name="csrf_token"' in page
    response = admin_client.post("/certificates/mappings/handler-line", data={"line": "backport"},
                                 follow_redirects=True)
    assert "IS handler line: 1.8.x/1.11.x backport." in text(response)
    assert db.session.get(Setting, mappings.HANDLER_LINE_KEY).value == "backport"
    assert "Now: <strong>1.8.x/1.11.x backport</strong>" in text(response)
    response = admin_client.post("/certificates/mappings/handler-line", data={"line": "1.9.x"})
    assert response.status_code == 400 and "Choose master (IS 7.x with auth-rest 1.9.38+) or the 1.8.x/1.11.x " \
        "backport." in text(response)
    admin_client.post("/certificates/mappings/handler-line", data={"line": "backport"})  # unchanged: no event
    events = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "setting.update")).scalars().all()
    assert [e.changes for e in events] == [{"value": {"before": "master", "after": "backport"}}]
    assert events[0].object_id == mappings.HANDLER_LINE_KEY


def test_handler_line_form_needs_csrf(app, make_app):
    csrf_app = make_app(WTF_CSRF_ENABLED=True)
    from tests.fixtures.accounts import create_admin, login
    create_admin(csrf_app, "csrf-admin")
    client = csrf_app.test_client()
    login(client, "csrf-admin")
    response = client.post("/certificates/mappings/handler-line", data={"line": "backport"})
    assert response.status_code == 400
    with csrf_app.app_context():
        assert mappings.handler_line() == "master"


# ---------------------------------------------------------------------------------------------------------------
# Explain a call.

def _explain(client, **args):
    return client.get("/certificates/explain?" + urlencode(args))


def test_explain_an_uploaded_certificate(app, pki, auditor_client):
    _add(app, "user", ROOT_DN, "*", ("bob",))
    _add(app, "user", ROOT_DN, pki["apim_thumbprint"], ("admin",))
    _add(app, "system", ROOT_DN, pki["apim_thumbprint"], system_user="*")
    page = text(_explain(auditor_client, certificate=pki["apim_id"], user="ADMIN"))
    assert "IS lets this call in" in page and "User mapping #2 lets 'ADMIN' in." in page
    assert "user mapping #2 chosen: its thumbprint equals the certificate's." in page
    assert "IS also requires 'ADMIN' to exist in its tenant (carbon.super)" in page
    page = text(_explain(auditor_client, certificate=pki["apim_id"], user="kim@abc.com"))
    assert "IS answers 401" in page and "'kim@abc.com' is not in its allowed_username (admin)" in page
    page = text(_explain(auditor_client, certificate=pki["apim_id"]))
    assert "System mapping #1 lets the call in with no user" in page


def test_explain_models_a_tenants_key_manager(app, pki, auditor_client):
    _tenants(app, [("admin", "acme.com"), (None, "ownerless.com")])
    limited = _add(app, "user", ROOT_DN, pki["apim_thumbprint"], ("admin",))
    page = text(_explain(auditor_client, certificate=pki["apim_id"], tenant="ACME.com"))
    assert "IS answers 401" in page and "'admin@acme.com' is not in its allowed_username (admin)" in page
    assert "Modelled as API Manager's auto-configured key manager of acme.com: it calls IS with " \
           "WSO2-Identity-User: admin@acme.com" in page
    assert "<dt>Tenant modelled</dt><dd><code>acme.com</code></dd>" in page
    with app.app_context():
        mappings.update_mapping(limited, MappingInput(ROOT_DN, pki["apim_thumbprint"], ("*",)), Actor.cli())
    page = text(_explain(auditor_client, certificate=pki["apim_id"], tenant="acme.com"))
    assert "IS lets this call in" in page and "User mapping #1 lets 'admin@acme.com' in." in page
    assert "On the master line IS also requires 'admin@acme.com' to exist in its tenant (acme.com)" in page
    assert "master (IS 7.x with auth-rest 1.9.38+)" in page
    _set_line(app, "backport")
    page = text(_explain(auditor_client, certificate=pki["apim_id"], tenant="acme.com"))
    assert "The 1.8.x/1.11.x backport does not check that 'admin@acme.com' exists" in page
    assert "On the master line" not in page and "<dd>1.8.x/1.11.x backport</dd>" in page


@pytest.mark.parametrize("args, message", [
    ({"tenant": "nowhere.com"}, "No tenant with the domain 'nowhere.com' in the registry."),
    ({"tenant": "ownerless.com"}, "This tenant has no owner: API Manager's key manager would call IS as"),
    ({"tenant": "acme.com", "user": "admin"}, "Give either a WSO2-Identity-User or a tenant, not both."),
])
def test_explain_tenant_errors(app, pki, admin_client, args, message):
    _tenants(app, [("admin", "acme.com"), (None, "ownerless.com")])
    response = _explain(admin_client, certificate=pki["apim_id"], **args)
    assert response.status_code == 400 and message in text(response)


def test_explain_follows_the_handler_line(app, pki, admin_client):
    _stored(app, "user", ROOT_DN, pki["apim_thumbprint"].lower(), ("admin",))
    assert "IS lets this call in" in text(_explain(admin_client, certificate=pki["apim_id"], user="admin"))
    _set_line(app, "backport")
    page = text(_explain(admin_client, certificate=pki["apim_id"], user="admin"))
    assert "IS answers 401" in page and "none has the certificate's thumbprint" in page


def test_explain_a_pasted_pem(app, pki, admin_client):
    _add(app, "user", ROOT_DN, "*", ("bob",))
    stranger = leaf("stranger", ca("Other CA"))
    page = text(_explain(admin_client, pem=stranger.pem.decode(), user="bob"))
    assert "IS answers 401" in page and "No user mapping has a trusted_issuer matching" in page
    assert "CN=Other CA, OU=IAM, O=WSO2, C=LK" in page
    page = text(_explain(admin_client, pem=(pki["is"].pem + pki["root"].pem).decode(), user="bob"))
    assert "User mapping #1 lets 'bob' in." in page and "IS reads only the first" in page


@pytest.mark.parametrize("args, message", [
    ({"user": "bob"}, "Choose an uploaded certificate or paste a PEM certificate."),
    ({"pem": "garbage"}, "This is not a certificate"),
    ({"pem": "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----"}, "This file holds a private key."),
    ({"certificate": "999"}, "No certificate with id 999."),
])
def test_explain_errors(admin_client, args, message):
    response = _explain(admin_client, **args)
    assert response.status_code == 400
    assert message in text(response)


def test_explain_form_without_input_just_shows(admin_client):
    response = admin_client.get("/certificates/explain")
    assert response.status_code == 200 and "IS answers" not in text(response)


# ---------------------------------------------------------------------------------------------------------------
# deployment.toml.

TRICKY = [
    'CN=Example Issuing CA, O="Example Corp, Inc.", C=US',
    'CN=back\\slash "quoted", O=x',
    "CN=Łódź, O=Müller & Söhne, EMAILADDRESS=ca@wso2.com",
]


def test_generated_toml_parses_back(app, admin_client):
    _set_line(app, "backport")  # the only line that reads log_client_cert_info
    _add(app, "user", TRICKY[0], T1, ("admin", "kim@abc.com"))
    _add(app, "user", TRICKY[1], "", ())
    _add(app, "system", TRICKY[2], "*", system_user="svc")
    _add(app, "system", TRICKY[0], T2, system_user="")
    with app.app_context():
        parsed = tomllib.loads(mappings.deployment_toml())
    section = parsed["client_certificate_based_authentication"]
    assert section["enable"] is True and "log_client_cert_info" not in section
    assert section["user_thumbprint_mapping"] == [
        {"trusted_issuer": TRICKY[0], "cert_thumbprint": T1, "allowed_username": ["admin", "kim@abc.com"]},
        {"trusted_issuer": TRICKY[1], "cert_thumbprint": "", "allowed_username": []},
    ]
    assert section["system_thumbprint_mapping"] == [
        {"trusted_issuer": TRICKY[2], "cert_thumbprint": "*", "allowed_system_user": "svc"},
        {"trusted_issuer": TRICKY[0], "cert_thumbprint": T2, "allowed_system_user": ""},
    ]
    page = admin_client.get("/certificates/config?log_client_cert_info=y")
    assert "[[client_certificate_based_authentication.user_thumbprint_mapping]]" in text(page)
    download = admin_client.get("/certificates/config/download?log_client_cert_info=y")
    assert download.mimetype == "text/plain"
    assert download.headers["Content-Disposition"] == \
        'attachment; filename="is7-client-certificate-authentication.toml"'
    downloaded = tomllib.loads(download.get_data(as_text=True))
    assert downloaded["client_certificate_based_authentication"]["log_client_cert_info"] is True
    assert downloaded["client_certificate_based_authentication"]["user_thumbprint_mapping"] == \
        section["user_thumbprint_mapping"]


def test_toml_follows_the_order(app, admin_client):
    first, second = _add(app, "user", ROOT_DN, T1, ("a",)), _add(app, "user", ROOT_DN, T2, ("b",))
    admin_client.post(f"/certificates/mappings/{second}/move-up")
    with app.app_context():
        users = tomllib.loads(mappings.deployment_toml())["client_certificate_based_authentication"][
            "user_thumbprint_mapping"]
    assert [u["allowed_username"] for u in users] == [["b"], ["a"]]
    assert first != second


def test_empty_toml_still_enables(app):
    with app.app_context():
        parsed = tomllib.loads(mappings.deployment_toml(log_client_cert_info=True, line="backport"))
        on_master = tomllib.loads(mappings.deployment_toml(log_client_cert_info=True))
    assert parsed == {"client_certificate_based_authentication": {"enable": True, "log_client_cert_info": True}}
    assert on_master == {"client_certificate_based_authentication": {"enable": True}}


def test_toml_follows_the_handler_line_and_the_page_says_why(app, admin_client):
    _add(app, "user", ROOT_DN, T1, ("*",))

    def block(query: str = "") -> tuple[str, str]:
        page = text(admin_client.get("/certificates/config" + query))
        return page, re.search(r'<pre class="pem">(.*?)</pre>', page, re.S).group(1)

    page, toml = block("?log_client_cert_info=y")
    assert "log_client_cert_info is left out: the master handler line (auth-rest 1.9.38+) never reads " \
           "LogClientCertInfoEnabled" in page
    assert "enable = true" in toml and "log_client_cert_info" not in toml
    download = tomllib.loads(admin_client.get("/certificates/config/download?log_client_cert_info=y")
                             .get_data(as_text=True))
    assert download["client_certificate_based_authentication"]["enable"] is True
    assert "log_client_cert_info" not in download["client_certificate_based_authentication"]
    _set_line(app, "backport")
    page, toml = block("?log_client_cert_info=y")
    assert "The 1.8.x/1.11.x backport reads log_client_cert_info" in page
    assert "enable = true" in toml and "log_client_cert_info = true" in toml
    _, toml = block()
    assert "log_client_cert_info" not in toml and "enable = true" in toml
