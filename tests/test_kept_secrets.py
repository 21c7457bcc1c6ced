"""Secrets kept across a failed or tested submission of the register and edit forms (issue 16): never written into
the page, encrypted in the table, used by the next submission of the same form in the same admin session and then
deleted, refused to another session, dropped when they expire or when where they go changes."""
from __future__ import annotations

import re
import secrets
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.models import KeptSecret, Tenant
from portal.models.base import utcnow
from portal.services.context import Actor
from portal.services.tenants import kept_secrets, service as tenants
from portal.web.tenants.forms import KEPT, KEPT_DROPPED

CLIENT_SECRET = "kept-cs-" + secrets.token_hex(12)
SIGNING_KEY = "kept-sk-" + secrets.token_hex(24)
BIND_PASSWORD = "kept-bind-" + secrets.token_hex(12)
OWNER_PASSWORD = "kept-owner-" + secrets.token_hex(12)
SECRETS = (CLIENT_SECRET, SIGNING_KEY, BIND_PASSWORD, OWNER_PASSWORD)
BLANK_SECRETS = {"clientSecret": "", "signingKey": "", "bindPassword": "", "ownerPassword": ""}


def form_data(**overrides) -> dict[str, str]:
    data = {
        "tenantId": "kept", "clientId": "kept-client", "clientSecret": CLIENT_SECRET, "identityProviderType": "LDAP",
        "supportAlgorithm": "HS256", "signingKey": SIGNING_KEY, "rsaKeySize": "2048",
        "ldapURLForDirectoryService": "ldap://127.0.0.1:1", "directoryServiceDomainName": "example.com",
        "directoryServiceRootDistinguishedName": "dc=example,dc=com", "bindDN": "cn=admin,dc=example,dc=com",
        "bindPassword": BIND_PASSWORD, "ownerProvisioningMethod": "inline-password", "ownerUsername": "alice",
        "ownerEmail": "alice@example.com", "ownerPassword": OWNER_PASSWORD, "skip_check": "y",
        "save": "Register tenant",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def handle_of(page: str) -> str:
    match = re.search(r'<input id="kept" name="kept" type="hidden" value="([^"]*)">', page)
    assert match, "no kept handle on the page"
    return match.group(1)


def help_of(page: str, field_id: str) -> str:
    match = re.search(rf'<small class="help" id="{field_id}-help">([^<]*)</small>', page)
    assert match, f"no help for {field_id}"
    return match.group(1)


def kept_rows(db) -> list[KeptSecret]:
    db.session.expire_all()
    return list(db.session.execute(sa.select(KeptSecret)).scalars())


def tenant(db, tenant_id: str) -> Tenant | None:
    db.session.expire_all()
    return db.session.execute(sa.select(Tenant).where(Tenant.tenant_key == tenant_id)).scalar_one_or_none()


def fail_once(client, **overrides) -> str:
    """A registration refused for a bad tenant id: the secrets typed with it are kept."""
    response = client.post("/tenants/new", data=form_data(tenantId="bad id!", **overrides))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Use 1 to 64 letters" in page
    return page


def test_kept_secrets_are_never_in_the_page_and_are_used_by_the_next_submission(admin_client, db):
    page = fail_once(admin_client)
    for value in SECRETS:
        assert value not in page
    for field_id in ("clientSecret", "signingKey", "bindPassword", "ownerPassword"):
        assert help_of(page, field_id) == KEPT
    assert "Kept from your last submission" in page
    handle = handle_of(page)
    assert len(handle) >= 32

    rows = kept_rows(db)
    assert {r.field for r in rows} == {"clientSecret", "signingKey", "ldapSchema.bindPassword", "owner.password"}
    raw = db.session.execute(sa.text("SELECT value FROM kept_secret")).scalars().all()
    assert all(value not in cipher for cipher in raw for value in SECRETS)  # encrypted at rest
    assert handle not in str([r.handle_hash for r in rows])  # only its hash is stored

    response = admin_client.post("/tenants/new", data=form_data(kept=handle, **BLANK_SECRETS))
    assert response.status_code == 302, response.get_data(as_text=True)
    stored = tenant(db, "kept")
    assert (stored.client_secret, stored.idp_secret, stored.owner_password) == (CLIENT_SECRET, BIND_PASSWORD,
                                                                               OWNER_PASSWORD)
    assert stored.keys[0].secret == SIGNING_KEY
    assert kept_rows(db) == []  # used, then deleted


def test_a_typed_value_replaces_the_kept_one(admin_client, db):
    handle = handle_of(fail_once(admin_client))
    newer = "kept-newer-" + secrets.token_hex(12)
    response = admin_client.post("/tenants/new", data=form_data(kept=handle, **{**BLANK_SECRETS,
                                                                                "clientSecret": newer}))
    assert response.status_code == 302
    assert tenant(db, "kept").client_secret == newer


def test_test_connection_keeps_the_secrets_too(admin_client, db):
    response = admin_client.post("/tenants/new", data=form_data(save=None, test_connection="Test connection"))
    page = response.get_data(as_text=True)
    assert "Connection check failed" in page
    assert not any(value in page for value in SECRETS)
    assert help_of(page, "bindPassword") == KEPT
    response = admin_client.post("/tenants/new", data=form_data(kept=handle_of(page), **BLANK_SECRETS))
    assert response.status_code == 302
    assert tenant(db, "kept").idp_secret == BIND_PASSWORD


def test_another_sessions_handle_is_refused(admin_client, signed_in, db):
    handle = handle_of(fail_once(admin_client))
    other = signed_in("operator", "other-operator")
    response = other.post("/tenants/new", data=form_data(kept=handle, **BLANK_SECRETS))
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and tenant(db, "kept") is None
    assert "Client secret: This field is required." in page  # nothing of the first session's was used
    assert handle_of(page) == ""  # nothing typed, nothing kept: the other session's handle is not carried on
    # The first session's secrets are still there, and still only for the first session.
    assert {r.field for r in kept_rows(db) if r.handle_hash == kept_secrets._hash(handle)} == {
        "clientSecret", "signingKey", "ldapSchema.bindPassword", "owner.password"}


def test_the_same_session_on_another_form_finds_nothing(admin_client, db, app):
    handle = handle_of(fail_once(admin_client))
    with app.app_context():  # the edit form of another tenant: a different form key
        tenants.register_tenant({
            "tenantId": "other", "clientId": "other-client", "clientSecret": "other-client-secret-1",
            "identityProviderType": "LDAP",
            "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1",
                           "directoryServiceDomainName": "example.com",
                           "directoryServiceRootDistinguishedName": "dc=example,dc=com",
                           "bindDN": "cn=x,dc=example,dc=com", "bindPassword": "other-bind"}},
            Actor(name="kept-tests"), skip_check=True)
    response = admin_client.post("/tenants/other/edit", data=form_data(
        tenantId="other", kept=handle, save="Save changes", bindDN="cn=x,dc=example,dc=com",
        ownerUsername=None, ownerEmail=None, ownerProvisioningMethod="invite-via-email", **BLANK_SECRETS))
    assert response.status_code == 302
    assert tenant(db, "other").client_secret == "other-client-secret-1"  # the register form's kept one unused


