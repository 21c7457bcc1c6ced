"""The tenant's WSO2-IS-7 key manager, checked through API Manager's admin REST API against the API Manager simulator
(which creates it per new tenant the way ISTenantSyncListener does): each status, the repair of a missing one, the
worker's check after a delivery (which a failing check never fails), the tenant page's section (roles, CSRF), the
CLI command and reconcile's column."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from portal.clients.api_manager import ApiManagerClient
from portal.extensions import db as _db
from portal.models import AuditEvent, KeyManagerCheck, OutboxJob, Tenant
from portal.services.outbox import reads, reconcile
from portal.services.outbox.worker import Worker
from portal.services.sharing import key_managers, service as sharing
from portal.services.tenants import service as tenants
from simulators.apim import KeyManagerConfig
from simulators.apim_keys import ADMIN_PREFIX, is7_key_manager
from tests.fixtures.accounts import create_admin, csrf_token, login
from tests.sync_env import ACTOR, LISTENER_PASSWORD, LISTENER_USER, Wso2

FAST = {"SYNC_BACKOFF_BASE": 0.05, "SYNC_BACKOFF_CAP": 0.2, "SYNC_VERIFY_SECONDS": 2.0, "SYNC_POLL_INTERVAL": 0.05,
        "SYNC_LEASE_SECONDS": 30.0, "SYNC_MAX_ATTEMPTS": 3}
PASSWORD = "Owner#Pass123"


def body(tenant_id: str) -> dict:
    return {"tenantId": tenant_id, "displayName": f"Tenant {tenant_id}", "tenantDomain": f"{tenant_id}.example.com",
            "clientId": "c", "clientSecret": "s", "identityProviderType": "LDAP",
            "owner": {"username": f"{tenant_id}-admin", "email": f"admin@{tenant_id}.example.com",
                      "firstName": "Ada", "lastName": "Admin", "provisioningMethod": "inline-password",
                      "password": PASSWORD},
            "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1",
                           "directoryServiceDomainName": "example.com",
                           "directoryServiceRootDistinguishedName": "dc=example,dc=com"}}


@pytest.fixture
def portal(make_app, env: Wso2):
    app = make_app(**FAST)
    env.connect(app)
    return app


def configure(app, env: Wso2, direction: str, *, portal_auto: bool = True, apim_auto: bool = True,
              apim_skip: bool = True) -> None:
    """The direction in both places; API Manager's own key manager settings (what its deployment.toml holds) and
    the portal's may differ, which is what the check finds out."""
    env.share(app, direction)
    env.apim.configure(skip_create_resident_key_manager=apim_skip)
    env.apim.configure_key_manager(KeyManagerConfig(env.is7.base_url, apim_auto, ca_pem=env.pki.server_ca.cert_pem))
    if direction != "off":
        settings = {"apim_username": LISTENER_USER, "apim_password": LISTENER_PASSWORD,
                    "identity_server_base_url": env.is7.base_url, "is_username": "apim-sharing",
                    "is_password": "sharing#pass1", "auto_configure_key_manager": portal_auto,
                    "skip_create_resident_key_manager": True}
        with app.app_context():
            sharing.set_direction(direction, settings, ACTOR, confirm=True, check=False)


def onboard(app, tenant_id: str = "acme") -> str:
    """Register a tenant and deliver it: it is synced in both products afterwards."""
    with app.app_context():
        tenants.register_tenant(body(tenant_id), ACTOR, skip_check=True)
    stats = Worker(app, concurrency=1, poll_interval=0.05).drain(timeout=30)
    assert stats.done >= 1 and stats.failed == 0, stats
    with app.app_context():
        states = reads.states_for_keys([tenant_id])[tenant_id]
        assert {p: s.status for p, s in states.items()} == {"is": "synced", "apim": "synced"}
    return f"{tenant_id}.example.com"


def detach(row: KeyManagerCheck | None) -> KeyManagerCheck | None:
    """The row loaded and out of the session, to read after the app context ends."""
    if row is not None:
        _db.session.refresh(row)
        _db.session.expunge(row)
    return row


def stored(app, tenant_id: str = "acme") -> KeyManagerCheck | None:
    with app.app_context():
        row = _db.session.execute(sa.select(KeyManagerCheck).join(Tenant, Tenant.id == KeyManagerCheck.tenant_id)
                                  .where(Tenant.tenant_id == tenant_id)).scalar_one_or_none()
        return detach(row)


