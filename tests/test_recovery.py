"""Recovery that works (issue 12, items 6 and 3), against both WSO2 simulators: delivery is level-triggered, so an
owner-less tenant's failed job is unblocked by adding the owner and pressing Retry; the pages name the fix and link
to it; a job can be opened, retried or discarded; owners are required whenever propagation is on; invite-via-email
owners get a generated API Manager password (and the IS 7 -> API Manager listener's failure is repaired with it);
API Manager -> IS 7 sharing refuses invitations."""
from __future__ import annotations

import html
import re

import pytest
import sqlalchemy as sa

from portal.extensions import db as _db
from portal.models import AuditEvent, OutboxJob, SyncState, Tenant
from portal.services.errors import Conflict, ValidationError
from portal.services.outbox import policy, store
from portal.services.outbox.worker import Worker
from portal.services.tenants import service as tenants
from tests.sync_env import ACTOR
from tests.test_sync import FAST, PASSWORD, body, drain, job_states, states


@pytest.fixture
def bare(make_app):
    """A portal with no product connection yet: propagation is off, an owner is not required."""
    return make_app(**FAST)


def once(app):
    """One pass of the worker over what is due now (a held-back job is not due)."""
    return Worker(app, concurrency=1).run(once=True)


def owner_less(tenant_id: str) -> dict:
    return {**body(tenant_id), "owner": None}


def jobs(app) -> list[OutboxJob]:
    with app.app_context():
        found = list(_db.session.execute(sa.select(OutboxJob).order_by(OutboxJob.id)).scalars())
        _db.session.expunge_all()
        return found


def sync_state(app, tenant_id: str) -> dict[str, SyncState]:
    with app.app_context():
        tenant = tenants.get_tenant(tenant_id)
        rows = {s.product: s for s in _db.session.execute(
            sa.select(SyncState).where(SyncState.tenant_id == tenant.id)).scalars()}
        _db.session.expunge_all()
        return rows


# --- The owner-less -> fixed -> synced story --------------------------------------------------------------------


def test_an_owner_less_tenant_fails_then_adding_the_owner_and_retrying_syncs_it(bare, env, admin_client):
    # Registered before any product connection existed: an owner was not required then.
    with bare.app_context():
        tenants.register_tenant(owner_less("acme"), ACTOR, skip_check=True)
    env.connect(bare)
    env.share(bare, "off")
    stats = drain(bare)
    assert stats.failed == 1 and stats.done == 0
    assert env.is7.tenant("acme.example.com") is None and env.apim.tenant("acme.example.com") is None
    create = jobs(bare)[0]
    assert (create.op, create.status, create.fix) == ("create", "failed", "owner")
    assert "no owner" in create.last_error
    found = sync_state(bare, "acme")
    assert {p: (s.status, s.fix, s.next_attempt_at) for p, s in found.items()} == {
        "is": ("failed", "owner", None), "apim": ("failed", "owner", None)}

    # Every page names the fix and links to the owner section of the edit page.
    edit_link = 'href="/tenants/acme/edit#owner"'
    tenant_page = admin_client.get("/tenants/acme").get_data(as_text=True)
    assert "Waiting for a person" in tenant_page and edit_link in tenant_page
    assert 'data-fix="owner"' in tenant_page and "Retry now" in tenant_page
    overview = admin_client.get("/sync/").get_data(as_text=True)
    assert edit_link in overview and f'href="/sync/jobs/{create.id}"' in overview
    job_page = admin_client.get(f"/sync/jobs/{create.id}").get_data(as_text=True)
    assert "Waiting for a person" in job_page and edit_link in job_page
    assert 'data-job-status="failed"' in job_page and "Queued by" in job_page

    # The fix: the edit service adds the owner (propagation is on now, so it is required).
    with bare.app_context():
        with pytest.raises(ValidationError) as refused:
            tenants.update_tenant("acme", owner_less("acme"), ACTOR, skip_check=True)
        assert set(refused.value.errors) == {"owner.username", "owner.email"}
        assert "IS 7 creates every tenant with its owner" in refused.value.errors["owner.username"]
        tenants.update_tenant("acme", body("acme"), ACTOR, skip_check=True)
    assert job_states(bare) == ["failed", "pending"]  # the owner update waits behind the failed create
    assert once(bare).done == 0  # fixing the tenant alone does not retry: a person presses Retry

    response = admin_client.post(f"/sync/jobs/{create.id}/retry")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/sync/jobs/{create.id}")
    assert drain(bare).done == 2
    in_is, in_apim = env.is7.tenant("acme.example.com"), env.apim.tenant("acme.example.com")
    assert (in_is.owner.username, in_is.owner.email) == ("acme-admin", "admin@acme.example.com")
    assert (in_apim.admin, in_apim.email, in_apim.active) == ("acme-admin", "admin@acme.example.com", True)
    assert env.apim.state.tenants["acme.example.com"].password == PASSWORD
    assert env.creates("acme.example.com") == {"is": 1, "apim": 1}
    assert states(bare, "acme") == {"is": "synced", "apim": "synced"}
    assert {s.fix for s in sync_state(bare, "acme").values()} == {None}
    # The payload stays the record of what the change was: a create of an owner-less tenant, no secret.
    create = jobs(bare)[0]
    assert create.payload["owner"] is None and create.status == "done" and create.fix is None
    with bare.app_context():
        actions = set(_db.session.execute(sa.select(AuditEvent.action)).scalars())
    assert {"sync.job_retry", "tenant.update"} <= actions
    page = admin_client.get("/tenants/acme").get_data(as_text=True)
    assert "Waiting for a person" not in page and 'data-sync-status="synced"' in page


