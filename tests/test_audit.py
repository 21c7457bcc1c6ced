"""The audit trail: one entry per change, in the change's transaction, with diffs and no secret values."""
import json

import pytest
import sqlalchemy as sa

from portal.extensions import db as _db
from portal.models import AuditEvent
from portal.services.admin import api_clients, audit
from portal.services.context import Actor
from portal.services.tenants import service as tenants
from tests.api_helpers import ldap_body
from tests.conftest import create_admin


def _events(db, action=None):
    q = sa.select(AuditEvent).order_by(AuditEvent.id)
    if action:
        q = q.where(AuditEvent.action == action)
    return db.session.execute(q).scalars().all()


def test_change_entry_holds_the_diff_and_no_secret(app, admin_client, db):
    bob_id = create_admin(app, "bob", "operator")
    admin_client.post(f"/admins/{bob_id}/role", data={"role": "auditor"}, headers={"X-Request-ID": "req-role-1"})
    [event] = _events(db, "admin.role")
    assert event.actor == "admin-user" and event.object_type == "admin" and event.object_id == str(bob_id)
    assert event.changes == {"role": {"before": "operator", "after": "auditor"}}
    assert event.request_id == "req-role-1" and event.ip == "127.0.0.1"
    assert event.at.tzinfo is not None

    response = admin_client.post(f"/admins/{bob_id}/reset-password")
    password = response.get_data(as_text=True).split('class="secret-once"><code>')[1].split("<")[0]
    [reset] = _events(db, "admin.reset_password")
    assert reset.changes["password"] == {"before": "[redacted]", "after": "[redacted]"}
    everything = json.dumps([e.changes for e in _events(db)])
    assert password not in everything and "$argon2" not in everything


def test_diff_redacts_secret_fields_by_name():
    changes = audit.diff({"clientSecret": "old-secret", "name": "a", "signingKey": None},
                         {"clientSecret": "new-secret", "name": "b", "signingKey": "k"})
    assert changes == {"clientSecret": {"before": "[redacted]", "after": "[redacted]"},
                       "name": {"before": "a", "after": "b"},
                       "signingKey": {"before": None, "after": "[redacted]"}}
    assert audit.diff({"x": 1}, {"x": 1}) == {}
    assert audit.diff({"note": "a"}, {"note": "b"}, secret_fields={"note"}) == {
        "note": {"before": "[redacted]", "after": "[redacted]"}}


def test_failed_change_leaves_no_entry(app, admin_client, db):
    before = len(_events(db))
    admin_client.post("/admins/new", data={"username": "no spaces allowed", "role": "operator"})
    assert len(_events(db)) == before


def test_audit_page_filters_and_pages(app, admin_client, db):
    for i in range(60):
        create_admin(app, f"user{i:02d}", "operator")
    page = admin_client.get("/audit/?action=admin.create").get_data(as_text=True)
    assert page.count("<code>admin.create</code>") == 50
    assert "Older events" in page
    older_link = page.split('class="button" href="')[1].split('"')[0].replace("&amp;", "&")
    older = admin_client.get(older_link).get_data(as_text=True)
    assert older.count("<code>admin.create</code>") == 11  # 60 + the signed-in admin, minus the first 50
    by_actor = admin_client.get("/audit/?actor=admin-user").get_data(as_text=True)
    assert "<code>auth.login</code>" in by_actor and "<code>admin.create</code>" not in by_actor
    none = admin_client.get("/audit/?since=2999-01-01").get_data(as_text=True)
    assert "No event matches." in none
    bad = admin_client.get("/audit/?since=not-a-date")
    assert bad.status_code == 200 and "is not a date: enter it as YYYY-MM-DD" in bad.get_data(as_text=True)


@pytest.mark.parametrize(("query", "field", "message"), [
    ("since=2026-03", "since", "“2026-03” is not a date"),  # half typed: a date input would have sent nothing
    ("until=31.03.2026", "until", "“31.03.2026” is not a date"),
    ("since=2026-02-30", "since", "“2026-02-30” is not a date"),
    ("since=2026-03-02&until=2026-03-01", "until", "The end date is before the start date (2026-03-02)."),
])
def test_a_bad_date_filter_is_reported_at_its_field(admin_client, query, field, message):
    page = admin_client.get(f"/audit/?{query}").get_data(as_text=True)
    group = page.split(f'<label for="{field}"')[1].split('<div class="field')[0]
    assert message in group and 'aria-invalid="true"' in group
    assert "Correct the filter above to see events." in page and "<code>auth.login</code>" not in page


def test_the_widest_date_range_is_no_error(admin_client):
    page = admin_client.get("/audit/?since=0001-01-01&until=9999-12-31")
    assert page.status_code == 200 and "<code>auth.login</code>" in page.get_data(as_text=True)


def test_objects_link_to_their_page_while_they_exist(app, admin_client, db):
    bob_id = create_admin(app, "bob", "operator")
    admin_client.post(f"/admins/{bob_id}/role", data={"role": "auditor"})
    with app.app_context():
        tenants.register_tenant(ldap_body("Linked-Tenant"), Actor(name="t"), skip_check=True)
        client, _key = api_clients.create_client("linked-client", Actor(name="t"))
        app_id = client.app_id
        audit.record(Actor(name="t"), "certificate.delete", "certificate", 999_999, {})  # gone: no page
        audit.record(Actor(name="t"), "sharing.update", "sharing_settings", 1, {})
        _db.session.commit()
    page = admin_client.get("/audit/").get_data(as_text=True)
    assert f'<a href="/admins/{bob_id}" class="audit-object">admin #{bob_id}</a>' in page
    assert '<a href="/tenants/Linked-Tenant" class="audit-object">tenant Linked-Tenant</a>' in page
    assert f'<a href="/api-clients/#client-{app_id}" class="audit-object">api client {app_id}</a>' in page
    assert '<span class="audit-object">certificate #999999</span>' in page
    assert '<a href="/sharing/" class="audit-object">sharing settings #1</a>' in page
    assert admin_client.get(f"/admins/{bob_id}").status_code == 200