def check(app, tenant_id: str = "acme") -> KeyManagerCheck:
    with app.app_context():
        return detach(key_managers.check(tenant_id))


def admin_calls(env: Wso2) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in env.apim.requests if r.path.startswith(ADMIN_PREFIX)]


# --- Each status ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["is_to_apim", "apim_to_is"])
def test_the_auto_configured_key_manager_is_ok_and_checked_after_the_delivery(portal, env, direction):
    configure(portal, env, direction)
    domain = onboard(portal)
    [manager] = env.apim.key_managers(domain)
    assert manager["type"] == "WSO2-IS-7"
    row = stored(portal)  # the worker checked after the create job completed
    assert row is not None and row.status == "ok", row and row.detail
    assert row.key_manager_id == manager["id"]
    assert "acme-admin@acme.example.com" in row.detail
    # As the tenant's admin, with the owner's password: never the portal's own user.
    users = {r.basic_user for r in env.apim.requests if r.path.startswith(ADMIN_PREFIX)}
    assert users == {"acme-admin@acme.example.com"}
    again = check(portal)
    assert again.status == "ok" and again.checked_at >= row.checked_at


def test_missing_is_reported_and_repaired_with_the_connectors_settings(portal, env, admin_client):
    configure(portal, env, "is_to_apim", apim_auto=False)  # API Manager's deployment.toml lacks auto-configure
    domain = onboard(portal)
    assert env.apim.key_managers(domain) == []
    row = stored(portal)
    assert row.status == "missing" and "no WSO2-IS-7 key manager" in row.detail and row.repaired_at is None
    page = admin_client.get("/tenants/acme").get_data(as_text=True)
    assert 'data-key-manager-status="missing"' in page and ">Repair</button>" in page

    response = admin_client.post("/tenants/acme/key-manager/repair")
    assert response.status_code == 302 and response.headers["Location"].endswith("/tenants/acme#key-manager")
    [created] = env.apim.key_managers(domain)
    expected = is7_key_manager(env.is7.base_url, domain, "acme-admin")  # the simulator's copy of the connector
    for name in ("name", "type", "displayName", "description", "enabled", "tokenType", "issuer", "certificates",
                 "tokenEndpoint", "clientRegistrationEndpoint", "availableGrantTypes"):
        assert created[name] == expected[name], name
    for name in ("Authentication", "MutualTLSOptions", "IdentityUser", "TenantDomain",
                 "api_resource_management_endpoint", "is7_roles_endpoint", "token_endpoint", "certificate_value"):
        assert created["additionalProperties"][name] == expected["additionalProperties"][name], name
    row = stored(portal)
    assert row.status == "ok" and row.repaired_at is not None and row.key_manager_id == created["id"]
    with portal.app_context():
        [event] = _db.session.execute(sa.select(AuditEvent).where(
            AuditEvent.action == "tenant.key_manager_repair")).scalars().all()
        assert event.object_id == "acme" and event.changes["key_manager"] == {"before": "missing", "after": "ok"}
        assert PASSWORD not in str(event.changes)
        # Checks alone are not audited.
        key_managers.check("acme")
        assert _db.session.execute(sa.select(sa.func.count()).select_from(AuditEvent).where(
            AuditEvent.action.like("%key_manager%"))).scalar_one() == 1
    page = admin_client.get("/tenants/acme").get_data(as_text=True)
    assert 'data-key-manager-status="ok"' in page and ">Repair</button>" not in page and "Repaired" in page


def test_a_resident_key_manager_holding_the_name_is_missing_but_not_repairable(portal, env, admin_client):
    configure(portal, env, "apim_to_is", apim_skip=False)  # API Manager made its default Resident Key Manager
    domain = onboard(portal)
    assert [m["type"] for m in env.apim.key_managers(domain)] == ["default"]
    row = stored(portal)
    assert row.status == "missing" and key_managers.NAME_TAKEN in row.detail
    assert ">Repair</button>" not in admin_client.get("/tenants/acme").get_data(as_text=True)
    admin_client.post("/tenants/acme/key-manager/repair")
    assert [m["type"] for m in env.apim.key_managers(domain)] == ["default"]  # nothing created
    assert not any(method == "POST" for method, _ in admin_calls(env))


