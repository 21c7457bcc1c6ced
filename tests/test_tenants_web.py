"""Tenant pages for people: register by form (every type), the API's validation messages at the form's fields,
the no-JavaScript type switch, test connection, edit, activate/deactivate, roles, secrets never shown, and a list
with search, filters, keyset pagination and a constant number of SQL queries per page.

The POSTGRES tenant is registered against a real PostgreSQL database and role created here (127.0.0.1:5432, user
postgres, trust); the tests fail, never skip, when it cannot be reached."""
from __future__ import annotations

import html
import re
import secrets
import socket
import time

import psycopg
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import url_for

from portal.extensions import db as _db
from portal.models import AuditEvent, Tenant
from portal.services.context import Actor
from portal.services.tenants import service as tenants
from portal.web.tenants.forms import TenantForm, field_of_path
from tests.fixtures.stores import TenantStore

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SEED_KEY = "100f4c1f-f333-4c25-bd8c-e4809722b6a7"  # the seed's 36-character sample signing key

# Distinctive secrets: none of them may ever appear in a page.
CLIENT_SECRET = "cs-" + secrets.token_hex(16)
SIGNING_KEY = "sk-" + secrets.token_hex(24)  # 51 bytes: enough for HS256 and HS384
BIND_PASSWORD = "bind-" + secrets.token_hex(12)
OWNER_PASSWORD = "owner-" + secrets.token_hex(12)
SECRETS = (CLIENT_SECRET, SIGNING_KEY, BIND_PASSWORD, OWNER_PASSWORD)


# --- helpers --------------------------------------------------------------------------------------------------


class Pages:
    """A test client that keeps every page it fetched, so a test can search them all for secrets."""

    def __init__(self, client):
        self.client = client
        self.seen: list[tuple[str, str]] = []

    def get(self, url: str, **kwargs):
        return self._keep(url, self.client.get(url, **kwargs))

    def post(self, url: str, **kwargs):
        return self._keep(url, self.client.post(url, **kwargs))

    def _keep(self, url: str, response):
        self.seen.append((url, response.get_data(as_text=True)))
        return response

    def assert_no_secret(self, *values: str) -> None:
        assert len(self.seen) >= 3
        for url, text in self.seen:
            for value in values:
                assert value not in text, f"a secret appears on {url}"


def text_of(response) -> str:
    return response.get_data(as_text=True)


def field_errors(page: str, name: str) -> list[str]:
    """The error messages shown under the form field with this name."""
    for block in re.findall(r'<div class="field[^"]*">(.*?)</div>', page, re.S):
        if f'id="{name}"' in block:
            return [html.unescape(m) for m in re.findall(r'<p class="field-error"[^>]*>(.*?)</p>', block, re.S)]
    raise AssertionError(f"no field {name} on the page")


