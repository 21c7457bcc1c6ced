"""The tenant registry's service layer: every validation rule, keys, conflicts, audit, updates, and the real
connection checks (PostgreSQL, slapd, a local HTTPS OpenID provider) that registration runs."""
from __future__ import annotations

import copy
import logging

import psycopg
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from portal.models import AuditEvent, SigningKey, Tenant
from portal.services.context import Actor
from portal.services.errors import CheckFailed, Conflict, NotFound, ValidationError
from portal.services.tenants import service as tenants
from tests.oidc_server import Idp

ACTOR = Actor(name="tester", request_id="req-1", ip="127.0.0.1")
SEED_KEY = "100f4c1f-f333-4c25-bd8c-e4809722b6a7"  # the seed's 36-character sample key
PG_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def ldap_body(**overrides) -> dict:
    body = {
        "tenantId": "acme", "clientId": "acme-client", "clientSecret": "acme-client-secret-1",
        "identityProviderType": "LDAP", "supportAlgorithm": "HS256", "signingKey": SEED_KEY,
        "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1", "directoryServiceDomainName": "example.com",
                       "directoryServiceRootDistinguishedName": "dc=example,dc=com"},
    }
    body.update(overrides)
    return body


def register(body: dict, **kwargs) -> Tenant:
    kwargs.setdefault("skip_check", True)
    return tenants.register_tenant(body, ACTOR, **kwargs).tenant


def errors_of(body: dict, **kwargs) -> dict[str, str]:
    kwargs.setdefault("skip_check", True)
    with pytest.raises(ValidationError) as caught:
        tenants.register_tenant(body, ACTOR, **kwargs)
    return caught.value.errors


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app


# --- validation -------------------------------------------------------------------------------------------


def _set(body: dict, path: str, value) -> dict:
    body = copy.deepcopy(body)
    *parents, last = path.split(".")
    target = body
    for name in parents:
        target = target.setdefault(name, {})
    if value is _DELETE:
        target.pop(last, None)
    else:
        target[last] = value
    return body


class _Delete:
    """Stands for "leave the field out" in RULES; its repr names it, so test ids are the same in every process."""

    def __repr__(self) -> str:
        return "<missing>"


_DELETE = _Delete()

RULES = [
    ("tenantId", _DELETE, "tenantId", "required"),
    ("tenantId", "has space", "tenantId", "letters, digits"),
    ("tenantId", "x" * 65, "tenantId", "At most 64"),
    ("tenantId", "string", "tenantId", "placeholder"),
    ("tenantId", 42, "tenantId", "string"),
    ("tenantId", "New", "tenantId", "reserved"),
    ("tenantDomain", "Acme.com", "tenantDomain", "lower-case"),
    ("tenantDomain", ".acme.com", "tenantDomain", "cannot start with a dot"),
    ("tenantDomain", "acme", "tenantDomain", "needs a dot"),
    ("tenantDomain", "carbon.super", "tenantDomain", "reserved"),
    ("tenantDomain", "acme..com", "tenantDomain", "empty label"),
    ("clientId", _DELETE, "clientId", "required"),
    ("clientId", "two words", "clientId", "spaces"),
    ("clientSecret", "", "clientSecret", "required"),
    ("identityProviderType", "MYSQL", "identityProviderType", "ORACLE, POSTGRES, LDAP, EXTERNAL"),
    ("supportAlgorithm", "ES256", "supportAlgorithm", "HS256"),
    ("supportAlgorithm", "none", "supportAlgorithm", "HS256"),
    ("signingKey", "short", "signingKey", "at least 32 bytes"),
    ("rsaKeySize", 1024, "rsaKeySize", "2048"),
    ("ldapSchema", _DELETE, "ldapSchema", "required"),
    ("ldapSchema.ldapURLForDirectoryService", "http://x", "ldapSchema.ldapURLForDirectoryService", "ldap"),
    ("ldapSchema.directoryServiceRootDistinguishedName", "not a dn", "ldapSchema.directoryServiceRootDistinguishedName",
     "distinguished name"),
    ("ldapSchema.bindDN", "cn=admin,dc=example,dc=com", "ldapSchema.bindPassword", "bind password"),
    ("ldapSchema.startTLS", "yes", "ldapSchema.startTLS", "true or false"),
    ("ldapSchema.colour", "blue", "ldapSchema.colour", "Unknown field"),
    ("relationalSchema", {"dataSourceURL": "jdbc:postgresql://h/db"}, "relationalSchema", "does not apply"),
    ("jwkSetUrl", "https://idp.example.com/jwks", "jwkSetUrl", "only to identityProviderType EXTERNAL"),
    ("owner", {"username": "admin"}, "owner.email", "required"),
    ("owner", {"username": "admin", "email": "not-an-email"}, "owner.email", "valid email"),
    ("owner", {"username": "admin", "email": "a@example.com", "provisioningMethod": "inline-password"},
     "owner.password", "needs a password"),
    ("owner", {"username": "admin", "email": "a@example.com", "provisioningMethod": "fax"},
     "owner.provisioningMethod", "inline-password or invite-via-email"),
    ("extra", 1, "extra", "Unknown field"),
]


