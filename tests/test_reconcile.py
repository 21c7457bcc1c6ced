"""Reconcile: the registry, IS 7 and API Manager side by side. Each kind of drift is planted in the simulators (a
tenant missing in a product, a tenant the registry lacks, activation that differs, an owner that differs, a
product that cannot be read), found, and fixed through the outbox; fixes are audited; the page and the command."""
from __future__ import annotations

import html

import pytest
import sqlalchemy as sa

from portal.extensions import db as _db
from portal.models import AuditEvent, Tenant
from portal.services.errors import NotFound, ValidationError
from portal.services.outbox import reconcile
from portal.services.outbox.worker import Worker
from portal.services.tenants import service as tenants
from tests.sync_env import ACTOR, Wso2

FAST = {"SYNC_BACKOFF_BASE": 0.05, "SYNC_BACKOFF_CAP": 0.2, "SYNC_VERIFY_SECONDS": 2.0, "SYNC_POLL_INTERVAL": 0.05}
LDAP = {"ldapURLForDirectoryService": "ldap://127.0.0.1:1", "directoryServiceDomainName": "example.com",
        "directoryServiceRootDistinguishedName": "dc=example,dc=com"}


def body(tenant_id: str) -> dict:
    return {"tenantId": tenant_id, "tenantDomain": f"{tenant_id}.example.com", "clientId": "c", "clientSecret": "s",
            "identityProviderType": "LDAP", "ldapSchema": LDAP,
            "owner": {"username": f"{tenant_id}-admin", "email": f"admin@{tenant_id}.example.com",
                      "firstName": "Ada", "lastName": "Admin", "provisioningMethod": "inline-password",
                      "password": "Owner#Pass123"}}


@pytest.fixture
def portal(make_app, env: Wso2):
    app = make_app(**FAST)
    env.connect(app)
    env.share(app, "off")
    return app


def onboard(app, *tenant_ids: str) -> None:
    with app.app_context():
        for tenant_id in tenant_ids:
            tenants.register_tenant(body(tenant_id), ACTOR, skip_check=True)
    drain(app)


def drain(app) -> None:
    stats = Worker(app, concurrency=2, poll_interval=0.05).drain(timeout=30)
    assert stats.failed == 0


def compare(app) -> dict[str, reconcile.Row]:
    with app.app_context():
        return {row.domain: row for row in reconcile.compare().rows}


def kinds(row: reconcile.Row) -> set[tuple[str, str | None]]:
    return {(issue.kind, issue.product) for issue in row.issues}


def drop_from_is(env: Wso2, domain: str) -> None:
    with env.is7.state.lock:
        env.is7.state.tenants = {k: t for k, t in env.is7.state.tenants.items() if t.domain != domain}


def test_nothing_differs_after_onboarding(portal, env):
    onboard(portal, "alpha", "beta")
    with portal.app_context():
        report = reconcile.compare(include_in_sync=True)
    assert report.drift == 0 and report.in_sync == 2 and not report.unreadable
    assert report.counts == {"registry": 2, "is": 2, "apim": 2}
    assert all(row.products["is"] and row.products["apim"] for row in report.rows)


def test_a_tenant_missing_in_a_product_is_found_and_pushed(portal, env):
    onboard(portal, "alpha", "beta")
    drop_from_is(env, "alpha.example.com")
    with env.apim.state.lock:
        del env.apim.state.tenants["beta.example.com"]
    rows = compare(portal)
    assert kinds(rows["alpha.example.com"]) == {("missing", "is")}
    assert kinds(rows["beta.example.com"]) == {("missing", "apim")}
    assert [f.action for f in rows["alpha.example.com"].fixes] == ["push"]
    with portal.app_context():
        message = reconcile.fix("alpha.example.com", "push", ACTOR)
        assert "Queued" in message
        assert [line for line in reconcile.fix_all(ACTOR)]  # beta, the one left
    assert compare(portal)["alpha.example.com"].sync_open  # on its way: the page says so
    drain(portal)
    assert compare(portal) == {}
    assert env.is7.tenant("alpha.example.com").owner.username == "alpha-admin"
    assert env.apim.tenant("beta.example.com").admin == "beta-admin"
    with portal.app_context():
        pushes = _db.session.execute(sa.select(AuditEvent.object_id).where(AuditEvent.action == "reconcile.push")
                                     ).scalars().all()
    assert sorted(pushes) == ["alpha", "beta"]


def test_activation_that_differs_is_aligned_either_way(portal, env):
    onboard(portal, "alpha", "beta")
    env.is7.tenant("alpha.example.com").activated = False  # someone deactivated it in IS's console
    with env.apim.state.lock:
        env.apim.state.tenants["beta.example.com"].active = False
    rows = compare(portal)
    assert kinds(rows["alpha.example.com"]) == {("status", "is")}
    assert kinds(rows["beta.example.com"]) == {("status", "apim")}
    assert {f.action for f in rows["beta.example.com"].fixes} == {"push", "adopt_apim"}
    with portal.app_context():
        reconcile.fix("alpha.example.com", "push", ACTOR)  # the registry is right: IS is activated again
        reconcile.fix("beta.example.com", "adopt_apim", ACTOR)  # API Manager is right: the registry follows
        assert _db.session.execute(sa.select(Tenant.active).where(Tenant.tenant_key == "beta")).scalar_one() is False
    drain(portal)
    assert compare(portal) == {}
    assert env.is7.tenant("alpha.example.com").activated is True
    assert env.is7.tenant("beta.example.com").activated is False  # the registry's change went on to IS
    with portal.app_context():
        adopted = _db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "reconcile.adopt_apim")
                                      ).scalar_one()
    assert adopted.changes["status"] == {"before": "active", "after": "inactive"}


