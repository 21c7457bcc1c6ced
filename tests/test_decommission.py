"""Decommissioning (issue 12, item 8) against both WSO2 simulators: confirmed on the tenant page or by
DELETE /v1/tenant/<id>, the worker deactivates the tenant in IS 7 and API Manager, deletes it where the product
allows (IS 7: 400 TM-60016 when deletion is off; API Manager: deleteTenant answers success and does nothing), records
the outcomes and removes the tenant from the registry. Reconcile shows a decommissioned domain a product kept as
decommissioned, not as a stray."""
from __future__ import annotations

import html

import pytest
import sqlalchemy as sa

from portal.extensions import db as _db
from portal.models import AuditEvent, Decommission, OutboxJob, Tenant
from portal.services.errors import Conflict, ValidationError
from portal.services.outbox import decommission, reconcile, store
from portal.services.tenants import service as tenants
from tests.api_helpers import make_api
from tests.sync_env import ACTOR, Wso2
from tests.test_sync import FAST, ONE_RETRY_PER_PASS, body, drain

DOMAIN = "acme.example.com"


@pytest.fixture
def portal(make_app, env: Wso2):
    app = make_app(**FAST)
    env.connect(app)
    return app


@pytest.fixture
def held_retry(make_app, env: Wso2):
    app = make_app(**ONE_RETRY_PER_PASS)
    env.connect(app)
    return app


def onboard(app, env: Wso2, direction: str = "off", tenant_id: str = "acme") -> None:
    env.share(app, direction)
    with app.app_context():
        tenants.register_tenant(body(tenant_id), ACTOR, skip_check=True)
    assert drain(app).done == 1
    assert env.is7.tenant(f"{tenant_id}.example.com") and env.apim.tenant(f"{tenant_id}.example.com")


def record(app) -> Decommission:
    with app.app_context():
        found = _db.session.execute(sa.select(Decommission).order_by(Decommission.id.desc())).scalars().first()
        _db.session.expunge_all()
        return found


def registered(app, tenant_id: str = "acme") -> bool:
    with app.app_context():
        return _db.session.execute(sa.select(Tenant.id).where(Tenant.tenant_key == tenant_id)).first() is not None


def test_the_api_decommissions_and_products_without_deletion_keep_it_deactivated(portal, env, admin_client):
    onboard(portal, env)
    caller = make_api(portal, "decommission")
    api = portal.test_client()
    response = api.delete("/v1/tenant/ACME", headers=caller.headers)
    assert response.status_code == 202
    assert response.headers["Location"].endswith("/v1/tenant/acme")
    answer = response.get_json()
    assert (answer["tenantId"], answer["tenantDomain"], answer["status"]) == ("acme", DOMAIN, "decommissioning")
    assert answer["outcomes"] == {"is": "pending", "apim": "pending"}
    assert api.delete("/v1/tenant/acme", headers=caller.headers).status_code == 202  # idempotent
    with portal.app_context():
        assert _db.session.execute(sa.select(sa.func.count()).select_from(Decommission)).scalar_one() == 1

    # While decommissioning, nothing else changes it.
    shown = api.get("/v1/tenant/acme", headers=caller.headers).get_json()
    assert shown["decommissioning"]["requestedBy"] == f"api:{caller.app_id}"
    refused = api.put("/v1/tenant/acme", json={**body("acme"), "skipConnectionCheck": True}, headers=caller.headers)
    assert refused.status_code == 409 and "being decommissioned" in refused.get_json()["detail"]
    assert api.post("/v1/tenant/acme/activate", headers=caller.headers).status_code == 409
    with portal.app_context(), pytest.raises(Conflict, match="being decommissioned"):
        reconcile.fix(DOMAIN, "push", ACTOR)
    page = admin_client.get("/tenants/acme").get_data(as_text=True)
    assert "Being decommissioned" in page and "/tenants/acme/edit" not in page
    edit = admin_client.get("/tenants/acme/edit")
    assert edit.status_code == 302 and edit.headers["Location"].endswith("/tenants/acme")

    assert drain(portal).done == 1
    assert not registered(portal)
    assert api.get("/v1/tenant/acme", headers=caller.headers).status_code == 404
    assert api.delete("/v1/tenant/acme", headers=caller.headers).status_code == 404
    in_is, in_apim = env.is7.tenant(DOMAIN), env.apim.tenant(DOMAIN)
    assert (in_is.activated, in_apim.active) == (False, False)  # deletion is off in both: kept deactivated
    done = record(portal)
    assert (done.is_outcome, done.apim_outcome) == ("deactivated", "deactivated")
    assert done.completed_at is not None and "TM-60016" in done.note and "still has the tenant" in done.note
    with portal.app_context():
        actions = [a for a in _db.session.execute(sa.select(AuditEvent.action).where(
            AuditEvent.object_id == "acme").order_by(AuditEvent.id)).scalars()]
        assert actions[-2:] == ["decommission.request", "decommission.done"]
        assert _db.session.execute(sa.select(sa.func.count()).select_from(OutboxJob)).scalar_one() == 0

    # Reconcile: a decommissioned domain kept deactivated is no stray and offers no import.
    with portal.app_context():
        report = reconcile.compare()
    row = next(r for r in report.rows if r.domain == DOMAIN)
    assert row.note == "decommissioned (kept deactivated: deletion disabled)"
    assert (row.issues, row.fixes, report.drift, report.decommissioned) == ([], [], 0, 1)
    page = html.unescape(admin_client.get("/sync/reconcile").get_data(as_text=True))
    assert "decommissioned (kept deactivated: deletion disabled)" in page
    assert f"import={DOMAIN}" not in page and 'data-decommissioned="acme"' in page
    listing = html.unescape(admin_client.get("/tenants/decommissions").get_data(as_text=True))
    assert "kept deactivated (deletion disabled)" in listing and DOMAIN in listing
    cli = portal.test_cli_runner().invoke(args=["reconcile"])
    assert f"{DOMAIN} (not registered): decommissioned (kept deactivated" in cli.output