def test_expired_secrets_are_not_used_and_are_purged(admin_client, db):
    handle = handle_of(fail_once(admin_client))
    db.session.execute(sa.update(KeptSecret).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    response = admin_client.post("/tenants/new", data=form_data(kept=handle, **BLANK_SECRETS))
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and tenant(db, "kept") is None
    assert "Client secret: This field is required." in page
    assert kept_rows(db) == []  # purged, and nothing typed this time to keep


def test_a_kept_password_is_dropped_when_its_server_changes(admin_client, db):
    handle = handle_of(fail_once(admin_client))
    response = admin_client.post("/tenants/new", data=form_data(
        kept=handle, ldapURLForDirectoryService="ldap://ldap.elsewhere.example:389", **BLANK_SECRETS))
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and tenant(db, "kept") is None
    assert help_of(page, "bindPassword") == KEPT_DROPPED
    assert help_of(page, "clientSecret") == KEPT  # the others still go where they went
    assert "ldapSchema.bindPassword" not in {r.field for r in kept_rows(db)}


def test_kept_secret_lifetime_follows_the_setting(make_app):
    app = make_app(KEPT_SECRET_SECONDS=60)
    with app.app_context():
        assert kept_secrets.lifetime() == timedelta(seconds=60)


@pytest.mark.parametrize("body, expected", [
    ({"clientSecret": "a", "owner": {"password": "b"}, "ldapSchema": {"bindPassword": "c"}},
     {"clientSecret": "a", "owner.password": "b", "ldapSchema.bindPassword": "c"}),
    ({"clientSecret": "  ", "owner": None}, {}),
])
def test_secrets_in_a_body(app, body, expected):
    with app.app_context():
        assert kept_secrets.secrets_in(body) == expected