@pytest.mark.parametrize(("path", "value", "field", "fragment"), RULES, ids=[f"{r[0]}={r[1]!r}"[:40] for r in RULES])
def test_each_rule_is_reported_at_its_field(ctx, path, value, field, fragment):
    errors = errors_of(_set(ldap_body(), path, value))
    assert field in errors, errors
    assert fragment in errors[field]


def test_an_array_body_is_refused_as_one_tenant_per_request(ctx):
    assert "one tenant per request" in errors_of([ldap_body()])[""].lower()


def test_every_problem_is_reported_at_once(ctx):
    errors = errors_of({"tenantId": "bad id!", "identityProviderType": "LDAP", "supportAlgorithm": "XX"})
    assert {"tenantId", "clientId", "clientSecret", "supportAlgorithm", "ldapSchema"} <= set(errors)


def test_seed_external_sample_is_refused_field_by_field(ctx):
    body = {"tenantId": "string", "clientId": "string", "clientSecret": "string", "identityProviderType": "EXTERNAL",
            "signingKey": SEED_KEY, "supportAlgorithm": "RS256", "jwkSetUrl": "string", "issuer": "string",
            "oidcSchema": {"authUrl": "string", "accessTokenUrl": "string", "scope": "string"}}
    errors = errors_of(body)
    for path in ("tenantId", "clientId", "clientSecret", "jwkSetUrl", "issuer", "oidcSchema.authUrl",
                 "oidcSchema.accessTokenUrl", "oidcSchema.scope"):
        assert "placeholder" in errors[path], path
    assert "PEM private key" in errors["signingKey"]  # RS256 signs with an RSA key, not a UUID
    assert not tenants.list_tenants(tenants.TenantQuery()).tenants


def test_external_provider_needs_https_and_an_rsa_algorithm(ctx):
    body = {"tenantId": "ext", "clientId": "c", "clientSecret": "s", "identityProviderType": "EXTERNAL",
            "supportAlgorithm": "HS256", "jwkSetUrl": "http://idp.example.com/jwks", "issuer": "ftp://idp",
            "oidcSchema": {"authUrl": "https://idp.example.com/auth", "accessTokenUrl": "https://u:p@idp.example.com/t",
                           "scope": "openid \"profile\""}}
    errors = errors_of(body)
    assert "https" in errors["jwkSetUrl"] and "https" in errors["issuer"]
    assert "Credentials" in errors["oidcSchema.accessTokenUrl"]
    assert "space-separated" in errors["oidcSchema.scope"]
    assert "RS256" in errors["supportAlgorithm"]


def test_relational_url_must_match_the_type(ctx):
    body = ldap_body(identityProviderType="ORACLE", ldapSchema=None, relationalSchema={
        "dataSourceURL": "jdbc:postgresql://localhost:5432/db", "dataSourceUserName": "u", "dataSourcePassword": "p"})
    assert "not a Oracle JDBC URL" in errors_of(body)["relationalSchema.dataSourceURL"]
    body["relationalSchema"]["dataSourceURL"] = "jdbc:mysql://localhost/db"
    assert "not supported" in errors_of(body)["relationalSchema.dataSourceURL"]


def test_dotless_domain_allowed_when_switched_on(make_app):
    app = make_app(TENANT_DOTLESS_DOMAINS=True)
    with app.app_context():
        assert register(ldap_body(tenantDomain="acme")).domain == "acme"


