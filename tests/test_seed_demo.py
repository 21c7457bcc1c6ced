"""`flask seed-demo`: many demo tenants fast, numbered after the existing ones, valid like registered ones."""
from __future__ import annotations

import sqlalchemy as sa

from portal.extensions import db as _db
from portal.models import AuditEvent, SigningKey, Tenant
from portal.services.context import Actor
from portal.services.tenants import demo, service as tenants, spec as tenant_spec
from portal.services.tokens import signing_keys


def _count(db, model) -> int:
    return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def test_seed_demo_adds_unique_tenants_and_runs_again_without_clashes(app, db):
    with app.app_context():
        assert demo.seed_demo(250) == 250
        assert demo.seed_demo(250) == 250
    ids = list(db.session.execute(sa.select(Tenant.tenant_id).order_by(Tenant.tenant_key)).scalars())
    assert len(ids) == len(set(ids)) == 500
    assert ids[0] == "demo-000001" and ids[-1] == "demo-000500"
    assert len(set(db.session.execute(sa.select(Tenant.domain)).scalars())) == 500
    assert set(db.session.execute(sa.select(Tenant.check_status)).scalars()) == {"unchecked"}
    assert {t for t in db.session.execute(sa.select(Tenant.idp_type)).scalars()} == {
        "ORACLE", "POSTGRES", "LDAP", "EXTERNAL"}
    # one active signing key per tenant, of the tenant's algorithm and long enough for it
    pairs = db.session.execute(sa.select(Tenant.support_algorithm, SigningKey).join(SigningKey)).all()
    assert len(pairs) == 500
    for algorithm, key in pairs:
        assert key.algorithm == algorithm and key.status == "active"
        if signing_keys.is_rsa(algorithm):
            assert key.key_bits >= 2048 and key.public_pem
        else:
            assert len(key.secret.encode()) >= signing_keys.HMAC_MIN_BYTES[algorithm]
    assert {k.algorithm for _, k in pairs} >= {"HS256", "RS256"}
    raw = db.session.execute(sa.text("SELECT client_secret FROM tenant LIMIT 1")).scalar_one()
    assert raw.startswith("gAAAA")  # Fernet: encrypted at rest like any other tenant
    events = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "tenant.seed_demo")).scalars().all()
    assert [e.changes["count"] for e in events] == [250, 250]
    assert events[1].changes["first"] == "demo-000251"


def test_numbering_skips_past_hand_made_demo_ids_and_taken_domains(app, db):
    with app.app_context():
        tenants.register_tenant({
            "tenantId": "demo-000007", "clientId": "c", "clientSecret": "s", "identityProviderType": "LDAP",
            "tenantDomain": "demo-000009.tenants.local",
            "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1",
                           "directoryServiceDomainName": "example.com",
                           "directoryServiceRootDistinguishedName": "dc=example,dc=com"}},
            Actor(name="tester"), skip_check=True)
        assert demo.seed_demo(3) == 3
    keys = sorted(db.session.execute(sa.select(Tenant.tenant_key)).scalars())
    assert keys == ["demo-000007", "demo-000008", "demo-000010", "demo-000011"]


def test_demo_tenants_validate_like_registered_ones(app):
    """Each type's stored settings are exactly what tenant_spec.parse makes of the equivalent request."""
    with app.app_context():
        demo.seed_demo(60)
        rules = tenants.rules()
        seen = set()
        for tenant in _db.session.execute(sa.select(Tenant)).scalars():
            body = tenants.to_api(tenant)
            request = {name: body[name] for name in ("tenantId", "displayName", "tenantDomain", "clientId",
                                                     "identityProviderType", "supportAlgorithm")}
            request["clientSecret"] = tenant.client_secret
            if body["owner"]:
                request["owner"] = {k: body["owner"][k] for k in ("username", "email", "firstName", "lastName",
                                                                  "provisioningMethod")}
            schema = {"ORACLE": "relationalSchema", "POSTGRES": "relationalSchema", "LDAP": "ldapSchema"}.get(
                tenant.idp_type)
            if tenant.idp_type == "EXTERNAL":
                request.update(jwkSetUrl=body["jwkSetUrl"], issuer=body["issuer"], oidcSchema=body["oidcSchema"])
            else:
                request[schema] = {k: v for k, v in tenant.idp_settings.items() if v is not None}
                if tenant.idp_secret:
                    request[schema]["dataSourcePassword" if schema == "relationalSchema" else "bindPassword"] = \
                        tenant.idp_secret
            spec = tenant_spec.parse(request, rules)
            assert spec.idp_settings == tenant.idp_settings, tenant.tenant_id
            assert spec.domain == tenant.domain
            seen.add(tenant.idp_type)
        assert seen == {"ORACLE", "POSTGRES", "LDAP", "EXTERNAL"}


def test_seed_demo_command(runner, db):
    result = runner.invoke(args=["seed-demo", "--tenants", "5"])
    assert result.exit_code == 0, result.output
    assert "Added 5 demo tenant(s)." in result.output
    assert _count(db, Tenant) == 5 and _count(db, SigningKey) == 5
