"""With CSRF protection on, no POST route acts without a valid token."""
import pytest
import sqlalchemy as sa

from portal.access import MACHINE, access_of
from portal.extensions import db
from portal.models import Base
from tests.fixtures.accounts import create_admin, csrf_token, login
from tests.routes import routes


def _row_counts(app):
    with app.app_context():
        return {t.name: db.session.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in Base.metadata.sorted_tables}


@pytest.fixture
def csrf_app(make_app):
    return make_app(WTF_CSRF_ENABLED=True)


def test_every_post_route_needs_a_token(csrf_app):
    create_admin(csrf_app, "root-admin", "admin")
    target_id = create_admin(csrf_app, "target", "operator")
    client = csrf_app.test_client()
    assert login(client, "root-admin", csrf_token=csrf_token(client)).status_code == 302
    before = _row_counts(csrf_app)
    # The /v1 API is exempt: machines send API keys, not cookies (tests/test_api_tenants.py covers it).
    posts = [(endpoint, url) for endpoint, url in routes(csrf_app, "POST")
             if access_of(csrf_app.view_functions[endpoint]) != MACHINE]
    assert len(posts) >= 7
    for _endpoint, url in posts:
        url = url.replace("/1/", f"/{target_id}/")
        response = client.post(url, data={"role": "auditor", "username": "x", "password": "y"})
        assert response.status_code == 400, url
        assert "form expired" in response.get_data(as_text=True), url
    assert _row_counts(csrf_app) == before
    assert client.get("/").status_code == 200  # still signed in: logout without a token did nothing


def test_login_without_token_is_refused(csrf_app):
    create_admin(csrf_app, "root-admin", "admin")
    client = csrf_app.test_client()
    assert login(client, "root-admin").status_code == 400
    assert client.get("/").status_code == 302


def test_forms_carry_a_token(csrf_app):
    create_admin(csrf_app, "root-admin", "admin")
    client = csrf_app.test_client()
    login(client, "root-admin", csrf_token=csrf_token(client))
    token = csrf_token(client, "/admins/new")
    response = client.post("/admins/new", data={"username": "newbie", "role": "operator", "csrf_token": token})
    assert response.status_code == 200
    assert "this one-time password" in response.get_data(as_text=True)