@pytest.mark.parametrize("direction", ["off", "is_to_apim", "apim_to_is"])
def test_products_that_allow_deletion_lose_the_tenant_in_each_mode(portal, env, direction):
    env.is7.configure(tenant_deletion=True)
    env.apim.configure(tenant_deletion=True)
    onboard(portal, env, direction)
    with portal.app_context():
        decommission.request("acme", ACTOR, confirm="acme")
    assert drain(portal).done == 1
    assert env.is7.tenant(DOMAIN) is None and env.apim.tenant(DOMAIN) is None
    done = record(portal)
    assert (done.is_outcome, done.apim_outcome) == ("deleted", "deleted")
    with portal.app_context():
        report = reconcile.compare()
    assert not [r for r in report.rows if r.domain == DOMAIN]


def test_a_reactivation_rolled_back_or_a_product_down_is_retried(held_retry, env):
    portal = held_retry
    onboard(portal, env)
    env.is7.go_down()
    with portal.app_context():
        decommission.request("acme", ACTOR, confirm="ACME")
    from portal.services.outbox.worker import Worker

    assert Worker(portal, concurrency=1).run(once=True).retry == 1
    assert registered(portal) and record(portal).completed_at is None
    env.is7.come_up()
    assert drain(portal).done == 1
    done = record(portal)
    assert (done.is_outcome, done.apim_outcome) == ("deactivated", "deactivated") and not registered(portal)


def test_decommissioning_before_delivery_discards_the_waiting_create(portal, env):
    env.share(portal, "off")
    with portal.app_context():
        tenants.register_tenant(body("acme"), ACTOR, skip_check=True)
        decommission.request("acme", ACTOR, confirm="acme")
        statuses = list(_db.session.execute(sa.select(OutboxJob.op, OutboxJob.status).order_by(OutboxJob.id)).all())
    assert [tuple(s) for s in statuses] == [("create", "discarded"), ("decommission", "pending")]
    assert drain(portal).done == 1
    assert env.is7.tenant(DOMAIN) is None and env.apim.tenant(DOMAIN) is None
    assert env.creates(DOMAIN) == {"is": 0, "apim": 0}
    done = record(portal)
    assert (done.is_outcome, done.apim_outcome) == ("absent", "absent") and not registered(portal)


def test_discarding_the_decommission_job_cancels_it(portal, env):
    onboard(portal, env)
    env.is7.go_down()
    with portal.app_context():
        decommission.request("acme", ACTOR, confirm="acme")
        job_id = _db.session.execute(sa.select(OutboxJob.id).where(OutboxJob.op == "decommission")).scalar_one()
        store.discard_job(job_id, ACTOR)
        tenant = tenants.get_tenant("acme")
        assert tenant.decommission_requested_at is None
        tenants.set_tenant_active("acme", False, ACTOR)  # changeable again
    assert record(portal).note.startswith("Cancelled by sync-tester")
    with portal.app_context():
        assert decommission.recent()[0].state == "cancelled"


def test_the_tenant_page_asks_an_admin_to_type_the_tenant_id(portal, env, admin_client, operator_client):
    onboard(portal, env)
    assert operator_client.post("/tenants/acme/decommission", data={"confirm": "acme"}).status_code == 403
    assert 'id="decommission"' not in operator_client.get("/tenants/acme").get_data(as_text=True)
    page = admin_client.get("/tenants/acme").get_data(as_text=True)
    assert 'id="decommission"' in page and "Type the tenant id to confirm" in page
    wrong = admin_client.post("/tenants/acme/decommission", data={"confirm": "acm"})
    assert wrong.status_code == 400
    assert "Type the tenant id, acme, to confirm" in html.unescape(wrong.get_data(as_text=True))
    assert registered(portal) and record(portal) is None
    right = admin_client.post("/tenants/acme/decommission", data={"confirm": "acme"})
    assert right.status_code == 302 and right.headers["Location"].endswith("/tenants/acme")
    assert "Being decommissioned" in admin_client.get("/tenants/acme").get_data(as_text=True)
    assert ">decommissioning</span>" in admin_client.get("/tenants/?q=acme").get_data(as_text=True)
    refused = admin_client.post("/tenants/acme/deactivate", follow_redirects=True)
    assert "being decommissioned" in html.unescape(refused.get_data(as_text=True))
    drain(portal)
    assert admin_client.get("/tenants/acme").status_code == 404


def test_without_any_product_connection_the_tenant_goes_at_once(make_app):
    app = make_app(**FAST)
    with app.app_context():
        tenants.register_tenant({**body("acme"), "owner": None}, ACTOR, skip_check=True)
        with pytest.raises(ValidationError):
            decommission.request("acme", ACTOR, confirm="other")
    caller = make_api(app, "decommission")
    response = app.test_client().delete("/v1/tenant/acme", headers=caller.headers)
    assert response.status_code == 202 and response.get_json()["status"] == "decommissioned"
    assert response.get_json()["outcomes"] == {"is": "absent", "apim": "absent"}
    assert not registered(app)
    assert "never wrote the tenant" in record(app).note
