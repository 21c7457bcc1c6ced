"""Headers, cookies, proxies, size limits and error pages."""
import jwt
import pytest
from flask import Blueprint

from portal.access import public
from tests.api_helpers import make_api
from tests.fixtures.accounts import create_admin, login
from tests.token_helpers import CLIENT_SECRET, basic, register, tenant_body


def test_security_headers_on_every_page(client):
    response = client.get("/login")
    h = response.headers
    assert "default-src 'self'" in h["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
    assert "'unsafe-inline'" not in h["Content-Security-Policy"]
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "same-origin"
    assert h["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in h  # plain HTTP: HSTS would be meaningless


def test_pages_have_no_inline_script_or_style(admin_client):
    for url in ("/", "/admins/", "/audit/", "/account/password"):
        html = admin_client.get(url).get_data(as_text=True)
        assert "<script>" not in html and "<style" not in html and "style=" not in html and "onclick" not in html


def test_static_files_are_served_locally(client):
    with client.get("/static/css/portal.css") as response:
        assert response.status_code == 200 and "no-store" not in response.headers.get("Cache-Control", "")
    with client.get("/static/js/portal.js") as response:
        assert response.status_code == 200
    html = client.get("/login").get_data(as_text=True)
    assert "http://" not in html and "https://" not in html  # no CDN


def test_https_cookies_and_hsts(app):
    create_admin(app, "alice")
    client = app.test_client()
    response = login(client, "alice", base_url="https://portal.example")
    cookies = response.headers.getlist("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith("__Host-portal_session="))
    assert "Secure" in session_cookie and "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie
    assert "Domain" not in session_cookie and "Path=/" in session_cookie
    device = next(c for c in cookies if c.startswith("__Host-portal_device="))
    assert "Secure" in device and "HttpOnly" in device
    page = client.get("/", base_url="https://portal.example")
    assert page.status_code == 200
    assert page.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_http_cookies_have_no_secure_prefix(app):
    create_admin(app, "alice")
    cookies = login(app.test_client(), "alice").headers.getlist("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith("portal_session="))
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie and "Secure" not in session_cookie


def test_proxy_headers_trusted_only_when_configured(make_app):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.23"}
    plain = make_app().test_client().get("/login", headers=headers)
    assert "Strict-Transport-Security" not in plain.headers
    proxied = make_app(PROXY_FIX_X_FOR=1, PROXY_FIX_X_PROTO=1, PROXY_FIX_X_HOST=1)
    assert "Strict-Transport-Security" in proxied.test_client().get("/login", headers=headers).headers
    create_admin(proxied, "alice")
    response = login(proxied.test_client(), "alice", headers=headers)
    assert any(c.startswith("__Host-portal_session=") for c in response.headers.getlist("Set-Cookie"))


def test_client_ip_from_proxy_is_audited(make_app, db):
    import sqlalchemy as sa

    from portal.models import AuditEvent
    app = make_app(PROXY_FIX_X_FOR=1)
    create_admin(app, "alice")
    login(app.test_client(), "alice", headers={"X-Forwarded-For": "198.51.100.23"})
    ips = db.session.execute(sa.select(AuditEvent.ip).where(AuditEvent.action == "auth.login")).scalars().all()
    assert ips == ["198.51.100.23"]


def test_request_id_is_taken_from_nginx_or_made(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}).headers["X-Request-ID"]
    assert made != "bad id with spaces" and len(made) == 32


def test_oversized_body_is_413(client):
    response = client.post("/login", data={"username": "x" * (3 * 1024 * 1024), "password": "y"})
    assert response.status_code == 413
    assert "larger than this portal accepts" in response.get_data(as_text=True)


@pytest.fixture
def failing_app(make_app):
    app = make_app()
    bp = Blueprint("boom", __name__)

    @bp.get("/boom")
    @public
    def boom():
        raise RuntimeError("internal detail password=hunter2hunter2")

    app.register_blueprint(bp)
    return app


def test_500_page_shows_request_id_not_the_trace(failing_app, capfd):
    response = failing_app.test_client().get("/boom", headers={"X-Request-ID": "req-500"})
    text = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "req-500" in text and "Traceback" not in text and "RuntimeError" not in text and "hunter2" not in text
    err = capfd.readouterr().err
    assert "req-500" in err and "Traceback" in err  # the log has the trace...
    assert "hunter2hunter2" not in err  # ...with secrets redacted


def test_500_as_json(failing_app):
    response = failing_app.test_client().get("/boom", headers={"Accept": "application/json"})
    assert response.status_code == 500 and response.json["request_id"] and "detail" not in response.json


@pytest.mark.parametrize("status,url", [(404, "/no-such-page"), (405, "/logout")])
def test_error_pages(client, status, url):
    response = client.get(url, headers={"X-Request-ID": f"req-{status}"})
    assert response.status_code == status and f"req-{status}" in response.get_data(as_text=True)


def test_400_page(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    response = app.test_client().post("/login", data={"username": "a", "password": "b"},
                                      headers={"X-Request-ID": "req-400"})
    assert response.status_code == 400 and "req-400" in response.get_data(as_text=True)


# --- Host header: absolute URLs never reflect a forged one -------------------------------------------------------


def _discovery_with_host(app, host: str):
    """A tenant registered by the API (on the test client's own host), then its discovery document and a token
    asked for with `host` in the Host header."""
    api = make_api(app)
    register(api, tenant_body("hostco"))
    return (api.client.get("/t/hostco/.well-known/openid-configuration", headers={"Host": host}),
            api.client.post("/oauth/token", headers={"Host": host, **basic("hostco-client", CLIENT_SECRET)},
                            data={"grant_type": "client_credentials"}))


def test_production_without_public_base_url_refuses_a_forged_host(make_app):
    app = make_app(TESTING=False)
    discovery, token = _discovery_with_host(app, "evil.example")
    assert discovery.status_code == 400 and "evil.example" not in discovery.get_data(as_text=True)
    assert token.status_code == 400 and "access_token" not in token.get_data(as_text=True)
    assert app.test_client().get("/login", headers={"Host": "evil.example"}).status_code == 400
    # The names it answers to still work; what they build is not cached for anyone else.
    ok = app.test_client().get("/t/hostco/.well-known/openid-configuration", headers={"Host": "localhost:8000"})
    assert ok.status_code == 200 and ok.get_json()["issuer"] == "http://localhost:8000/t/hostco"
    assert ok.headers["Cache-Control"] == "no-store"


def test_public_base_url_wins_over_any_host(make_app):
    app = make_app(TESTING=False, PUBLIC_BASE_URL="https://portal.example.com")
    discovery, token = _discovery_with_host(app, "evil.example")
    assert discovery.status_code == 200 and "evil" not in discovery.get_data(as_text=True)
    assert discovery.get_json()["jwks_uri"] == "https://portal.example.com/t/hostco/.well-known/jwks.json"
    assert discovery.headers["Cache-Control"] == "public, max-age=300"  # the same for every Host: cacheable
    assert token.status_code == 200
    assert jwt.decode(token.get_json()["access_token"], options={"verify_signature": False})["iss"] == \
        "https://portal.example.com/t/hostco"


def test_trusted_hosts_setting(make_app):
    app = make_app(TESTING=False, TRUSTED_HOSTS=["portal.example.com", "localhost"])
    discovery, _ = _discovery_with_host(app, "evil.example")
    assert discovery.status_code == 400
    good = app.test_client().get("/t/hostco/.well-known/openid-configuration", headers={"Host": "portal.example.com"})
    assert good.status_code == 200 and good.headers["Cache-Control"] == "no-store"


def test_a_discovery_built_from_the_host_is_never_cached_publicly_even_in_testing(make_app):
    discovery, _ = _discovery_with_host(make_app(), "evil.example")  # testing: any Host, as on a laptop
    assert discovery.headers["Cache-Control"] == "no-store"


def test_redirects_are_relative_whatever_the_host(make_app):
    create_admin(app := make_app(TESTING=False, TRUSTED_HOSTS=["portal.example.com", "evil.example"]), "alice")
    client = app.test_client()
    response = login(client, "alice", headers={"Host": "evil.example"})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert client.get("/admins/", headers={"Host": "evil.example"}).status_code == 200
    client.post("/logout", headers={"Host": "evil.example"})
    assert client.get("/admins/", headers={"Host": "evil.example"}).headers["Location"].startswith("/login")