def test_domain_is_derived_when_not_given(ctx):
    assert register(ldap_body(tenantId="Big_Co")).domain == "big-co.tenants.local"


# --- signing keys -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "needed"), [("HS384", 48), ("HS512", 64)])
def test_seed_key_is_too_short_for_longer_hashes(ctx, algorithm, needed):
    message = errors_of(ldap_body(supportAlgorithm=algorithm))["signingKey"]
    assert f"at least {needed} bytes" in message and "has 36" in message


def test_seed_key_is_fine_for_hs256_and_stored_encrypted(ctx, db):
    tenant = register(ldap_body())
    key = tenant.active_key
    assert (key.algorithm, key.key_bits, key.generated) == ("HS256", 288, False)
    raw = db.session.execute(sa.text("SELECT secret FROM signing_key")).scalar_one()
    raw_secret = db.session.execute(sa.text("SELECT client_secret FROM tenant")).scalar_one()
    assert SEED_KEY not in raw and "acme-client-secret-1" not in raw_secret


@pytest.mark.parametrize(("algorithm", "minimum"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_hmac_key_generated_when_blank(ctx, algorithm, minimum):
    key = register(ldap_body(supportAlgorithm=algorithm, signingKey=None)).active_key
    assert key.generated and len(key.secret.encode()) >= minimum


@pytest.mark.parametrize("size", [2048, 3072])
def test_rsa_key_pair_generated_in_the_chosen_size(ctx, size):
    key = register(ldap_body(supportAlgorithm="RS256", signingKey=None, rsaKeySize=size)).active_key
    assert key.generated and key.key_bits == size
    assert key.public_pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert len(key.kid) == 43  # RFC 7638 thumbprint, base64url SHA-256


def _pem(private) -> str:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption()).decode()


def test_supplied_rsa_key_is_imported(ctx):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = register(ldap_body(supportAlgorithm="RS384", signingKey=_pem(private))).active_key
    assert not key.generated and key.key_bits == 2048
    assert serialization.load_pem_private_key(key.secret.encode(), None).private_numbers() == private.private_numbers()


def test_unusable_rsa_keys_are_refused_with_the_reason(ctx):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    assert "1024 bits" in errors_of(ldap_body(supportAlgorithm="RS256", signingKey=_pem(weak)))["signingKey"]
    ec_key = _pem(ec.generate_private_key(ec.SECP256R1()))
    assert "RSA private key" in errors_of(ldap_body(supportAlgorithm="RS256", signingKey=ec_key))["signingKey"]
    locked = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")).decode()
    assert "encrypted" in errors_of(ldap_body(supportAlgorithm="RS256", signingKey=locked))["signingKey"]
    garbage = "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n"
    assert "not a readable PEM" in errors_of(ldap_body(supportAlgorithm="RS256", signingKey=garbage))["signingKey"]
    pem_for_hs = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert "shared secret" in errors_of(ldap_body(signingKey=pem_for_hs))["signingKey"]


# --- conflicts, audit, updates -----------------------------------------------------------------------------


def test_duplicate_id_ignoring_case_and_duplicate_domain_conflict(ctx):
    register(ldap_body(tenantDomain="acme.example.com"))
    with pytest.raises(Conflict) as caught:
        register(ldap_body(tenantId="ACME", tenantDomain="other.example.com"))
    assert set(caught.value.errors) == {"tenantId"}
    with pytest.raises(Conflict) as caught:
        register(ldap_body(tenantId="other", tenantDomain="acme.example.com"))
    assert set(caught.value.errors) == {"tenantDomain"}


def test_registration_is_audited_with_a_diff_and_no_secret(ctx, db):
    body = ldap_body(clientSecret="client-secret-XYZZY", owner={
        "username": "owner", "email": "owner@example.com", "provisioningMethod": "inline-password",
        "password": "owner-password-PLUGH"})
    body["ldapSchema"].update(bindDN="cn=admin,dc=example,dc=com", bindPassword="bind-password-FROB")
    register(body)
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "tenant.register")).scalar_one()
    assert (event.actor, event.object_id, event.request_id, event.ip) == ("tester", "acme", "req-1", "127.0.0.1")
    assert event.changes["clientId"] == {"before": None, "after": "acme-client"}
    assert event.changes["clientSecret"]["after"] == "[redacted]"
    text = str(event.changes)
    for secret in ("client-secret-XYZZY", "owner-password-PLUGH", "bind-password-FROB", SEED_KEY):
        assert secret not in text