def top_errors(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<p class="form-error"[^>]*>(.*?)</p>', page, re.S)]


def section_shown(page: str, types: str) -> bool:
    match = re.search(rf'<div class="idp-section" data-idp-types="{types}"\s*(hidden)?\s*>', page)
    assert match, f"no section for {types}"
    return match.group(1) is None


def tenant_count(db) -> int:
    db.session.expire_all()
    return db.session.execute(sa.select(sa.func.count()).select_from(Tenant)).scalar_one()


def get_tenant(db, tenant_id: str) -> Tenant:
    db.session.expire_all()
    return db.session.execute(sa.select(Tenant).where(Tenant.tenant_key == tenant_id.lower())).scalar_one()


@pytest.fixture(scope="module")
def closed_port() -> int:
    """A local TCP port nobody listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ldap_data(port: int, **overrides) -> dict[str, str]:
    data = {
        "tenantId": "acme-ldap", "displayName": "Acme Directory", "clientId": "acme-ldap-client",
        "clientSecret": CLIENT_SECRET, "identityProviderType": "LDAP", "supportAlgorithm": "HS256",
        "signingKey": SIGNING_KEY, "rsaKeySize": "2048",
        "ldapURLForDirectoryService": f"ldap://127.0.0.1:{port}", "directoryServiceDomainName": "example.com",
        "directoryServiceRootDistinguishedName": "dc=example,dc=com", "bindDN": "cn=admin,dc=example,dc=com",
        "bindPassword": BIND_PASSWORD, "ownerProvisioningMethod": "inline-password", "ownerUsername": "alice",
        "ownerEmail": "alice@example.com", "ownerFirstName": "Alice", "ownerLastName": "Liddell",
        "ownerPassword": OWNER_PASSWORD, "skip_check": "y",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def external_data(**overrides) -> dict[str, str]:
    data = {
        "tenantId": "acme-oidc", "clientId": "acme-oidc-client", "clientSecret": CLIENT_SECRET,
        "identityProviderType": "EXTERNAL", "supportAlgorithm": "RS256", "rsaKeySize": "2048",
        "jwkSetUrl": "https://login.example.com/acme/discovery/v2.0/keys",
        "issuer": "https://login.example.com/acme/v2.0",
        "authUrl": "https://login.example.com/acme/oauth2/v2.0/authorize",
        "accessTokenUrl": "https://login.example.com/acme/oauth2/v2.0/token", "scope": "openid profile",
        "ownerProvisioningMethod": "invite-via-email", "skip_check": "y",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def postgres_data(target: TenantStore, **overrides) -> dict[str, str]:
    data = {
        "tenantId": "TIBCO", "clientId": "order", "clientSecret": CLIENT_SECRET, "identityProviderType": "POSTGRES",
        "supportAlgorithm": "HS256", "signingKey": SIGNING_KEY, "rsaKeySize": "2048",
        "dataSourceURL": target.jdbc_url, "dataSourceUserName": target.role, "dataSourcePassword": target.password,
        "ownerProvisioningMethod": "invite-via-email",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def seed_tenants(count: int, prefix: str = "t", **body) -> None:
    """Registered through the service (the form's own call), without a connection check. Needs an app context."""
    for i in range(count):
        tenants.register_tenant({
            "tenantId": f"{prefix}{i:03d}", "displayName": body.get("displayName", f"Name {prefix}{i:03d}"),
            "clientId": "c", "clientSecret": "s", "identityProviderType": "LDAP",
            "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1",
                           "directoryServiceDomainName": "example.com",
                           "directoryServiceRootDistinguishedName": "dc=example,dc=com"},
        }, Actor.cli(), skip_check=True)


# --- PostgreSQL target --------------------------------------------------------------------------------------


def store_tables(target: TenantStore) -> set[str]:
    with psycopg.connect(PG_ADMIN.rsplit("/", 1)[0] + "/" + target.database) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                            (target.schema,)).fetchall()
    return {row[0] for row in rows}


# --- registering each type ---------------------------------------------------------------------------------


def test_register_postgres_against_a_real_database(admin_client, db, pg_target):
    pages = Pages(admin_client)
    assert pages.get("/tenants/new").status_code == 200

    # Test connection first: a real connection, the panel says so, nothing is stored.
    response = pages.post("/tenants/new", data={**postgres_data(pg_target), "test_connection": "Test connection"})
    page = text_of(response)
    assert response.status_code == 200
    assert "Connection check passed" in page and "PostgreSQL" in page
    assert '<ol class="check-details">' in page
    assert tenant_count(db) == 0

    response = pages.post("/tenants/new", data=postgres_data(pg_target))
    assert response.status_code == 302 and response.headers["Location"] == "/tenants/TIBCO"
    page = text_of(pages.get("/tenants/TIBCO"))
    assert "Connection check passed" in page  # the flash
    assert "verified" in page and "unverified" not in page
    assert pg_target.jdbc_url in html.unescape(page) and pg_target.role in page
    assert "tibco.tenants.local" in page
    assert {"um_user", "um_role", "um_user_role"} <= store_tables(pg_target)
    tenant = get_tenant(db, "TIBCO")
    assert (tenant.idp_type, tenant.check_status, tenant.active) == ("POSTGRES", "passed", True)
    assert tenant.client_secret == CLIENT_SECRET and tenant.idp_secret == pg_target.password

    # Edit: "Test connection" with the password left blank uses the stored one.
    page = text_of(pages.get("/tenants/TIBCO/edit"))
    assert "set — leave blank to keep" in page
    response = pages.post("/tenants/TIBCO/edit", data={**postgres_data(pg_target, clientSecret="", signingKey="",
                                                                        dataSourcePassword=""),
                                                        "test_connection": "Test connection"})
    assert "Connection check passed" in text_of(response)

    # Run connection check from the tenant page.
    response = pages.post("/tenants/TIBCO/check", follow_redirects=True)
    assert "Connection check passed" in text_of(response)
    pages.get("/tenants/")
    pages.assert_no_secret(*SECRETS, pg_target.password)


