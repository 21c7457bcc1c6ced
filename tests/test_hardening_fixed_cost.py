"""What every request pays, kept small without loosening anything: machine paths never touch the cookie session,
a signed-in page costs one query (the live-session check), the session cookie is re-issued at most once per touch
interval, navigation URLs are built once per script root, and the limiter's per-request pass runs only when an
app-wide, default or blueprint limit exists."""
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Blueprint, Flask, flash, session

from portal.access import public
from portal.extensions import PortalLimiter, db as _db
from tests.fixtures.accounts import create_admin, login

SESSIONLESS = ["/healthz", "/readyz", "/static/css/portal.css", "/v1/tenant", "/oauth/token",
               "/t/nobody/.well-known/jwks.json", "/t/nobody/.well-known/openid-configuration"]


def _session_cookie(response) -> str | None:
    return next((c for c in response.headers.getlist("Set-Cookie") if c.startswith("portal_session=")), None)


@pytest.mark.parametrize("path", SESSIONLESS)
def test_machine_paths_neither_read_nor_write_the_cookie_session(admin_client, path):
    response = admin_client.get(path)
    assert response.headers.getlist("Set-Cookie") == []
    assert "Cookie" not in response.headers.get("Vary", "")
    response.close()


def test_a_session_cookie_grants_nothing_on_the_machine_api(admin_client):
    response = admin_client.get("/v1/tenant")
    assert response.status_code == 401 and response.mimetype == "application/problem+json"


def test_session_writes_on_a_machine_path_are_dropped(make_app):
    app = make_app()
    bp = Blueprint("probe", __name__)

    @bp.get("/t/probe/write")
    @public
    def write():
        session["planted"] = "value"
        flash("never shown")
        return "written"

    app.register_blueprint(bp)
    client = app.test_client()
    response = client.get("/t/probe/write")
    assert response.status_code == 200 and response.headers.getlist("Set-Cookie") == []
    assert "never shown" not in client.get("/login").get_data(as_text=True)


def _count_statements(app, client, path: str) -> int:
    with app.app_context():
        engine = _db.engine
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get(path).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    return len(statements)


def test_a_signed_in_page_costs_one_query_and_a_machine_page_none(app, admin_client):
    assert _count_statements(app, admin_client, "/account/password") == 1  # session and admin, joined
    assert _count_statements(app, admin_client, "/healthz") == 0


def test_the_session_cookie_is_reissued_at_most_once_per_touch_interval(make_app):
    app = make_app()
    create_admin(app, "alice")
    client = app.test_client()
    assert _session_cookie(login(client, "alice")) is not None
    client.get("/account/password")  # the first page stores the raw CSRF token: a change, so a new cookie
    quiet = client.get("/account/password")
    assert quiet.status_code == 200 and _session_cookie(quiet) is None  # unchanged, signed moments ago
    app.config["SESSION_TOUCH_INTERVAL"] = timedelta(0)
    refreshed = client.get("/account/password")
    cookie = _session_cookie(refreshed)
    assert refreshed.status_code == 200 and cookie is not None and "Expires=" in cookie and "HttpOnly" in cookie
    assert client.get("/").status_code == 200  # the re-issued cookie still carries the live session
    assert client.post("/logout").status_code == 302
    assert client.get("/").status_code == 302  # and signing out still ends it


def test_navigation_links_follow_the_script_root(admin_client):
    plain = admin_client.get("/").get_data(as_text=True)
    mounted = admin_client.get("/", base_url="http://localhost/portal").get_data(as_text=True)
    again = admin_client.get("/").get_data(as_text=True)
    assert 'href="/tenants/"' in plain and 'href="/static/css/portal.css"' in plain
    assert 'href="/portal/tenants/"' in mounted and 'href="/portal/static/css/portal.css"' in mounted
    assert 'href="/tenants/"' in again and "/portal/" not in again


def _limited_app(**limiter_args) -> tuple[Flask, PortalLimiter]:
    app = Flask("limited")
    app.config["RATELIMIT_STORAGE_URI"] = "memory://"
    limiter = PortalLimiter(key_func=lambda: "one-client", **limiter_args)
    limiter.init_app(app)
    return app, limiter


def test_limiter_still_applies_default_limits_on_every_request():
    app, _ = _limited_app(default_limits=["2 per minute"])

    @app.get("/open")
    def open_page():
        return "ok"

    client = app.test_client()
    assert [client.get("/open").status_code for _ in range(3)] == [200, 200, 429]


def test_limiter_without_wide_limits_checks_only_decorated_views():
    app, limiter = _limited_app()

    @app.get("/limited")
    @limiter.limit("1 per minute")
    def limited():
        return "ok"

    @app.get("/open")
    def open_page():
        return "ok"

    client = app.test_client()
    assert [client.get("/limited").status_code for _ in range(2)] == [200, 429]
    assert [client.get("/open").status_code for _ in range(5)] == [200] * 5