def test_retry_and_discard_are_refused_while_a_job_runs_and_not_offered(bare, env, admin_client):
    with bare.app_context():
        tenants.register_tenant(owner_less("acme"), ACTOR, skip_check=True)
        job = _db.session.execute(sa.select(OutboxJob)).scalar_one()
        job.status = "running"  # as a worker's claim leaves it
        _db.session.commit()
        job_id = job.id
        for refused in (lambda: store.retry_job(job_id, ACTOR), lambda: store.discard_job(job_id, ACTOR),
                        lambda: store.retry_now("acme", ACTOR)):
            with pytest.raises(Conflict, match="A worker is delivering"):
                refused()
    for page in (f"/sync/jobs/{job_id}", "/tenants/acme", "/sync/"):
        text = admin_client.get(page).get_data(as_text=True)
        assert f"/sync/jobs/{job_id}/retry" not in text and "/sync/tenants/acme/retry" not in text, page
    assert "Retry is offered when the attempt ends" in admin_client.get("/tenants/acme").get_data(as_text=True)
    response = admin_client.post(f"/sync/jobs/{job_id}/retry", follow_redirects=True)
    assert "A worker is delivering job" in html.unescape(response.get_data(as_text=True))


def test_a_discarded_job_no_longer_holds_back_the_tenants_later_jobs(bare, env, admin_client, auditor_client):
    with bare.app_context():
        tenants.register_tenant(owner_less("acme"), ACTOR, skip_check=True)
    env.connect(bare)
    env.share(bare, "off")
    drain(bare)
    with bare.app_context():
        tenants.update_tenant("acme", body("acme"), ACTOR, skip_check=True)  # an owner update, held back
    assert once(bare).done == 0 and job_states(bare) == ["failed", "pending"]
    create, update = jobs(bare)
    assert auditor_client.get(f"/sync/jobs/{create.id}").status_code == 200
    assert auditor_client.post(f"/sync/jobs/{create.id}/discard").status_code == 403
    response = admin_client.post(f"/sync/jobs/{create.id}/discard")
    assert response.status_code == 302
    assert job_states(bare) == ["discarded", "pending"]
    stats = drain(bare)  # the owner update runs now: level-triggered, it brings the whole tenant
    assert stats.done == 1 and job_states(bare) == ["discarded", "done"]
    assert env.is7.tenant("acme.example.com") is not None and env.apim.tenant("acme.example.com") is not None
    with bare.app_context():
        event = _db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "sync.job_discard")
                                    ).scalar_one()
        assert event.changes["op"] == "create" and event.object_id == "acme"
        with pytest.raises(Conflict, match="only a failed or waiting job"):
            store.discard_job(create.id, ACTOR)
    page = admin_client.get(f"/sync/jobs/{create.id}").get_data(as_text=True)
    assert 'data-job-status="discarded"' in page and f"/sync/jobs/{create.id}/retry" not in page