def test_register_ldap_without_the_check(admin_client, db, closed_port):
    pages = Pages(admin_client)
    response = pages.post("/tenants/new", data=ldap_data(closed_port))
    assert response.status_code == 302
    page = text_of(pages.get(response.headers["Location"]))
    assert "without a passing connection check" in page and "unverified" in page
    for shown in ("Acme Directory", f"ldap://127.0.0.1:{closed_port}", "dc=example,dc=com",
                  "cn=admin,dc=example,dc=com", "alice@example.com", "inline-password", "acme-ldap.tenants.local"):
        assert shown in page
    assert page.count('<span class="badge state-ok">set</span>') >= 4  # client secret, bind and owner password, key
    assert "tenant.register" in page  # recent changes, from the audit log
    tenant = get_tenant(db, "acme-ldap")
    assert tenant.idp_settings["bindDN"] == "cn=admin,dc=example,dc=com" and tenant.idp_secret == BIND_PASSWORD
    assert tenant.owner_password == OWNER_PASSWORD and tenant.active_key.secret == SIGNING_KEY
    assert tenant.check_status == "unchecked"

    # The tenant page's check runs against the stored settings and reports the failure.
    response = pages.post("/tenants/acme-ldap/check", follow_redirects=True)
    assert "Connection check failed: Cannot reach" in text_of(response)
    assert get_tenant(db, "acme-ldap").check_status == "failed"
    pages.get("/tenants/acme-ldap/edit")
    pages.get("/tenants/?q=acme")
    pages.assert_no_secret(*SECRETS)


def test_register_external_with_a_supplied_rsa_key(admin_client, db):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    pages = Pages(admin_client)
    response = pages.post("/tenants/new", data=external_data(signingKey=pem))
    assert response.status_code == 302
    page = text_of(pages.get("/tenants/acme-oidc"))
    assert public_pem.strip() in page
    for shown in ("https://login.example.com/acme/v2.0", "https://login.example.com/acme/discovery/v2.0/keys",
                  "openid profile", "RS256", "supplied at registration", "2048 bits"):
        assert shown in page
    assert "PRIVATE KEY" not in page
    tenant = get_tenant(db, "acme-oidc")
    assert tenant.idp_settings["oidcSchema"]["scope"] == "openid profile" and tenant.idp_secret is None
    pages.get("/tenants/acme-oidc/edit")
    body_lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    pages.assert_no_secret(CLIENT_SECRET, *body_lines)


def test_register_external_generates_a_key_of_the_chosen_size(admin_client, db):
    response = admin_client.post("/tenants/new", data=external_data(supportAlgorithm="RS384", rsaKeySize="3072"))
    assert response.status_code == 302
    key = get_tenant(db, "acme-oidc").active_key
    assert (key.algorithm, key.key_bits, key.generated) == ("RS384", 3072, True)
    page = text_of(admin_client.get("/tenants/acme-oidc"))
    assert "BEGIN PUBLIC KEY" in page and "3072 bits" in page and "generated by the portal" in page


def test_operator_can_register(operator_client, db, closed_port):
    response = operator_client.post("/tenants/new", data=ldap_data(closed_port, tenantId="op-made"))
    assert response.status_code == 302
    assert get_tenant(db, "op-made").idp_type == "LDAP"
    assert db.session.execute(sa.select(AuditEvent.actor).where(AuditEvent.action == "tenant.register")
                              ).scalar_one() == "operator-user"


# --- connection checks through the form ------------------------------------------------------------------


def test_ldap_test_connection_fails_fast_and_shows_the_panel(admin_client, db, closed_port):
    started = time.monotonic()
    response = admin_client.post("/tenants/new", data={**ldap_data(closed_port, skip_check=None),
                                                       "test_connection": "Test connection"})
    assert time.monotonic() - started < 5
    page = text_of(response)
    assert response.status_code == 200
    assert 'class="card check-panel check-failed"' in page and "Connection check failed" in page
    assert "connection refused" in page
    assert any("Cannot reach" in e for e in field_errors(page, "ldapURLForDirectoryService"))
    assert tenant_count(db) == 0
    for value in SECRETS:
        assert value not in page


def test_test_connection_reports_invalid_settings_at_their_fields(admin_client, db):
    target = TenantStore(role="userll", database="userdbll", password="userll-secret")
    data = {**postgres_data(target, tenantId="bad id!", dataSourceURL="jdbc:mysql://db.example.com/users"),
            "test_connection": "Test connection"}
    page = text_of(admin_client.post("/tenants/new", data=data))
    assert any("jdbc" in e for e in field_errors(page, "dataSourceURL"))
    assert field_errors(page, "tenantId") == []  # only the provider's settings decide a connection test
    assert "check-panel" not in page and "userll-secret" not in page
    assert tenant_count(db) == 0


