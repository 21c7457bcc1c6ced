"""API-client pages: the key is shown once on creation and never again, revocation takes effect at once, and only
administrators manage clients (auditors read the list, operators see nothing)."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from portal.models import ApiClient, AuditEvent
from tests.api_helpers import Api


def _created(response) -> tuple[str, str]:
    page = response.get_data(as_text=True)
    app_id = re.search(r'<code class="app-id">([^<]+)</code>', page).group(1)
    key = re.search(r'class="secret-once"><code>([^<]+)</code>', page).group(1)
    return app_id, key


def test_create_shows_the_key_once_and_it_works(app, admin_client, db):
    response = admin_client.post("/api-clients/new", data={"name": "CI pipeline", "scopes": ["read"]})
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
    app_id, key = _created(admin_client.post("/api-clients/new", data={"name": "Reporting", "scopes": ["read"]}))
    page = admin_client.get("/api-clients/").get_data(as_text=True)
    row = page[page.index(app_id):]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.split("</tr>")[0], re.S)  # from the app id on
    assert "admin-user" in page and cells[4] == "never" and "active" in cells[6]
    Api(app, app_id, key).get("/v1/tenant")
    row = admin_client.get("/api-clients/").get_data(as_text=True)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row[row.index(app_id):].split("</tr>")[0], re.S)
    assert cells[4] != "never" and "<time" in cells[4]


def test_invalid_name_is_reported_at_the_field(admin_client, db):
    response = admin_client.post("/api-clients/new", data={"name": "bad/name!"})
    assert response.status_code == 200 and "Use 1 to 128 letters" in response.get_data(as_text=True)
    response = admin_client.post("/api-clients/new", data={"name": ""})
    assert "This field is required" in response.get_data(as_text=True)
    assert db.session.execute(sa.select(sa.func.count()).select_from(ApiClient)).scalar_one() == 0


def test_revoke_stops_the_key_at_once(app, admin_client, db):
    app_id, key = _created(admin_client.post("/api-clients/new", data={"name": "Old job", "scopes": ["read"]}))
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
    app_id, _ = _created(admin_client.post("/api-clients/new", data={"name": "Target", "scopes": ["read"]}))
    assert operator_client.get("/api-clients/").status_code == 403
    assert operator_client.get("/api-clients/new").status_code == 403
    assert operator_client.post("/api-clients/new", data={"name": "Sneaky"}).status_code == 403
    assert operator_client.post(f"/api-clients/{app_id}/revoke").status_code == 403
    assert "API clients" not in operator_client.get("/").get_data(as_text=True)


def test_auditor_reads_the_list_but_cannot_create_or_revoke(app, admin_client, auditor_client, db):
    app_id, key = _created(admin_client.post("/api-clients/new", data={"name": "Audited", "scopes": ["read"]}))
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


# --- scopes, tenant limits, expiry and rotation on the page --------------------------------------------------------


def test_the_form_offers_each_scope_as_a_labelled_checkbox_read_checked(admin_client):
    page = admin_client.get("/api-clients/new").get_data(as_text=True)
    for scope in ("read", "register", "update", "secrets", "keys", "validate", "decommission"):
        assert re.search(rf'<input[^>]*name="scopes"[^>]*type="checkbox"[^>]*value="{scope}"', page), scope
    assert re.search(r'<input checked[^>]*name="scopes"[^>]*value="read"', page)
    assert not re.search(r'<input checked[^>]*name="scopes"[^>]*value="secrets"', page)
    assert "secrets: Generate a tenant&#39;s new client secret" in page
    assert 'name="tenant_scope"' in page and 'name="tenant_pattern"' in page and 'name="expires_at"' in page


def test_create_with_scopes_limit_and_expiry(app, admin_client, db):
    response = admin_client.post("/api-clients/new", data={
        "name": "CI", "scopes": ["read", "register"], "tenant_scope": "pattern", "tenant_pattern": "CI-*",
        "expires_at": "2999-12-31"})
    assert response.status_code == 200, response.get_data(as_text=True)
    page = response.get_data(as_text=True)
    assert "read, register" in page and "tenant ids matching ci-*" in page
    app_id, key = _created(response)
    stored = db.session.execute(sa.select(ApiClient).where(ApiClient.app_id == app_id)).scalar_one()
    assert (stored.scopes, stored.tenant_scope, stored.tenant_pattern) == ("read register", "pattern", "ci-*")
    assert stored.expires_at.isoformat() == "2999-12-31T00:00:00+00:00"
    caller = Api(app, app_id, key)
    assert caller.post("/v1/tenant/x/deactivate").status_code == 403
    listing = admin_client.get("/api-clients/").get_data(as_text=True)
    row = listing[listing.index(app_id):].split("</tr>")[0]
    assert "read, register" in row and "tenant ids matching ci-*" in row and "2999" in row
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "api_client.create")).scalar_one()
    assert event.changes["scopes"]["after"] == "read register"


@pytest.mark.parametrize("data,field_error", [
    ({"scopes": ["read", "root"]}, "Unknown scope &#39;root&#39;"),
    ({"scopes": []}, "Choose at least one scope"),
    ({"scopes": ["read"], "tenant_scope": "pattern", "tenant_pattern": "*"}, "wildcards alone"),
    ({"scopes": ["read"], "expires_at": "2001-01-01"}, "The expiry must be in the future."),
])
def test_bad_choices_are_reported_at_their_field(admin_client, db, data, field_error):
    response = admin_client.post("/api-clients/new", data={"name": "Bad", **data})
    assert response.status_code == 200 and field_error in response.get_data(as_text=True)
    assert db.session.execute(sa.select(sa.func.count()).select_from(ApiClient)).scalar_one() == 0


def test_rotate_on_the_page_shows_the_new_key_once_and_keeps_the_old_for_the_overlap(app, admin_client, db):
    app_id, old_key = _created(admin_client.post("/api-clients/new", data={"name": "Rotated", "scopes": ["read"]}))
    listing = admin_client.get("/api-clients/").get_data(as_text=True)
    assert f'href="/api-clients/{app_id}/rotate"' in listing
    form = admin_client.get(f"/api-clients/{app_id}/rotate").get_data(as_text=True)
    assert 'name="overlap_hours"' in form and 'value="24"' in form
    response = admin_client.post(f"/api-clients/{app_id}/rotate", data={"overlap_hours": "2"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "API client key rotated" in page and "The old key keeps working until" in page
    same_id, new_key = _created(response)
    assert same_id == app_id and new_key != old_key
    assert Api(app, app_id, old_key).get("/v1/tenant").status_code == 200
    assert Api(app, app_id, new_key).get("/v1/tenant").status_code == 200
    assert "old key until" in admin_client.get("/api-clients/").get_data(as_text=True)
    for shown in ("/api-clients/", f"/api-clients/{app_id}/rotate", "/audit/"):
        assert new_key not in admin_client.get(shown).get_data(as_text=True), shown
    bad = admin_client.post(f"/api-clients/{app_id}/rotate", data={"overlap_hours": "9999"})
    assert "A whole number of hours from 0 to 720." in bad.get_data(as_text=True)
    assert "Give the hours" in admin_client.post(f"/api-clients/{app_id}/rotate", data={}).get_data(as_text=True)
    assert admin_client.get("/api-clients/app_nosuchclient/rotate").status_code == 404
    actions = db.session.execute(sa.select(AuditEvent.action).where(AuditEvent.object_id == app_id)).scalars().all()
    assert sorted(actions) == ["api_client.create", "api_client.rotate"]


def test_only_admins_rotate(admin_client, operator_client, auditor_client):
    app_id, _ = _created(admin_client.post("/api-clients/new", data={"name": "Guarded", "scopes": ["read"]}))
    for other in (operator_client, auditor_client):
        assert other.get(f"/api-clients/{app_id}/rotate").status_code == 403
        assert other.post(f"/api-clients/{app_id}/rotate", data={"overlap_hours": "0"}).status_code == 403
    assert "Rotate key" not in auditor_client.get("/api-clients/").get_data(as_text=True)


def test_create_and_rotate_need_the_csrf_token(make_app, db):
    from tests.fixtures.accounts import create_admin, csrf_token, login

    app = make_app(WTF_CSRF_ENABLED=True)
    create_admin(app, "csrf-admin")
    browser = app.test_client()
    assert login(browser, "csrf-admin", csrf_token=csrf_token(browser)).status_code == 302
    assert browser.post("/api-clients/new", data={"name": "NoToken", "scopes": ["read"]}).status_code == 400
    assert db.session.execute(sa.select(sa.func.count()).select_from(ApiClient)).scalar_one() == 0
    token = csrf_token(browser, "/api-clients/new")
    created = browser.post("/api-clients/new", data={"name": "WithToken", "scopes": ["read"], "csrf_token": token})
    app_id, key = _created(created)
    assert browser.post(f"/api-clients/{app_id}/rotate", data={"overlap_hours": "0"}).status_code == 400
    assert Api(app, app_id, key).get("/v1/tenant").status_code == 200  # not rotated