def test_duplicates_are_reported_and_never_deleted(portal, env, admin_client):
    configure(portal, env, "is_to_apim")
    domain = onboard(portal)
    second = {**is7_key_manager(env.is7.base_url, domain, "acme-admin"), "name": "IS7 by hand"}
    second.pop("id")
    env.apim.add_key_manager(domain, second)
    row = check(portal)
    assert row.status == "duplicate" and "2 WSO2-IS-7 key managers" in row.detail and row.key_manager_id is None
    admin_client.post("/tenants/acme/key-manager/repair")
    assert len(env.apim.key_managers(domain)) == 2
    assert {method for method, _ in admin_calls(env)} == {"GET"}  # no POST, PUT or DELETE, ever


def test_a_mismatch_says_which_settings_differ_and_is_left_alone(portal, env):
    configure(portal, env, "is_to_apim")
    domain = onboard(portal)
    [manager] = env.apim.key_managers(domain)
    client = ApiManagerClient(env.apim.base_url, ca_pem=env.pki.server_ca.cert_pem, username="portal",
                              password="unused")
    with client:  # someone changed it by hand in API Manager's admin portal
        raw = dict(client.get_key_manager(manager["id"], "acme-admin@acme.example.com", PASSWORD).raw)
        raw["additionalProperties"] = {**raw["additionalProperties"], "IdentityUser": "admin",
                                       "MutualTLSOptions": "TenantWide"}
        client.update_key_manager(manager["id"], raw, "acme-admin@acme.example.com", PASSWORD)
    row = check(portal)
    assert row.status == "mismatch" and row.key_manager_id == manager["id"]
    assert "IdentityUser is admin, not acme-admin@acme.example.com" in row.detail
    assert "MutualTLSOptions is TenantWide, not ServerWide" in row.detail
    with portal.app_context(), pytest.raises(key_managers.Conflict):
        key_managers.repair("acme", ACTOR)
    [after] = env.apim.key_managers(domain)
    assert after["additionalProperties"]["IdentityUser"] == "admin"


def test_not_expected_when_auto_configure_is_off_asks_nothing(portal, env):
    configure(portal, env, "is_to_apim", portal_auto=False)
    onboard(portal)
    assert stored(portal) is None  # the worker wrote nothing for a tenant that needs no key manager
    row = check(portal)
    assert row.status == "not_expected" and "auto_configure_key_manager is off" in row.detail
    configure(portal, env, "off")
    assert "Sharing is off" in check(portal).detail
    assert admin_calls(env) == []


def test_unverifiable_without_the_tenant_admins_password(portal, env):
    configure(portal, env, "is_to_apim")
    onboard(portal)
    with portal.app_context():
        tenant = tenants.get_tenant("acme")
        tenant.owner_password = None
        _db.session.commit()
    before = len(admin_calls(env))
    row = check(portal)
    assert row.status == "unverifiable" and "no password of acme-admin@acme.example.com" in row.detail
    assert len(admin_calls(env)) == before
    with portal.app_context():
        tenant = tenants.get_tenant("acme")
        tenant.owner_provisioning, tenant.apim_admin_password = "invite-via-email", None
        _db.session.commit()
    assert "generated" in check(portal).detail


def test_invite_via_email_owners_are_checked_with_the_generated_api_manager_password(portal, env):
    configure(portal, env, "apim_to_is")
    domain = onboard(portal)
    with portal.app_context():  # the password the portal generated and sent only to API Manager
        tenant = tenants.get_tenant("acme")
        tenant.owner_provisioning, tenant.owner_password = "invite-via-email", None
        tenant.apim_admin_password = env.apim.tenant(domain).password
        _db.session.commit()
    assert check(portal).status == "ok"


def test_error_when_api_manager_refuses_or_fails(portal, env):
    configure(portal, env, "is_to_apim")
    onboard(portal)
    with portal.app_context():
        tenants.get_tenant("acme").owner_password = "Changed#Elsewhere1"  # changed in API Manager meanwhile
        _db.session.commit()
    row = check(portal)
    assert row.status == "error" and "refused the credentials" in row.detail and "Changed" not in row.detail
    with portal.app_context():
        tenants.get_tenant("acme").owner_password = PASSWORD
        _db.session.commit()
    for _ in range(6):  # more than the client's retries of an idempotent read
        env.apim.push_fault("GET", ADMIN_PREFIX, 503)
    row = check(portal)
    assert row.status == "error" and "503" in row.detail