def test_failed_check_refuses_registration_unless_skipped(admin_client, db, closed_port):
    response = admin_client.post("/tenants/new", data=ldap_data(closed_port, skip_check=None))
    page = text_of(response)
    assert response.status_code == 200
    assert any(e.startswith("Connection check failed: Cannot reach") for e in top_errors(page))
    assert "check-failed" in page and "Nothing was stored." in page
    details = re.search(r'<ol class="check-details">(.*?)</ol>', page, re.S).group(1)
    assert "Settings are valid" in details and "connection refused" in details
    assert field_errors(page, "ldapURLForDirectoryService")
    assert tenant_count(db) == 0
    assert admin_client.post("/tenants/new", data=ldap_data(closed_port)).status_code == 302
    assert tenant_count(db) == 1


# --- validation: the service's rules, shown at the form's fields ----------------------------------------------

PLACEHOLDER = "is the sample request's placeholder"


@pytest.mark.parametrize(("data", "field", "expected"), [
    (external_data(tenantId="string"), "tenantId", PLACEHOLDER),
    (external_data(clientId="string"), "clientId", PLACEHOLDER),
    (external_data(clientSecret="string"), "clientSecret", PLACEHOLDER),
    (external_data(jwkSetUrl="string"), "jwkSetUrl", PLACEHOLDER),
    (external_data(issuer="string"), "issuer", PLACEHOLDER),
    (external_data(authUrl="string"), "authUrl", PLACEHOLDER),
    (external_data(accessTokenUrl="string"), "accessTokenUrl", PLACEHOLDER),
    (external_data(scope="string"), "scope", PLACEHOLDER),
    (ldap_data(1, ldapURLForDirectoryService="string"), "ldapURLForDirectoryService", PLACEHOLDER),
    (ldap_data(1, directoryServiceDomainName="string"), "directoryServiceDomainName", PLACEHOLDER),
    (ldap_data(1, directoryServiceRootDistinguishedName="string"), "directoryServiceRootDistinguishedName",
     PLACEHOLDER),
    (external_data(tenantId="bad id!"), "tenantId", "Use 1 to 64 letters, digits, '_' or '-'."),
    (external_data(tenantId="x" * 65), "tenantId", "At most 64 characters."),
    (external_data(tenantId=""), "tenantId", "This field is required."),
    (external_data(clientId=""), "clientId", "This field is required."),
    (external_data(clientSecret=""), "clientSecret", "This field is required."),
    (external_data(tenantDomain="Acme.Example"), "tenantDomain", "Use lower-case letters"),
    (external_data(tenantDomain=".acme.example"), "tenantDomain", "cannot start with a dot"),
    (external_data(tenantDomain="acme"), "tenantDomain", "needs a dot"),
    (external_data(tenantDomain="carbon.super"), "tenantDomain", "reserved"),
    (ldap_data(1, signingKey=SEED_KEY, supportAlgorithm="HS384"), "signingKey",
     "HS384 needs a key of at least 48 bytes"),
    (ldap_data(1, signingKey=SEED_KEY, supportAlgorithm="HS512"), "signingKey",
     "HS512 needs a key of at least 64 bytes"),
    (ldap_data(1, signingKey="not a pem key", supportAlgorithm="RS256"), "signingKey", "paste a PEM private key"),
    (external_data(supportAlgorithm="HS256"), "supportAlgorithm", "Choose RS256, RS384 or RS512"),
    (ldap_data(1, ldapURLForDirectoryService=""), "ldapURLForDirectoryService", "This field is required."),
    (ldap_data(1, directoryServiceRootDistinguishedName=""), "directoryServiceRootDistinguishedName",
     "This field is required."),
    (ldap_data(1, ldapURLForDirectoryService="http://dir.example.com"), "ldapURLForDirectoryService", "ldap"),
    (ldap_data(1, bindPassword=""), "bindPassword", "Enter the bind password"),
    (external_data(jwkSetUrl="http://login.example.com/keys"), "jwkSetUrl", "Use an https:// URL."),
    (external_data(authUrl=""), "authUrl", "This field is required."),
    (external_data(scope='openid "profile"'), "scope", "Scopes are space-separated tokens"),
    (ldap_data(1, ownerEmail="not-an-email"), "ownerEmail", "Enter a valid email address"),
    (ldap_data(1, ownerPassword=""), "ownerPassword", "An inline-password owner needs a password"),
    (ldap_data(1, ownerProvisioningMethod="invite-via-email"), "ownerPassword", "leave it empty"),
    (ldap_data(1, ownerEmail=""), "ownerEmail", "This field is required."),
])
def test_validation_errors_show_at_the_field(admin_client, db, data, field, expected):
    response = admin_client.post("/tenants/new", data=data)
    page = text_of(response)
    assert response.status_code == 200
    assert any(expected in e for e in field_errors(page, field)), (field, field_errors(page, field), top_errors(page))
    assert tenant_count(db) == 0
    for value in (*SECRETS, SEED_KEY):
        assert value not in page


