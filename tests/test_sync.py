"""Propagation end to end: tenant changes reach the IS 7 and API Manager simulators through the outbox and the
worker, in each sharing mode, exactly once, through faults (IS down, API Manager answering 500, connection resets,
a worker dying mid-job) and the products' own sync failing (IS's listener never retries an HTTP error; API Manager
rolls its own change back when IS refuses it). Plus the pages: sync state in the list and on the tenant page,
"retry now", and the worker command."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db as _db
from portal.models import AuditEvent, OutboxJob
from portal.models.base import utcnow
from portal.services.outbox import delivery, policy, products, reads
from portal.services.outbox.store import claim
from portal.services.outbox.worker import Worker
from portal.services.tenants import service as tenants
from tests.sync_env import ACTOR, Wso2

FAST = {"SYNC_BACKOFF_BASE": 0.05, "SYNC_BACKOFF_CAP": 0.2, "SYNC_VERIFY_SECONDS": 2.0, "SYNC_POLL_INTERVAL": 0.05,
        "SYNC_LEASE_SECONDS": 30.0, "SYNC_MAX_ATTEMPTS": 8}
PASSWORD = "Owner#Pass123"


def body(tenant_id: str, **extra) -> dict:
    return {"tenantId": tenant_id, "displayName": f"Tenant {tenant_id}", "tenantDomain": f"{tenant_id}.example.com",
            "clientId": "c", "clientSecret": "s", "identityProviderType": "LDAP",
            "owner": {"username": f"{tenant_id}-admin", "email": f"admin@{tenant_id}.example.com",
                      "firstName": "Ada", "lastName": "Admin", "provisioningMethod": "inline-password",
                      "password": PASSWORD},
            "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1",
                           "directoryServiceDomainName": "example.com",
                           "directoryServiceRootDistinguishedName": "dc=example,dc=com"}, **extra}


@pytest.fixture
def portal(make_app, env: Wso2):
    app = make_app(**FAST)
    env.connect(app)
    return app


# A failed attempt's next one a second away: one worker pass then makes exactly one attempt even on a loaded machine
# (with FAST's 50 ms a slow pass met the job due again), and drain() still waits only a second for the retry.
ONE_RETRY_PER_PASS = {**FAST, "SYNC_BACKOFF_BASE": 1.0, "SYNC_BACKOFF_CAP": 1.0}


@pytest.fixture
def held_retry(make_app, env: Wso2):
    app = make_app(**ONE_RETRY_PER_PASS)
    env.connect(app)
    return app


def register(app, tenant_id: str, **extra):
    with app.app_context():
        return tenants.register_tenant(body(tenant_id, **extra), ACTOR, skip_check=True).tenant.domain


def drain(app, *, concurrency: int = 2, timeout: float = 30.0):
    return Worker(app, concurrency=concurrency, poll_interval=0.05).drain(timeout=timeout)


def states(app, tenant_id: str) -> dict[str, str]:
    with app.app_context():
        return {p: s.status for p, s in reads.states_for_keys([tenant_id]).get(tenant_id, {}).items()}


def job_states(app) -> list[str]:
    with app.app_context():
        return list(_db.session.execute(sa.select(OutboxJob.status).order_by(OutboxJob.id)).scalars())


def assert_converged(env: Wso2, domain: str, *, active: bool = True, email: str | None = None) -> None:
    in_is, in_apim = env.is7.tenant(domain), env.apim.tenant(domain)
    assert in_is is not None and in_apim is not None, (in_is, in_apim)
    assert (in_is.activated, in_apim.active) == (active, active)
    if email:
        assert (in_is.owner.email, in_apim.email) == (email, email)
    assert env.creates(domain) == {"is": 1, "apim": 1}  # exactly once, whoever created it


# --- The three modes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["off", "is_to_apim", "apim_to_is"])
def test_onboarding_converges_in_both_products_in_each_mode(portal, env, direction):
    env.share(portal, direction)
    domain = register(portal, "acme")
    stats = drain(portal)
    assert stats.done == 1 and stats.failed == 0
    assert_converged(env, domain)
    is_tenant = env.is7.tenant(domain)
    assert (is_tenant.owner.username, is_tenant.owner.email) == ("acme-admin", "admin@acme.example.com")
    apim_tenant = env.apim.tenant(domain)
    assert (apim_tenant.admin, apim_tenant.firstname, apim_tenant.lastname) == ("acme-admin", "Ada", "Admin")
    assert states(portal, "acme") == {"is": "synced", "apim": "synced"}
    if direction == "is_to_apim":  # the portal wrote IS only; API Manager heard of it from IS's listener
        assert env.is7.sync_events and not any(r.operation == "addTenant" and r.basic_user == "portal"
                                               for r in env.apim.requests)
    if direction == "apim_to_is":  # the portal wrote API Manager only; IS heard of it from API Manager
        assert any(c.method == "POST" and c.outcome == 201 for c in env.apim.sharing_calls)
        assert not any(r.method == "POST" and r.basic_user == "portal" for r in env.is7.requests)

    # The rest of a tenant's life follows, in order.
    with portal.app_context():
        changed = body("acme")
        changed["owner"] = {**changed["owner"], "email": "boss@acme.example.com", "firstName": "Bo",
                            "password": "New#Owner456"}
        tenants.update_tenant("acme", changed, ACTOR, skip_check=True)
        tenants.set_tenant_active("acme", False, ACTOR)
    assert drain(portal).failed == 0
    assert_converged(env, domain, active=False, email="boss@acme.example.com")
    assert env.apim.tenant(domain).firstname == "Bo"
    assert env.apim.state.tenants[domain].password == "New#Owner456"
    with portal.app_context():
        tenants.set_tenant_active("acme", True, ACTOR)
    drain(portal)
    assert_converged(env, domain, active=True)
    assert set(job_states(portal)) == {"done"}


# --- Faults: every change arrives exactly once when the fault clears ------------------------------------------------


def test_is_down_during_a_create_then_back(held_retry, env):
    portal = held_retry
    env.share(portal, "off")
    env.is7.go_down()
    domain = register(portal, "acme")
    stats = Worker(portal, concurrency=1).run(once=True)
    assert stats.retry == 1
    with portal.app_context():
        state = reads.states_for_keys(["acme"])["acme"]
    assert state["is"].status == "failed" and state["is"].next_attempt_at is not None  # retrying by itself
    assert "refused" in state["is"].error
    assert state["apim"].status == "synced"  # API Manager was up: its part is done and not redone
    env.is7.come_up()
    drain(portal)
    assert_converged(env, domain)
    assert states(portal, "acme") == {"is": "synced", "apim": "synced"}


def test_api_manager_answering_500_then_recovering(portal, env):
    env.share(portal, "off")
    for _ in range(2):
        env.apim.push_fault("POST", "/services/TenantMgtAdminService", 500, operation="addTenant")
    domain = register(portal, "acme")
    stats = drain(portal)
    assert stats.retry == 2 and stats.done == 1
    assert_converged(env, domain)


def test_connection_resets_lose_nothing_and_create_nothing_twice(portal, env):
    env.share(portal, "off")
    env.is7.push_fault("POST", "/api/server/v1/tenants", "reset")  # the create itself is cut off
    env.apim.push_fault("POST", "/services/TenantMgtAdminService", "reset", operation="addTenant")
    env.is7.push_fault("GET", "/api/server/v1/tenants/domain", "reset")  # and a read, which the client retries
    domain = register(portal, "acme")
    drain(portal)
    assert_converged(env, domain)


def test_a_reset_after_the_product_acted_still_counts_once(portal, env):
    """The answer to a create is lost after the product created the tenant: the retry finds it and is done."""
    env.share(portal, "off")
    domain = register(portal, "acme")
    with portal.app_context():
        taken = claim("dead-worker", policy.settings())
        sides = {"is": products.IsSide(_client("is")), "apim": products.ApimSide(_client("apim"))}
        delivery.ensure(sides["is"], delivery.desired_now(taken.tenant_id, taken.payload), owner_update=False)
        # ...and the worker dies here, before recording anything: the lease runs out, another takes over.
        _db.session.execute(sa.update(OutboxJob).values(lease_until=utcnow() - timedelta(seconds=1)))
        _db.session.commit()
    stats = drain(portal)
    assert stats.done == 1
    assert_converged(env, domain)
    with portal.app_context():
        job = _db.session.execute(sa.select(OutboxJob)).scalar_one()
        assert (job.status, job.attempts, job.claimed_by.startswith("dead")) == ("done", 2, False)


def _client(product: str):
    from portal.services.sharing import connections

    return connections.is_client() if product == "is" else connections.apim_client()


def test_deactivation_never_overtakes_the_create_it_follows(portal, env):
    env.share(portal, "off")
    env.is7.go_down()
    domain = register(portal, "acme")
    with portal.app_context():
        tenants.set_tenant_active("acme", False, ACTOR)
    Worker(portal, concurrency=4).run(once=True)
    assert job_states(portal) == ["pending", "pending"]  # the creation waits to retry, the deactivation behind it
    # Level-triggered: the creation delivered the tenant as it is NOW (already deactivated), not as it was queued.
    assert env.apim.tenant(domain).active is False
    env.is7.come_up()
    drain(portal, concurrency=4)
    assert_converged(env, domain, active=False)


def test_a_refusal_gives_up_at_once_and_retry_now_delivers_after_the_fix(portal, env, admin_client):
    env.share(portal, "off")
    env.is7.push_fault("POST", "/api/server/v1/tenants", 400, body={
        "code": "TM-60018", "message": "Unable to add tenant.", "description": "Rejected by a listener."})
    domain = register(portal, "acme")
    stats = drain(portal)
    assert stats.failed == 1 and env.is7.tenant(domain) is None
    page = admin_client.get("/tenants/acme").get_data(as_text=True)
    trace_id = next(r.trace_id for r in env.is7.requests if r.method == "POST")
    assert "TM-60018" in page and trace_id in page and "Gave up after 1 attempt" in page
    listing = admin_client.get("/tenants/").get_data(as_text=True)
    assert re.search(r'data-sync-product="is" data-sync-status="failed"', listing)

    response = admin_client.post("/sync/tenants/acme/retry")
    assert response.status_code == 302 and response.headers["Location"].endswith("/tenants/acme")
    drain(portal)
    assert_converged(env, domain)
    with portal.app_context():
        assert _db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "sync.retry")).scalar_one()


# --- The products' own sync failing: the portal verifies and repairs -------------------------------------------------


def test_is_listener_meets_an_api_manager_500_and_the_portal_repairs(portal, env):
    env.share(portal, "is_to_apim")
    env.apim.push_fault("POST", "/internal/data/v1/notify", 500)  # IS's listener gives up on any HTTP error
    domain = register(portal, "acme")
    assert drain(portal).done == 1
    assert env.is7.wait_for_sync()
    assert [a.outcome for a in env.is7.sync_attempts] == [500]  # sent once, never retried by IS
    assert_converged(env, domain)
    assert any(r.operation == "addTenant" and r.basic_user == "portal" for r in env.apim.requests)  # repaired


def test_api_manager_rolls_back_when_is_is_down_and_the_portal_repairs_both(held_retry, env):
    portal = held_retry
    env.share(portal, "apim_to_is")
    env.is7.go_down()
    domain = register(portal, "acme")
    stats = Worker(portal, concurrency=1).run(once=True)
    assert stats.retry == 1
    # API Manager created the tenant, could not confirm it in IS, and deactivated it (§5's initial activation).
    assert env.apim.tenant(domain).active is False
    assert any("Deactivating tenant" in e for e in env.apim.events)
    assert states(portal, "acme")["is"] == "failed"
    env.is7.come_up()
    drain(portal)
    assert_converged(env, domain, active=True)


# --- Pages and the command --------------------------------------------------------------------------------------


def test_the_list_shows_each_products_state_and_the_page_polls_it(portal, env, admin_client):
    env.share(portal, "off")
    register(portal, "acme")
    listing = admin_client.get("/tenants/").get_data(as_text=True)
    assert 'data-sync-product="is" data-sync-status="pending"' in listing
    assert 'data-sync-product="apim" data-sync-status="pending"' in listing
    assert "js/sync.js" in listing
    drain(portal)
    answer = admin_client.get("/sync/states?t=acme&t=unknown").get_json()
    assert answer["acme"]["is"]["status"] == "synced" and answer["acme"]["apim"]["badge"] == "state-ok"
    assert "unknown" not in answer
    overview = admin_client.get("/sync/").get_data(as_text=True)
    assert "No failed job." in overview


def test_the_worker_command_delivers_what_is_due(portal, env):
    env.share(portal, "off")
    domain = register(portal, "acme")
    result = portal.test_cli_runner().invoke(args=["worker", "--once", "--concurrency", "2"])
    assert result.exit_code == 0, result.output
    assert "Delivered 1," in result.output
    assert_converged(env, domain)


def test_auditors_read_but_cannot_retry(portal, env, auditor_client):
    register(portal, "acme")
    assert auditor_client.get("/sync/").status_code == 200
    assert auditor_client.post("/sync/retry").status_code == 403
    assert auditor_client.post("/sync/tenants/acme/retry").status_code == 403