def test_update_keeps_secrets_left_blank_and_refuses_renames(ctx):
    body = ldap_body(clientSecret="first-secret")
    body["ldapSchema"].update(bindDN="cn=admin,dc=example,dc=com", bindPassword="bind-pass")
    register(body)
    update = ldap_body(displayName="Acme Corp", clientSecret=None, signingKey=None)
    update["ldapSchema"]["bindDN"] = "cn=admin,dc=example,dc=com"
    tenant = tenants.update_tenant("acme", update, ACTOR, skip_check=True).tenant
    assert (tenant.display_name, tenant.client_secret, tenant.idp_secret) == ("Acme Corp", "first-secret", "bind-pass")
    assert len(tenant.keys) == 1
    with pytest.raises(ValidationError) as caught:
        tenants.update_tenant("acme", ldap_body(tenantDomain="new.example.com", clientSecret=None), ACTOR)
    assert "cannot change" in caught.value.errors["tenantDomain"]
    with pytest.raises(ValidationError) as caught:
        tenants.update_tenant("acme", ldap_body(tenantId="other", clientSecret=None), ACTOR)
    assert "cannot change" in caught.value.errors["tenantId"]


def test_rename_does_not_run_the_connection_check(ctx):
    register(ldap_body())  # its directory (port 1) is unreachable
    tenant = tenants.update_tenant("acme", ldap_body(displayName="Renamed", clientSecret=None), ACTOR).tenant
    assert tenant.display_name == "Renamed"


def test_new_key_rotates_and_algorithm_change_rotates_too(ctx, db):
    register(ldap_body())
    longer = "k" * 64
    tenants.update_tenant("acme", ldap_body(clientSecret=None, signingKey=longer), ACTOR, skip_check=True)
    tenants.update_tenant("acme", ldap_body(clientSecret=None, signingKey=None, supportAlgorithm="RS256"), ACTOR,
                          skip_check=True)
    states = db.session.execute(sa.select(SigningKey.algorithm, SigningKey.status).order_by(SigningKey.id)).all()
    # Both HS256 keys stay passive for the grace period (tests/test_algorithm_change.py: their tokens validate).
    assert [tuple(s) for s in states] == [("HS256", "passive"), ("HS256", "passive"), ("RS256", "active")]


def test_activation_is_audited_and_unknown_tenant_is_not_found(ctx, db):
    register(ldap_body())
    assert tenants.set_tenant_active("ACME", False, ACTOR).active is False
    actions = db.session.execute(sa.select(AuditEvent.action).order_by(AuditEvent.id)).scalars().all()
    assert actions == ["tenant.register", "tenant.deactivate"]
    with pytest.raises(NotFound):
        tenants.set_tenant_active("nobody", True, ACTOR)


def test_to_api_never_carries_a_secret(ctx):
    body = ldap_body(clientSecret="client-secret-XYZZY", supportAlgorithm="RS256", signingKey=None)
    body["ldapSchema"].update(bindDN="cn=admin,dc=example,dc=com", bindPassword="bind-password-FROB")
    tenant = register(body)
    text = str(tenants.to_api(tenant))
    assert "client-secret-XYZZY" not in text and "bind-password-FROB" not in text
    assert "PRIVATE KEY" not in text and tenant.active_key.secret not in text
    assert tenants.to_api(tenant)["ldapSchema"]["bindPasswordSet"] is True


def test_list_is_keyset_paged_and_filtered(ctx):
    for i in range(7):
        register(ldap_body(tenantId=f"t{i}", displayName=f"Tenant {i}", supportAlgorithm="HS256"))
    tenants.set_tenant_active("t3", False, ACTOR)
    first = tenants.list_tenants(tenants.TenantQuery(limit=3))
    assert [t.tenant_id for t in first.tenants] == ["t0", "t1", "t2"] and first.prev_before is None
    second = tenants.list_tenants(tenants.TenantQuery(limit=3, after=first.next_after))
    assert [t.tenant_id for t in second.tenants] == ["t3", "t4", "t5"]
    back = tenants.list_tenants(tenants.TenantQuery(limit=3, before=second.prev_before))
    assert [t.tenant_id for t in back.tenants] == ["t0", "t1", "t2"]
    assert [t.tenant_id for t in tenants.list_tenants(tenants.TenantQuery(status="inactive")).tenants] == ["t3"]
    assert [t.tenant_id for t in tenants.list_tenants(tenants.TenantQuery(q="T5")).tenants] == ["t5"]
    assert tenants.list_tenants(tenants.TenantQuery(q="t_")).tenants == []  # LIKE wildcards are literal
    assert tenants.list_tenants(tenants.TenantQuery(idp_type="POSTGRES")).tenants == []