def test_discarding_the_only_failed_job_points_at_reconcile(bare, env):
    with bare.app_context():
        tenants.register_tenant(owner_less("acme"), ACTOR, skip_check=True)
    env.connect(bare)
    drain(bare)
    with bare.app_context():
        store.discard_job(jobs(bare)[0].id, ACTOR)
    found = sync_state(bare, "acme")
    assert {(s.status, s.fix) for s in found.values()} == {("failed", "reconcile")}
    assert "discarded by sync-tester" in found["is"].error


def test_the_job_page_shows_the_payload_without_secrets(bare, env, admin_client):
    env.connect(bare)
    with bare.app_context():
        tenants.register_tenant(body("acme"), ACTOR, skip_check=True)
        changed = body("acme")
        changed["owner"] = {**changed["owner"], "password": "Another#Pass456"}
        tenants.update_tenant("acme", changed, ACTOR, skip_check=True)
    update = jobs(bare)[1]
    page = html.unescape(admin_client.get(f"/sync/jobs/{update.id}").get_data(as_text=True))
    assert '"passwordChanged": true' in page and '"username": "acme-admin"' in page
    assert PASSWORD not in page and "Another#Pass456" not in page
    assert admin_client.get("/sync/jobs/999999").status_code == 404


def test_fix_hints_come_from_the_products_answers(bare, env, admin_client):
    """A 403 (the portal's IS user lacks the tenant permission) names the permission fix and the connection page."""
    env.connect(bare)
    env.share(bare, "off")
    env.is7.push_fault("GET", "/api/server/v1/tenants/domain", 403, body={
        "code": "AUT-10455", "message": "Operation is not permitted.", "description": "No permission."})
    with bare.app_context():
        tenants.register_tenant(body("acme"), ACTOR, skip_check=True)
    drain(bare)
    found = sync_state(bare, "acme")
    assert (found["is"].status, found["is"].fix, found["is"].next_attempt_at) == ("failed", "permission", None)
    page = admin_client.get("/tenants/acme").get_data(as_text=True)
    assert 'data-fix="permission"' in page and 'href="/sharing/connections/is"' in page


# --- Owners: required while propagation is on ------------------------------------------------------------------


def test_owners_are_required_on_every_door_only_while_propagation_is_on(bare, env, admin_client):
    with bare.app_context():
        assert policy.propagation_on() is False
        tenants.register_tenant(owner_less("early"), ACTOR, skip_check=True)  # nothing is written anywhere yet
    env.connect(bare)
    with bare.app_context():
        assert policy.propagation_on() is True
        with pytest.raises(ValidationError) as refused:
            tenants.register_tenant(owner_less("late"), ACTOR, skip_check=True)
        assert set(refused.value.errors) == {"owner.username", "owner.email"}
        with pytest.raises(ValidationError):  # an owner object with nothing in it is no owner either
            tenants.register_tenant({**owner_less("late"), "owner": {"username": "", "email": ""}}, ACTOR,
                                    skip_check=True)
    form = {"tenantId": "late", "clientId": "c", "clientSecret": "s", "identityProviderType": "LDAP",
            "supportAlgorithm": "HS256", "rsaKeySize": "2048", "ownerProvisioningMethod": "invite-via-email",
            "ldapURLForDirectoryService": "ldap://127.0.0.1:1", "directoryServiceDomainName": "example.com",
            "directoryServiceRootDistinguishedName": "dc=example,dc=com", "skip_check": "y", "save": "Register"}
    page = html.unescape(admin_client.post("/tenants/new", data=form).get_data(as_text=True))
    assert "An owner is required" in page and "Tenant owner (required)" in page


def test_api_and_bulk_refuse_owner_less_tenants_while_propagation_is_on(bare, env):
    from tests.api_helpers import make_api

    env.connect(bare)
    caller = make_api(bare, "owners")
    response = bare.test_client().post("/v1/tenant", json={**owner_less("late"), "skipConnectionCheck": True},
                                       headers=caller.headers)
    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert "IS 7 creates every tenant with its owner" in errors["owner.username"] and "owner.email" in errors

    from portal.services.tenants import bulk

    rows = (b'{"tenantId": "b1", "clientId": "c", "clientSecret": "s", "identityProviderType": "LDAP", '
            b'"ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1", '
            b'"directoryServiceDomainName": "example.com", '
            b'"directoryServiceRootDistinguishedName": "dc=example,dc=com"}}'
            b"\n")
    with bare.app_context():
        parsed = bulk.parse_file("t.jsonl", rows, 10)
        outcome = next(bulk._classify(parsed.rows))
    assert outcome.outcome == "failed" and "owner.username" in outcome.errors