@pytest.mark.parametrize(("overrides", "errors"), [
    ({"dataSourceURL": "", "dataSourceUserName": "", "dataSourcePassword": ""},
     {"dataSourceURL": "This field is required.", "dataSourceUserName": "This field is required.",
      "dataSourcePassword": "This field is required."}),
    ({"dataSourceURL": "jdbc:mysql://db.example.com:3306/users"}, {"dataSourceURL": "jdbc"}),
    ({"dataSourceURL": "jdbc:postgresql://db.example.com:99999/users"}, {"dataSourceURL": "port"}),
    ({"dataSourceURL": "jdbc:oracle:thin:@//db.example.com:1521/ORCL"}, {"dataSourceURL": "not a PostgreSQL JDBC URL"}),
    ({"dataSourceURL": "string", "dataSourceUserName": "string", "dataSourcePassword": "string"},
     {"dataSourceURL": PLACEHOLDER, "dataSourceUserName": PLACEHOLDER, "dataSourcePassword": PLACEHOLDER}),
])
def test_relational_section_errors(admin_client, db, overrides, errors):
    target = TenantStore(role="userll", database="userdbll", password="userll-secret")
    response = admin_client.post("/tenants/new", data=postgres_data(target, **overrides))
    page = text_of(response)
    for field, expected in errors.items():
        assert any(expected in e for e in field_errors(page, field)), (field, field_errors(page, field))
    assert tenant_count(db) == 0


def test_seed_ldap_sample_is_refused_field_by_field(admin_client, db):
    """The seed's LDAP sample, as printed: every "string" placeholder refused at its own field."""
    data = {"tenantId": "TIBCOLDAP", "clientId": "tibco-ldap-client", "clientSecret": "tibco-ldap-secret",
            "identityProviderType": "LDAP", "supportAlgorithm": "HS256", "signingKey": SEED_KEY,
            "ldapURLForDirectoryService": "string", "directoryServiceDomainName": "string",
            "directoryServiceRootDistinguishedName": "string"}
    page = text_of(admin_client.post("/tenants/new", data=data))
    for field in ("ldapURLForDirectoryService", "directoryServiceDomainName", "directoryServiceRootDistinguishedName"):
        assert any(PLACEHOLDER in e for e in field_errors(page, field)), field
    assert field_errors(page, "tenantId") == [] and field_errors(page, "signingKey") == []
    assert "tibco-ldap-secret" not in page and SEED_KEY not in page
    assert tenant_count(db) == 0


def test_duplicate_tenant_id_is_shown_at_tenant_id(admin_client, db, closed_port):
    assert admin_client.post("/tenants/new", data=ldap_data(closed_port)).status_code == 302
    page = text_of(admin_client.post("/tenants/new", data=ldap_data(closed_port, tenantId="ACME-LDAP")))
    assert any("already exists" in e for e in field_errors(page, "tenantId"))
    page = text_of(admin_client.post("/tenants/new", data=ldap_data(closed_port, tenantId="other",
                                                                      tenantDomain="acme-ldap.tenants.local")))
    assert any("already used" in e for e in field_errors(page, "tenantDomain"))
    assert tenant_count(db) == 1


def test_unknown_choices_are_refused_by_the_form(admin_client, db, closed_port):
    page = text_of(admin_client.post("/tenants/new", data=ldap_data(closed_port, identityProviderType="MYSQL")))
    assert field_errors(page, "identityProviderType") == ["Not a valid choice."]
    page = text_of(admin_client.post("/tenants/new", data=ldap_data(closed_port, supportAlgorithm="none")))
    assert field_errors(page, "supportAlgorithm") == ["Not a valid choice."]
    assert tenant_count(db) == 0


def test_every_api_path_maps_to_a_form_field(app):
    with app.test_request_context():
        form = TenantForm()
        assert all(name in form for name in field_of_path().values())


# --- the type switch without JavaScript --------------------------------------------------------------------


def test_new_form_shows_the_default_type_only(admin_client):
    page = text_of(admin_client.get("/tenants/new"))
    assert section_shown(page, "ORACLE POSTGRES")
    assert not section_shown(page, "LDAP") and not section_shown(page, "EXTERNAL")
    assert 'data-idp-select' in page and 'name="refresh"' in page
    assert "<script>" not in page and " style=" not in page  # CSP: no inline script or style