def test_a_tenant_the_registry_lacks_is_imported_without_creating_it_again(portal, env):
    env.is7.add_tenant("legacy.example.com", owner="old-admin", email="old@legacy.example.com", name="Legacy")
    env.apim.add_tenant("legacy.example.com", admin="old-admin", email="old@legacy.example.com", firstname="Old",
                        lastname="Admin")
    env.is7.add_tenant("only-is.example.com", owner="someone")
    rows = compare(portal)
    assert kinds(rows["legacy.example.com"]) == {("unregistered", None)}
    assert [f.action for f in rows["legacy.example.com"].fixes] == ["import"]
    assert "In IS 7 but not in the registry." in rows["only-is.example.com"].issues[0].text
    with portal.app_context():
        prefill = reconcile.import_prefill("legacy.example.com")
        assert prefill == {"tenantId": "legacy-example-com", "displayName": "Legacy",
                           "tenantDomain": "legacy.example.com",
                           "owner": {"username": "old-admin", "email": "old@legacy.example.com", "firstName": "Old",
                                     "lastName": "Admin", "provisioningMethod": "invite-via-email"}}
        with pytest.raises(NotFound):
            reconcile.import_prefill("nowhere.example.com")
        reconcile.import_tenant("legacy.example.com", {"tenantId": "legacy", "clientId": "c", "clientSecret": "s",
                                                       "identityProviderType": "LDAP", "ldapSchema": LDAP},
                                ACTOR, skip_check=True)
        assert _db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "reconcile.import")).scalar_one()
    drain(portal)  # the registration's create job finds the tenant in both products: nothing is created
    assert "legacy.example.com" not in compare(portal)
    assert env.creates("legacy.example.com") == {"is": 0, "apim": 0}


def test_an_owner_that_differs_is_flagged_for_a_person(portal, env):
    env.is7.add_tenant("alpha.example.com", owner="intruder")
    with portal.app_context():
        tenants.register_tenant(body("alpha"), ACTOR, skip_check=True)
    stats = Worker(portal, concurrency=1).drain(timeout=30)
    assert stats.failed == 1  # the portal will not adopt someone else's tenant
    row = compare(portal)["alpha.example.com"]
    assert ("owner", "is") in kinds(row)
    assert "intruder" in " ".join(i.text for i in row.issues)


def test_an_unreadable_product_is_reported_not_flagged_missing(portal, env):
    onboard(portal, "alpha")
    env.apim.go_down()
    with portal.app_context():
        report = reconcile.compare()
    assert "apim" in report.unreadable and "refused" in report.unreadable["apim"]
    assert report.drift == 0 and "apim" not in report.counts


def test_fix_refuses_what_it_cannot_do(portal, env):
    onboard(portal, "alpha")
    with portal.app_context():
        with pytest.raises(ValidationError):
            reconcile.fix("alpha.example.com", "delete", ACTOR)
        with pytest.raises(NotFound):
            reconcile.fix("ghost.example.com", "push", ACTOR)


def test_the_page_lists_drift_and_applies_a_fix(portal, env, operator_client, auditor_client):
    onboard(portal, "alpha")
    drop_from_is(env, "alpha.example.com")
    env.is7.add_tenant("legacy.example.com", owner="old-admin")
    page = auditor_client.get("/sync/reconcile").get_data(as_text=True)
    assert "Missing in IS 7." in page and "legacy.example.com" in page
    assert 'name="action" value="push"' not in page  # auditors read only
    page = operator_client.get("/sync/reconcile").get_data(as_text=True)
    assert 'name="action" value="push"' in page and "/tenants/new?import=legacy.example.com" in page
    response = operator_client.post("/sync/reconcile/fix", data={"domain": "alpha.example.com", "action": "push"})
    assert response.status_code == 302
    assert "Queued" in html.unescape(operator_client.get("/sync/reconcile").get_data(as_text=True))
    assert auditor_client.post("/sync/reconcile/fix", data={"domain": "alpha.example.com",
                                                            "action": "push"}).status_code == 403
    form = operator_client.get("/tenants/new?import=legacy.example.com").get_data(as_text=True)
    assert 'value="legacy.example.com"' in form and 'value="old-admin"' in form
    drain(portal)
    assert env.is7.tenant("alpha.example.com") is not None


def test_the_command_lists_and_fixes(portal, env):
    onboard(portal, "alpha")
    drop_from_is(env, "alpha.example.com")
    runner = portal.test_cli_runner()
    result = runner.invoke(args=["reconcile"])
    assert result.exit_code == 0, result.output
    assert "With differences: 1." in result.output and "Missing in IS 7." in result.output
    result = runner.invoke(args=["reconcile", "--fix"])
    assert "Queued 1 fix(es)" in result.output
    drain(portal)
    result = runner.invoke(args=["reconcile"])
    assert "With differences: 0." in result.output
    env.is7.go_down()
    result = runner.invoke(args=["reconcile"])
    assert result.exit_code == 2 and "IS 7 could not be read" in result.output