# --- real connection checks ----------------------------------------------------------------------------------


def postgres_body(store: dict, **overrides) -> dict:
    body = {"tenantId": "pgco", "clientId": "order", "clientSecret": "order", "identityProviderType": "POSTGRES",
            "supportAlgorithm": "HS256", "signingKey": SEED_KEY,
            "relationalSchema": {"dataSourceURL": store["url"], "dataSourceUserName": store["role"],
                                 "dataSourcePassword": store["password"]}}
    body.update(overrides)
    return body


def test_postgres_registration_connects_and_provisions_the_user_store(ctx, pg_userstore):
    result = tenants.register_tenant(postgres_body(pg_userstore), ACTOR)
    assert result.check.ok and "PostgreSQL" in result.check.summary
    assert result.tenant.verified and result.tenant.check_status == "passed"
    url = f"postgresql://{pg_userstore['role']}@127.0.0.1:5432/{pg_userstore['database']}"
    with psycopg.connect(url, password=pg_userstore["password"]) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'tenant_users'")}
    assert {"um_user", "um_role", "um_user_role"} <= tables
    # A second check finds the store ready: provisioning is idempotent. (A second tenant on the same schema with the
    # same credentials is refused: tests/test_schema_sharing.py.)
    again = tenants.recheck_tenant("pgco", ACTOR)
    assert again.ok and "already present" in again.summary


def test_failed_check_refuses_unless_skipped_then_recheck_verifies(ctx, pg_userstore, db):
    body = postgres_body(pg_userstore)
    body["relationalSchema"]["dataSourceURL"] = "jdbc:postgresql://127.0.0.1:5432/no_such_db_here"
    with pytest.raises(CheckFailed) as caught:
        tenants.register_tenant(body, ACTOR)
    assert caught.value.errors[""].startswith("Connection check failed")
    assert db.session.execute(sa.select(sa.func.count()).select_from(Tenant)).scalar_one() == 0
    tenant = tenants.register_tenant(body, ACTOR, skip_check=True).tenant
    assert not tenant.verified and tenant.check_status == "unchecked"
    fixed = postgres_body(pg_userstore, clientSecret=None)
    tenants.update_tenant("pgco", fixed, ACTOR)
    assert tenants.get_tenant("pgco").verified
    assert tenants.recheck_tenant("pgco", ACTOR).ok


def test_ldap_registration_binds_to_a_real_slapd(ctx, slapd):
    body = ldap_body()
    body["ldapSchema"] = {"ldapURLForDirectoryService": slapd.ldap_url, "directoryServiceDomainName": slapd.domain_name,
                          "directoryServiceRootDistinguishedName": slapd.root_dn, "bindDN": slapd.admin_dn,
                          "bindPassword": slapd.admin_password, "startTLS": False}
    result = tenants.register_tenant(body, ACTOR)
    assert result.check.ok and result.tenant.verified
    body = ldap_body(tenantId="wrongpw")
    body["ldapSchema"] = {**body["ldapSchema"], "ldapURLForDirectoryService": slapd.ldap_url,
                          "bindDN": slapd.admin_dn, "bindPassword": "wrong-password"}
    with pytest.raises(CheckFailed) as caught:
        tenants.register_tenant(body, ACTOR)
    assert "wrong-password" not in str(caught.value.errors) + str(caught.value.result)


def external_body(issuer: str, jwks: str, **overrides) -> dict:
    body = {"tenantId": "extco", "clientId": "ext-client", "clientSecret": "ext-secret",
            "identityProviderType": "EXTERNAL", "supportAlgorithm": "RS256", "jwkSetUrl": jwks, "issuer": issuer,
            "oidcSchema": {"authUrl": issuer + "/authorize", "accessTokenUrl": issuer + "/token",
                           "scope": "openid profile"}}
    body.update(overrides)
    return body