@pytest.mark.parametrize(("chosen", "shown"), [("LDAP", "LDAP"), ("EXTERNAL", "EXTERNAL"),
                                               ("ORACLE", "ORACLE POSTGRES")])
def test_refresh_shows_only_the_chosen_types_fields_without_errors(admin_client, db, chosen, shown):
    data = {"tenantId": "bad id!", "clientSecret": CLIENT_SECRET, "identityProviderType": chosen,
            "supportAlgorithm": "HS256", "displayName": "Kept Name", "refresh": "Show fields for this type"}
    response = admin_client.post("/tenants/new", data=data)
    page = text_of(response)
    assert response.status_code == 200
    for types in ("ORACLE POSTGRES", "LDAP", "EXTERNAL"):
        assert section_shown(page, types) == (types == shown), types
    assert "has-error" not in page and top_errors(page) == []
    assert 'value="Kept Name"' in page and CLIENT_SECRET not in page
    assert tenant_count(db) == 0


# --- edit ----------------------------------------------------------------------------------------------------


def test_edit_keeps_secrets_when_blank_and_ids_fixed(admin_client, db, closed_port):
    pages = Pages(admin_client)
    assert pages.post("/tenants/new", data=ldap_data(closed_port)).status_code == 302
    before = get_tenant(db, "acme-ldap")
    kid = before.active_key.kid

    page = text_of(pages.get("/tenants/acme-ldap/edit"))
    assert re.search(r'id="tenantId" name="tenantId" readonly type="text" value="acme-ldap"', page)
    assert re.search(r'id="tenantDomain" name="tenantDomain" readonly type="text" value="acme-ldap.tenants.local"',
                     page)
    assert page.count("set — leave blank to keep") == 3  # client secret, bind password, owner password
    assert 'value="Acme Directory"' in page and 'value="cn=admin,dc=example,dc=com"' in page
    assert section_shown(page, "LDAP") and not section_shown(page, "ORACLE POSTGRES")

    blank = dict(clientSecret="", signingKey="", bindPassword="", ownerPassword="", skip_check=None)
    response = pages.post("/tenants/acme-ldap/edit", data=ldap_data(
        closed_port, displayName="Acme Renamed", tenantId="hijack", tenantDomain="hijack.example", **blank))
    assert response.status_code == 302 and response.headers["Location"] == "/tenants/acme-ldap"
    after = get_tenant(db, "acme-ldap")
    assert after.display_name == "Acme Renamed" and after.domain == "acme-ldap.tenants.local"
    assert after.client_secret == CLIENT_SECRET and after.idp_secret == BIND_PASSWORD
    assert after.owner_password == OWNER_PASSWORD and after.active_key.kid == kid
    assert tenant_count(db) == 1
    page = text_of(pages.get("/tenants/acme-ldap"))
    assert "tenant.update" in page and "Acme Renamed" in page

    # Changing where the directory is needs the bind password again: the stored one is not sent elsewhere.
    moved = ldap_data(closed_port, ldapURLForDirectoryService="ldap://127.0.0.1:2", **blank)
    page = text_of(pages.post("/tenants/acme-ldap/edit", data=moved))
    assert field_errors(page, "bindPassword") == [
        "You changed where this password is sent (port). Enter the password again: a stored password is only ever "
        "sent to the server it was entered for."]
    response = pages.post("/tenants/acme-ldap/edit", data={**moved, "skip_check": "y"})
    assert response.status_code == 200 and field_errors(text_of(response), "bindPassword")
    # Entered again, the check runs against the new place; a failure is shown and nothing changes.
    moved["bindPassword"] = BIND_PASSWORD
    page = text_of(pages.post("/tenants/acme-ldap/edit", data=moved))
    assert "check-failed" in page and field_errors(page, "ldapURLForDirectoryService")
    assert get_tenant(db, "acme-ldap").idp_settings["ldapURLForDirectoryService"] == f"ldap://127.0.0.1:{closed_port}"
    response = pages.post("/tenants/acme-ldap/edit", data={**moved, "skip_check": "y"})
    assert response.status_code == 302
    assert get_tenant(db, "acme-ldap").idp_settings["ldapURLForDirectoryService"] == "ldap://127.0.0.1:2"
    pages.assert_no_secret(*SECRETS)


