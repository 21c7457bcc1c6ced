"""Deny by default: anonymous users go to sign-in, roles are enforced on every view, auditors only read."""
import pytest
from flask import Blueprint

from portal.access import access_of
from tests.routes import is_open, is_self_service, routes

OPEN = {"auth.login", "main.healthz", "main.readyz", "api.openapi_document",
        "oauth.jwks", "oauth.openid_configuration"}  # published public keys and metadata
# The /v1 API authenticates each call with its API-key headers (tests/test_api_tenants.py), never by session.
MACHINE_API = {"api.create_tenant", "api.list_tenants", "api.get_tenant", "api.update_tenant", "api.activate_tenant",
               "api.deactivate_tenant", "api.decommission_tenant", "api.validate_token", "api.list_keys",
               "api.generate_client_secret", "api.rotate_key", "api.retire_key",
               # The token endpoint authenticates the OAuth client by its client secret (tests/test_tokens*.py).
               "oauth.token"}


def test_every_view_declares_its_access(app):
    undeclared = [e for e, f in app.view_functions.items() if e != "static" and access_of(f) is None]
    assert undeclared == []
    assert {e for e in app.view_functions if e != "static" and is_open(app, e)} == OPEN | MACHINE_API


def test_anonymous_users_are_sent_to_sign_in(app, client):
    for method in ("GET", "POST"):
        for endpoint, url in routes(app, method):
            if is_open(app, endpoint):
                continue
            response = client.open(url, method=method)
            assert response.status_code == 302, (method, url)
            assert response.headers["Location"].startswith("/login"), (method, url)


def test_anonymous_json_clients_get_a_401_problem(app, client):
    response = client.get("/admins/", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.json["status"] == 401 and response.mimetype == "application/problem+json"


def test_a_view_without_a_declaration_is_refused_to_everyone(make_app):
    app = make_app()
    bp = Blueprint("forgotten", __name__)

    @bp.get("/forgotten")
    def forgotten():  # no @roles / @public: must fail closed
        return "leaked"

    app.register_blueprint(bp)
    from tests.fixtures.accounts import create_admin, login
    create_admin(app, "root-admin", "admin")
    client = app.test_client()
    login(client, "root-admin")
    response = client.get("/forgotten")
    assert response.status_code == 403 and b"leaked" not in response.data


def test_auditor_gets_403_on_every_post(app, auditor_client):
    checked = 0
    for endpoint, url in routes(app, "POST"):
        if is_open(app, endpoint) or is_self_service(app, endpoint):
            continue
        assert auditor_client.post(url).status_code == 403, url
        checked += 1
    assert checked >= 5


def test_auditor_reads_admins_and_audit(auditor_client):
    for url in ("/", "/admins/", "/audit/"):
        assert auditor_client.get(url).status_code == 200, url
    assert auditor_client.get("/admins/new").status_code == 403


@pytest.mark.parametrize("url", ["/admins/", "/admins/new", "/audit/"])
def test_operator_cannot_manage_admins_or_read_audit(operator_client, url):
    assert operator_client.get(url).status_code == 403


def test_operator_cannot_post_admin_actions(app, operator_client):
    for endpoint, url in routes(app, "POST"):
        if endpoint.startswith("admins."):
            assert operator_client.post(url).status_code == 403, url


def test_self_service_is_open_to_every_role(signed_in):
    for role in ("admin", "operator", "auditor"):
        client = signed_in(role, f"{role}-self")
        assert client.get("/account/password").status_code == 200
        assert client.post("/logout").status_code == 302
        assert client.get("/").status_code == 302


def test_403_page_names_the_request_id(operator_client):
    response = operator_client.get("/admins/", headers={"X-Request-ID": "req-403-check"})
    assert response.status_code == 403
    assert "req-403-check" in response.get_data(as_text=True)