# --- invite-via-email owners and API Manager -----------------------------------------------------------------------


def invited(tenant_id: str) -> dict:
    data = body(tenant_id)
    data["owner"] = {"username": f"{tenant_id}-admin", "email": f"admin@{tenant_id}.example.com",
                     "firstName": "Ada", "lastName": "Admin", "provisioningMethod": "invite-via-email"}
    return data


def generated_password(app, tenant_id: str) -> str | None:
    with app.app_context():
        return _db.session.execute(sa.select(Tenant.apim_admin_password).where(
            Tenant.tenant_key == tenant_id)).scalar_one()


def test_invite_via_email_with_sharing_off_generates_a_password_for_api_manager_only(bare, env, admin_client):
    env.connect(bare)
    env.share(bare, "off")
    with bare.app_context():
        tenants.register_tenant(invited("acme"), ACTOR, skip_check=True)
    secret = generated_password(bare, "acme")
    assert secret and 24 <= len(secret) <= 30
    assert re.search(r"[A-Z]", secret) and re.search(r"[0-9]", secret) and re.search(r"[^A-Za-z0-9]", secret)
    assert drain(bare).done == 1
    created = next(r for r in env.is7.requests if r.method == "POST" and r.path.endswith("/tenants"))
    owner = created.json()["owners"][0]
    assert owner["provisioningMethod"] == "invite-via-email" and "password" not in owner
    assert env.apim.state.tenants["acme.example.com"].password == secret
    for page in ("/tenants/acme", "/tenants/acme/edit", f"/sync/jobs/{jobs(bare)[0].id}"):
        assert secret not in admin_client.get(page).get_data(as_text=True), page
    with bare.app_context():
        audit_text = str(list(_db.session.execute(sa.select(AuditEvent.changes)).scalars()))
    assert secret not in audit_text

    # Kept across edits (API Manager already has it); cleared for an inline-password owner.
    with bare.app_context():
        renamed = {**invited("acme"), "displayName": "Acme Corp"}
        tenants.update_tenant("acme", renamed, ACTOR, skip_check=True)
    assert generated_password(bare, "acme") == secret
    with bare.app_context():
        tenants.update_tenant("acme", body("acme"), ACTOR, skip_check=True)
    assert generated_password(bare, "acme") is None


def test_is_to_apim_the_listeners_failure_for_an_invited_owner_is_repaired_with_the_generated_password(bare, env):
    env.connect(bare)
    env.share(bare, "is_to_apim")
    with bare.app_context():
        tenants.register_tenant(invited("acme"), ACTOR, skip_check=True)
    assert drain(bare).done == 1
    assert env.is7.wait_for_sync()
    assert [a.outcome for a in env.is7.sync_attempts] == [500]  # API Manager's notify could not add it
    tenant = env.apim.tenant("acme.example.com")
    assert tenant is not None and tenant.active is True
    assert any(r.operation == "addTenant" and r.basic_user == "portal" for r in env.apim.requests)  # the repair
    assert env.apim.state.tenants["acme.example.com"].password == generated_password(bare, "acme")
    assert env.creates("acme.example.com")["apim"] == 1
    assert states(bare, "acme") == {"is": "synced", "apim": "synced"}


def test_apim_to_is_refuses_invitations_with_a_reason(bare, env, admin_client):
    env.connect(bare)
    env.share(bare, "apim_to_is")
    with bare.app_context():
        with pytest.raises(ValidationError) as refused:
            tenants.register_tenant(invited("acme"), ACTOR, skip_check=True)
        message = refused.value.errors["owner.provisioningMethod"]
        assert "inline-password" in message and "invitation email can never be sent" in message
        tenants.register_tenant(body("acme"), ACTOR, skip_check=True)  # inline-password is fine
        with pytest.raises(ValidationError) as refused:  # and an edit cannot switch to an invitation
            tenants.update_tenant("acme", invited("acme"), ACTOR, skip_check=True)
        assert "owner.provisioningMethod" in refused.value.errors
    page = html.unescape(admin_client.get("/tenants/new").get_data(as_text=True))
    assert "API Manager → IS 7 sharing is on: choose" in page