def test_external_registration_checks_discovery_and_jwks(make_app, idp: Idp):
    app = make_app(OIDC_ALLOWED_NETWORKS=["127.0.0.1/32"], OIDC_CA_BUNDLE=str(idp.pki.ca_pem))
    issuer = idp.add_tenant("/svc/good", [idp.strong_jwk])
    with app.app_context():
        result = tenants.register_tenant(external_body(issuer, issuer + "/jwks"), ACTOR)
        assert result.check.ok and result.tenant.verified
        wrong = idp.add_tenant("/svc/wrong-issuer", [idp.strong_jwk], issuer="https://someone-else.example")
        with pytest.raises(CheckFailed) as caught:
            tenants.register_tenant(external_body(wrong, wrong + "/jwks", tenantId="ext2"), ACTOR)
        assert "issuer" in caught.value.errors


@pytest.mark.parametrize(("url", "fragment"), [
    ("https://127.0.0.1/issuer", "loopback"),
    ("https://169.254.169.254/latest", "169.254.169.254"),
    ("https://[::ffff:127.0.0.1]/issuer", "loopback"),
])
def test_ssrf_guard_refuses_internal_addresses(ctx, url, fragment):
    with pytest.raises(CheckFailed) as caught:
        tenants.register_tenant(external_body(url, url + "/jwks"), ACTOR)
    assert fragment in caught.value.errors["issuer"]


def test_ssrf_guard_refuses_redirects_and_oversized_documents(make_app, idp: Idp):
    from tests.oidc_server import Route

    app = make_app(OIDC_ALLOWED_NETWORKS=["127.0.0.1/32"], OIDC_CA_BUNDLE=str(idp.pki.ca_pem), OIDC_MAX_BYTES=4096)
    idp.routes["/svc/moved/.well-known/openid-configuration"] = Route(
        status=302, headers={"Location": "https://169.254.169.254/"}, body=b"")
    idp.routes["/svc/huge/.well-known/openid-configuration"] = Route(body=b'{"pad": "' + b"x" * 20000 + b'"}')
    with app.app_context():
        for prefix, fragment in (("/svc/moved", "redirect"), ("/svc/huge", "4096")):
            issuer = idp.base + prefix
            with pytest.raises(CheckFailed) as caught:
                tenants.register_tenant(external_body(issuer, issuer + "/jwks"), ACTOR)
            assert fragment in caught.value.errors["issuer"], caught.value.errors


def test_no_secret_reaches_the_logs(ctx, caplog, pg_userstore):
    caplog.set_level(logging.DEBUG)
    body = postgres_body(pg_userstore, clientSecret="client-secret-XYZZY")
    body["relationalSchema"]["dataSourceURL"] = "jdbc:postgresql://127.0.0.1:5432/no_such_db_here"
    with pytest.raises(CheckFailed):
        tenants.register_tenant(body, ACTOR)
    tenants.register_tenant(postgres_body(pg_userstore, clientSecret="client-secret-XYZZY"), ACTOR)
    for secret in ("client-secret-XYZZY", pg_userstore["password"], SEED_KEY):
        assert secret not in caplog.text


def test_api_listing_costs_two_queries_and_decrypts_nothing(ctx, monkeypatch):
    from portal import encryption
    from portal.extensions import db as _db

    for i in range(12):
        register(ldap_body(tenantId=f"q{i:02d}"))
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731 - before_cursor_execute(conn, cursor, stmt, ...)
    decrypted: list[str] = []
    real_decrypt = encryption.Cipher.decrypt
    monkeypatch.setattr(encryption.Cipher, "decrypt",
                        lambda self, token: decrypted.append(token) or real_decrypt(self, token))
    sa.event.listen(_db.engine, "before_cursor_execute", listener)
    try:
        page = tenants.list_tenants(tenants.TenantQuery(limit=10))
        bodies = [tenants.to_api(t) for t in page.tenants]
    finally:
        sa.event.remove(_db.engine, "before_cursor_execute", listener)
    assert len(bodies) == 10 and all(b["clientSecretSet"] and b["signingKey"]["kid"] for b in bodies)
    assert len(statements) == 2, statements  # the page, then the signing keys of the whole page
    assert decrypted == []