def test_edit_error_keeps_the_form_and_no_secret(admin_client, db, closed_port):
    admin_client.post("/tenants/new", data=ldap_data(closed_port))
    response = admin_client.post("/tenants/acme-ldap/edit", data=ldap_data(
        closed_port, clientSecret="", bindPassword="", ownerPassword="", signingKey=SEED_KEY,
        supportAlgorithm="HS512"))
    page = text_of(response)
    assert any("HS512 needs a key of at least 64 bytes" in e for e in field_errors(page, "signingKey"))
    assert "Save changes" in page and SEED_KEY not in page
    assert get_tenant(db, "acme-ldap").support_algorithm == "HS256"


# --- activate / deactivate, roles, 404 -------------------------------------------------------------------


def test_deactivate_and_activate(admin_client, db, closed_port):
    admin_client.post("/tenants/new", data=ldap_data(closed_port))
    page = text_of(admin_client.get("/tenants/acme-ldap"))
    assert 'data-confirm="Deactivate tenant acme-ldap?' in page
    response = admin_client.post("/tenants/acme-ldap/deactivate", follow_redirects=True)
    assert "Tenant acme-ldap deactivated." in text_of(response)
    assert get_tenant(db, "acme-ldap").active is False
    assert "acme-ldap" in text_of(admin_client.get("/tenants/?status=inactive"))
    assert "/tenants/acme-ldap\"" not in text_of(admin_client.get("/tenants/?status=active"))
    response = admin_client.post("/tenants/acme-ldap/activate", follow_redirects=True)
    assert "Tenant acme-ldap activated." in text_of(response)
    assert get_tenant(db, "acme-ldap").active is True
    actions = db.session.execute(sa.select(AuditEvent.action).where(AuditEvent.object_id == "acme-ldap")
                                 .order_by(AuditEvent.id)).scalars().all()
    assert actions == ["tenant.register", "tenant.deactivate", "tenant.activate"]


def test_auditor_reads_but_cannot_change(admin_client, auditor_client, db, closed_port):
    admin_client.post("/tenants/new", data=ldap_data(closed_port))
    page = text_of(auditor_client.get("/tenants/"))
    assert "acme-ldap" in page and "Register tenant" not in page
    page = text_of(auditor_client.get("/tenants/acme-ldap"))
    assert "Acme Directory" in page and "Deactivate" not in page and "/edit" not in page
    assert auditor_client.get("/tenants/new").status_code == 403
    assert auditor_client.get("/tenants/acme-ldap/edit").status_code == 403
    for url in ("/tenants/new", "/tenants/acme-ldap/edit", "/tenants/acme-ldap/deactivate",
                "/tenants/acme-ldap/activate", "/tenants/acme-ldap/check"):
        assert auditor_client.post(url, data=ldap_data(closed_port, tenantId="by-auditor")).status_code == 403, url
    assert tenant_count(db) == 1 and get_tenant(db, "acme-ldap").active


def test_unknown_tenant_is_a_404(admin_client):
    for method, url in (("GET", "/tenants/nobody"), ("GET", "/tenants/nobody/edit"),
                        ("POST", "/tenants/nobody/edit"), ("POST", "/tenants/nobody/deactivate"),
                        ("POST", "/tenants/nobody/check")):
        response = admin_client.open(url, method=method)
        assert response.status_code == 404, url
        assert "No tenant with id nobody." in text_of(response)


def test_tenant_ids_are_case_insensitive_in_urls(admin_client, closed_port):
    admin_client.post("/tenants/new", data=ldap_data(closed_port, tenantId="MixedCase"))
    assert admin_client.get("/tenants/mixedcase").status_code == 200
    assert admin_client.post("/tenants/MIXEDCASE/deactivate").headers["Location"] == "/tenants/MixedCase"


# --- the list -------------------------------------------------------------------------------------------


def _ids(page: str) -> list[str]:
    return re.findall(r'<td><a href="/tenants/([^"/]+)">', page)


def test_list_shows_columns_and_actions(admin_client, db, app, closed_port):
    admin_client.post("/tenants/new", data=ldap_data(closed_port))
    page = text_of(admin_client.get("/tenants/"))
    for shown in ("acme-ldap", "Acme Directory", "acme-ldap.tenants.local", "LDAP", "HS256", "active",
                  "unverified", "Register tenant", 'placeholder="Tenant id, domain or name starts with…"'):
        assert shown in page
    has_bulk = "bulk.index" in app.view_functions  # the bulk onboarding pages may not exist yet
    assert ("Bulk onboarding" in page) == has_bulk
    if has_bulk:
        with app.test_request_context():
            assert f'href="{url_for("bulk.index")}"' in page


