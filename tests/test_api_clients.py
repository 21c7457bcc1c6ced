"""API-client pages: the key is shown once on creation and never again, revocation takes effect at once, and only
administrators manage clients (auditors read the list, operators see nothing)."""
from __future__ import annotations

import re

import sqlalchemy as sa

from portal.models import ApiClient, AuditEvent
from tests.api_helpers import Api


def _created(response) -> tuple[str, str]:
    page = response.get_data(as_text=True)
    app_id = re.search(r'<code class="app-id">([^<]+)</code>', page).group(1)
    key = re.search(r'class="secret-once"><code>([^<]+)</code>', page).group(1)
    return app_id, key


def test_create_shows_the_key_once_and_it_works(app, admin_client, db):
    response = admin_client.post("/api-clients/new", data={"name": "CI pipeline"})
    assert response.status_code == 200  # rendered, not redirected: the key never goes through the session
    app_id, key = _created(response)
    stored = db.session.execute(sa.select(ApiClient).where(ApiClient.app_id == app_id)).scalar_one()
    assert stored.name == "CI pipeline" and stored.created_by == "admin-user"
    assert key not in stored.key_hash and len(stored.key_hash) == 64
    assert Api(app, app_id, key).get("/v1/tenant").status_code == 200

    listing = admin_client.get("/api-clients/").get_data(as_text=True)
    assert app_id in listing and "CI pipeline" in listing and key not in listing
    for page in ("/api-clients/", "/api-clients/new", "/audit/"):
        assert key not in admin_client.get(page).get_data(as_text=True), page
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "api_client.create")).scalar_one()
    assert event.actor == "admin-user" and key not in str(event.changes)


def test_list_shows_creator_times_last_use_and_status(app, admin_client, db):
    app_id, key = _created(admin_client.post("/api-clients/new", data={"name": "Reporting"}))
    page = admin_client.get("/api-clients/").get_data(as_text=True)
    row = page[page.index(app_id):]
    assert "admin-user" in page and "never" in row.split("</tr>")[0] and "active" in row.split("</tr>")[0]
    Api(app, app_id, key).get("/v1/tenant")
    row = admin_client.get("/api-clients/").get_data(as_text=True)
    row = row[row.index(app_id):].split("</tr>")[0]
    assert "never" not in row and "<time" in row


def test_invalid_name_is_reported_at_the_field(admin_client, db):
    response = admin_client.post("/api-clients/new", data={"name": "bad/name!"})
    assert response.status_code == 200 and "Use 1 to 128 letters" in response.get_data(as_text=True)
    response = admin_client.post("/api-clients/new", data={"name": ""})
    assert "This field is required" in response.get_data(as_text=True)
    assert db.session.execute(sa.select(sa.func.count()).select_from(ApiClient)).scalar_one() == 0


def test_revoke_stops_the_key_at_once(app, admin_client, db):
    app_id, key = _created(admin_client.post("/api-clients/new", data={"name": "Old job"}))
    caller = Api(app, app_id, key)
    assert caller.get("/v1/tenant").status_code == 200
    page = admin_client.get("/api-clients/").get_data(as_text=True)
    assert f'action="/api-clients/{app_id}/revoke"' in page and "data-confirm=" in page
    response = admin_client.post(f"/api-clients/{app_id}/revoke", follow_redirects=True)
    assert "revoked" in response.get_data(as_text=True)
    assert caller.get("/v1/tenant").status_code == 401
    client = db.session.execute(sa.select(ApiClient).where(ApiClient.app_id == app_id)).scalar_one()
    assert client.revoked_at is not None
    page = admin_client.get("/api-clients/").get_data(as_text=True)
    assert f'action="/api-clients/{app_id}/revoke"' not in page  # no button for a revoked client
    assert admin_client.post(f"/api-clients/{app_id}/revoke").status_code == 302  # idempotent
    assert admin_client.post("/api-clients/app_nosuchclient/revoke").status_code == 404
    actions = db.session.execute(sa.select(AuditEvent.action).where(AuditEvent.object_id == app_id)).scalars().all()
    assert sorted(actions) == ["api_client.create", "api_client.revoke"]


def test_operator_gets_403_on_every_api_client_page(admin_client, operator_client):
    app_id, _ = _created(admin_client.post("/api-clients/new", data={"name": "Target"}))
    assert operator_client.get("/api-clients/").status_code == 403
    assert operator_client.get("/api-clients/new").status_code == 403
    assert operator_client.post("/api-clients/new", data={"name": "Sneaky"}).status_code == 403
    assert operator_client.post(f"/api-clients/{app_id}/revoke").status_code == 403
    assert "API clients" not in operator_client.get("/").get_data(as_text=True)


def test_auditor_reads_the_list_but_cannot_create_or_revoke(app, admin_client, auditor_client, db):
    app_id, key = _created(admin_client.post("/api-clients/new", data={"name": "Audited"}))
    page = auditor_client.get("/api-clients/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert app_id in text and key not in text
    assert "New API client" not in text and "/revoke" not in text
    assert auditor_client.get("/api-clients/new").status_code == 403
    assert auditor_client.post("/api-clients/new", data={"name": "Nope"}).status_code == 403
    assert auditor_client.post(f"/api-clients/{app_id}/revoke").status_code == 403
    assert Api(app, app_id, key).get("/v1/tenant").status_code == 200
    assert db.session.execute(sa.select(sa.func.count()).select_from(ApiClient)).scalar_one() == 1


def test_anonymous_visitors_are_sent_to_sign_in(client):
    for path in ("/api-clients/", "/api-clients/new"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