# --- The worker's hook -------------------------------------------------------------------------------------------


def test_a_failing_check_never_fails_the_delivery(portal, env):
    configure(portal, env, "is_to_apim")
    for _ in range(20):
        env.apim.push_fault(None, ADMIN_PREFIX, "reset")
    onboard(portal)  # asserts the job is done and both products synced
    with portal.app_context():
        assert _db.session.execute(sa.select(OutboxJob.status)).scalars().all() == ["done"]
    row = stored(portal)
    assert row.status == "error"


def test_the_hook_can_be_turned_off(make_app, env):
    app = make_app(**FAST, KEY_MANAGER_CHECK_AFTER_SYNC=False)
    env.connect(app)
    configure(app, env, "is_to_apim")
    onboard(app)
    assert stored(app) is None and admin_calls(env) == []


# --- Page, roles, CSRF -------------------------------------------------------------------------------------------


def test_the_section_by_role(portal, env, signed_in):
    configure(portal, env, "is_to_apim")
    onboard(portal)
    auditor = signed_in("auditor")
    page = auditor.get("/tenants/acme").get_data(as_text=True)
    assert 'id="key-manager"' in page and 'data-key-manager-status="ok"' in page and "Check now" not in page
    assert auditor.post("/tenants/acme/key-manager/check").status_code == 403
    assert auditor.post("/tenants/acme/key-manager/repair").status_code == 403
    operator = signed_in("operator")
    assert "Check now" in operator.get("/tenants/acme").get_data(as_text=True)
    response = operator.post("/tenants/acme/key-manager/check", follow_redirects=True)
    assert response.status_code == 200 and "Key manager: ok." in response.get_data(as_text=True)
    assert operator.post("/tenants/nobody/key-manager/check").status_code == 404


def test_the_buttons_need_a_csrf_token(make_app, env):
    app = make_app(**FAST, WTF_CSRF_ENABLED=True)
    env.connect(app)
    configure(app, env, "is_to_apim", apim_auto=False)
    onboard(app)
    before = stored(app)
    create_admin(app, "root-admin", "admin")
    client = app.test_client()
    assert login(client, "root-admin", csrf_token=csrf_token(client)).status_code == 302
    assert client.post("/tenants/acme/key-manager/repair").status_code == 400
    assert client.post("/tenants/acme/key-manager/check").status_code == 400
    assert env.apim.key_managers("acme.example.com") == []
    assert stored(app).checked_at == before.checked_at
    token = csrf_token(client, "/tenants/acme")
    assert client.post("/tenants/acme/key-manager/repair", data={"csrf_token": token}).status_code == 302
    assert stored(app).status == "ok"


# --- CLI and reconcile ------------------------------------------------------------------------------------------


def test_the_cli_checks_every_synced_tenant_and_repairs_on_request(portal, env):
    configure(portal, env, "is_to_apim", apim_auto=False)
    onboard(portal, "acme")
    onboard(portal, "beta")
    runner = portal.test_cli_runner()
    result = runner.invoke(args=["check-key-managers"])
    assert result.exit_code == 1, result.output
    assert "Checked 2 synced tenant(s): missing 2." in result.output
    assert "acme: missing" in result.output and "beta: missing" in result.output
    result = runner.invoke(args=["check-key-managers", "--repair"])
    assert result.exit_code == 0, result.output
    assert "Checked 2 synced tenant(s): ok 2. Repaired: acme, beta." in result.output
    assert PASSWORD not in result.output


def test_reconcile_shows_each_tenants_key_manager(portal, env, admin_client):
    configure(portal, env, "is_to_apim", apim_auto=False)
    onboard(portal)
    with portal.app_context():
        report = reconcile.compare()
    [row] = report.rows
    assert row.domain == "acme.example.com" and row.key_manager == "missing"
    assert [issue.kind for issue in row.issues] == ["key_manager"]
    page = admin_client.get("/sync/reconcile").get_data(as_text=True)
    assert 'data-key-manager-status="missing"' in page and "/tenants/acme#key-manager" in page