def test_search_is_a_prefix_match_on_id_domain_and_name(admin_client, db):
    seed_tenants(1, prefix="alpha", displayName="Zeta Holdings")
    seed_tenants(1, prefix="beta", displayName="Alpine Goods")
    tenants.register_tenant({"tenantId": "gamma", "tenantDomain": "shop.example.com", "clientId": "c",
                             "clientSecret": "s", "identityProviderType": "LDAP",
                             "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1",
                                            "directoryServiceDomainName": "example.com",
                                            "directoryServiceRootDistinguishedName": "dc=example,dc=com"}},
                            Actor.cli(), skip_check=True)
    assert _ids(text_of(admin_client.get("/tenants/?q=alp"))) == ["alpha000", "beta000"]  # id, display name
    assert _ids(text_of(admin_client.get("/tenants/?q=ZETA"))) == ["alpha000"]
    assert _ids(text_of(admin_client.get("/tenants/?q=shop.ex"))) == ["gamma"]  # domain
    assert _ids(text_of(admin_client.get("/tenants/?q=holdings"))) == []  # starts with, not contains
    assert _ids(text_of(admin_client.get("/tenants/?q=%25"))) == []  # LIKE wildcards are literal
    page = text_of(admin_client.get("/tenants/?q=nothing-like-this"))
    assert "No tenant matches." in page


def test_type_and_status_filters(admin_client, db, closed_port):
    seed_tenants(2, prefix="ldap")
    admin_client.post("/tenants/new", data=external_data())
    tenants.set_tenant_active("ldap001", False, Actor.cli())
    assert _ids(text_of(admin_client.get("/tenants/?type=EXTERNAL"))) == ["acme-oidc"]
    assert _ids(text_of(admin_client.get("/tenants/?type=LDAP"))) == ["ldap000", "ldap001"]
    assert _ids(text_of(admin_client.get("/tenants/?status=inactive"))) == ["ldap001"]
    assert _ids(text_of(admin_client.get("/tenants/?status=active&type=LDAP"))) == ["ldap000"]
    assert _ids(text_of(admin_client.get("/tenants/?status=unverified"))) == ["acme-oidc", "ldap000", "ldap001"]
    page = text_of(admin_client.get("/tenants/?type=MYSQL"))
    assert field_errors(page, "type") == ["Not a valid choice."] and _ids(page) == []


def test_keyset_pagination_next_and_previous(make_app, db):
    app = make_app(TENANT_PAGE_SIZE=3)
    from tests.fixtures.accounts import create_admin, login
    create_admin(app, "pager", "auditor")
    client = app.test_client()
    login(client, "pager")
    seed_tenants(7, prefix="p")
    seed_tenants(2, prefix="q")
    expected = [f"p{i:03d}" for i in range(7)]

    seen, url, pages = [], "/tenants/?q=p", []
    while url:
        page = text_of(client.get(url))
        pages.append(page)
        ids = _ids(page)
        assert 1 <= len(ids) <= 3
        seen += ids
        match = re.search(r'rel="next" href="([^"]+)"', page)
        url = html.unescape(match.group(1)) if match else None
        if url:
            assert "q=p" in url and "after=" in url
    assert seen == expected and len(pages) == 3
    assert 'rel="prev"' not in pages[0] and 'rel="prev"' in pages[2]

    back, page = [], pages[-1]
    while match := re.search(r'rel="prev" href="([^"]+)"', page):
        assert "before=" in match.group(1) and "q=p" in match.group(1)
        page = text_of(client.get(html.unescape(match.group(1))))
        back = _ids(page) + back
    assert back == expected[:6] and 'rel="next"' in page


def test_list_runs_a_constant_number_of_queries(app, admin_client, db):
    with app.app_context():
        engine = _db.engine  # the engine that serves admin_client's requests
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    def queries(url: str) -> int:
        admin_client.get(url)  # settles any once-a-minute session touch before measuring
        statements.clear()
        response = admin_client.get(url)
        assert response.status_code == 200
        return len(statements)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        seed_tenants(10)
        small = queries("/tenants/")
        assert len(_ids(text_of(admin_client.get("/tenants/")))) == 10
        seed_tenants(50, prefix="u")
        first = queries("/tenants/")
        page = text_of(admin_client.get("/tenants/"))
        assert len(_ids(page)) == 50
        after = re.search(r'rel="next" href="([^"]+)"', page).group(1)
        second = queries(html.unescape(after))
        filtered = queries("/tenants/?q=u0&type=LDAP&status=unverified")
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert small == first == second == filtered
    assert small <= 5, statements
