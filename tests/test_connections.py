"""Product connections: validation, the pre-flight on save, clients built from what is stored, "Test connection"
against the IS 7 simulator, passwords write-only (encrypted, never shown, redacted in the audit), and the pages."""
from __future__ import annotations

import contextlib
import socket

import pytest
import sqlalchemy as sa

from portal.clients.errors import UpstreamError
from portal.extensions import db as _db
from portal.models import AuditEvent
from portal.models.sharing import ProductConnection
from portal.services.certificates import service as certificates
from portal.services.certificates.cert_auth import SystemMapping, UserMapping
from portal.services.certificates.service import java_dn
from portal.services.context import Actor
from portal.services.errors import CheckFailed, NotFound, ValidationError
from portal.services.sharing import connections
from simulators.is7 import Is7Simulator
from simulators.pki import Authority
from tests.fixtures.accounts import create_admin, login

ACTOR = Actor(name="root-admin")
IS_PASSWORD = 'pa"ss,wo\\rd-is'


@pytest.fixture
def is7(pki):
    issuer = java_dn(pki.client.cert.issuer)
    with Is7Simulator(server_cert_pem=pki.server.cert_pem, server_key_pem=pki.server.key_pem,
                      client_ca_pem=pki.client_ca.cert_pem,
                      user_mappings=[UserMapping(issuer, pki.client.thumbprint, ("admin",))],
                      system_mappings=[SystemMapping(issuer, pki.client.thumbprint, "admin")],
                      basic_users={"portal": IS_PASSWORD}) as sim:
        yield sim


def store_trust(app, pki, *, client=True):
    with app.app_context():
        certificates.upload_certificate("ca", pki.server_ca.cert_pem.encode(), ACTOR)
        if client:
            certificates.upload_certificate("client", pki.client.cert_pem.encode(), ACTOR,
                                            key_data=pki.client.key_pem.encode())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mtls(url, **extra):
    return {"base_url": url, "auth": "mtls", "identity_user": "admin", "trust_roles": ["ca", "is"],
            "connect_timeout": "2", "read_timeout": "5", **extra}


def basic(url, **extra):
    return {"base_url": url, "auth": "basic", "username": "portal", "password": IS_PASSWORD,
            "trust_roles": ["ca", "is"], "connect_timeout": "2", "read_timeout": "5", **extra}


# --- Saving with the pre-flight --------------------------------------------------------------------------------------


def test_save_mtls_checks_then_stores_and_audits(app, db, is7, pki):
    store_trust(app, pki)
    with app.app_context():
        conn = connections.save("is", mtls(is7.base_url + "/"), ACTOR)
        assert (conn.base_url, conn.auth, conn.identity_user) == (is7.base_url, "mtls", "admin")
        assert conn.trust_roles == ["ca", "is"]
        assert (conn.connect_timeout, conn.read_timeout) == (2.0, 5.0)
    call = is7.requests[-1]
    assert (call.method, call.path, call.user) == ("GET", "/api/server/v1/tenants", "admin")
    assert call.client_thumbprint == pki.client.thumbprint
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "connection.create")).scalar_one()
    assert event.object_id == "is" and event.actor == "root-admin"
    assert event.changes["base_url"] == {"before": None, "after": is7.base_url}
    assert "preflight" not in event.changes


def test_basic_password_is_encrypted_write_only_and_redacted(app, db, is7, pki):
    store_trust(app, pki, client=False)
    with app.app_context():
        connections.save("is", basic(is7.base_url), ACTOR)
    raw = db.session.execute(sa.text("SELECT password FROM product_connection WHERE product = 'is'")).scalar_one()
    assert IS_PASSWORD not in raw
    assert is7.requests[-1].basic_user == "portal"
    with app.app_context():
        assert "password" not in connections.view("is") and connections.view("is")["password_set"] is True
        # A blank password keeps the stored one; the next check still signs in.
        connections.save("is", basic(is7.base_url, password="", read_timeout="7"), ACTOR)
        assert connections.get("is").read_timeout == 7.0 and connections.test("is").ok
    events = db.session.execute(sa.select(AuditEvent).where(AuditEvent.object_type == "product_connection")
                                .order_by(AuditEvent.id)).scalars().all()
    assert events[0].changes["password"] == {"before": None, "after": "[redacted]"}
    assert "password" not in events[1].changes  # kept, not changed
    assert all(IS_PASSWORD not in str(e.changes) for e in events)


def test_a_failed_preflight_refuses_unless_the_admin_skips_it(app, db, is7, pki):
    store_trust(app, pki, client=False)
    with app.app_context():
        with pytest.raises(CheckFailed) as info:
            connections.save("is", basic(is7.base_url, password="wrong"), ACTOR)
        assert not info.value.result.ok
        assert "401" in info.value.result.summary and "password" in info.value.errors
        assert connections.get("is") is None
        conn = connections.save("is", basic(is7.base_url, password="wrong"), ACTOR, check=False)
        assert conn.password == "wrong"
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "connection.create")).scalar_one()
    assert event.changes["preflight"] == {"before": None, "after": "skipped"}


def test_an_unreachable_product_is_pinned_to_the_base_url(app, pki):
    store_trust(app, pki, client=False)
    with app.app_context(), pytest.raises(CheckFailed) as info:
        connections.save("is", basic(f"https://127.0.0.1:{free_port()}"), ACTOR)
    assert "refused" in info.value.errors["base_url"]


def test_an_untrusted_server_is_pinned_to_the_trust_roles(app, is7, pki):
    with app.app_context():
        certificates.upload_certificate("ca", Authority("Someone else's CA").cert_pem.encode(), ACTOR)
        with pytest.raises(CheckFailed) as info:
            connections.save("is", basic(is7.base_url), ACTOR)
    assert "does not trust" in info.value.errors["trust_roles"]


@pytest.mark.parametrize("product,changes,field,message", [
    ("is", {"base_url": ""}, "base_url", "Enter IS 7's base URL"),
    ("is", {"base_url": "http://is:9443"}, "base_url", "must start with https://"),
    ("is", {"base_url": "https://user:pw@is:9443"}, "base_url", "must not contain a user name"),
    ("is", {"base_url": "https://is:99999"}, "base_url", "not valid"),
    ("is", {"base_url": "https://is:9443/?x=1"}, "base_url", "query or fragment"),
    ("is", {"auth": "oauth"}, "auth", "Choose mutual TLS or Basic"),
    ("apim", {"auth": "mtls"}, "auth", "Basic authentication only"),
    ("is", {"username": ""}, "username", "Enter the IS 7 user"),
    ("is", {"password": ""}, "password", "Enter the password"),
    ("is", {"username": "a\nb"}, "username", "control characters"),
    ("is", {"trust_roles": []}, "trust_roles", "Choose which stored certificates"),
    ("is", {"trust_roles": ["client"]}, "trust_roles", "CA, IS 7 or API Manager"),
    ("is", {"connect_timeout": "soon"}, "connect_timeout", "number of seconds"),
    ("is", {"read_timeout": "0"}, "read_timeout", "more than 0"),
    ("is", {"read_timeout": "nan"}, "read_timeout", "more than 0"),
    ("is", {"connect_timeout": "61"}, "connect_timeout", "at most 60"),
])
def test_validation_names_the_field(app, product, changes, field, message):
    with app.app_context(), pytest.raises(ValidationError) as info:
        connections.save(product, basic("https://product.example.com:9443", **changes), ACTOR, check=False)
    assert message in info.value.errors[field]


def test_identity_user_is_checked_for_mtls(app):
    with app.app_context(), pytest.raises(ValidationError) as info:
        connections.save("is", mtls("https://is:9443", identity_user="x" * 256), ACTOR, check=False)
    assert "longer than 255" in info.value.errors["identity_user"]


def test_unknown_product(app):
    with app.app_context():
        with pytest.raises(NotFound):
            connections.save("oracle", basic("https://x:1"), ACTOR)
        with pytest.raises(NotFound):
            connections.get("oracle")


def test_the_database_refuses_mtls_for_api_manager(app):
    with app.app_context():
        _db.session.add(ProductConnection(product="apim", base_url="https://a", auth="mtls", username="",
                                          identity_user="", trust_roles=[], connect_timeout=1, read_timeout=1,
                                          updated_by="t"))
        with pytest.raises(sa.exc.IntegrityError):
            _db.session.commit()
        _db.session.rollback()


# --- Clients from the stored connection ------------------------------------------------------------------------------


def test_clients_need_a_connection(app):
    with app.app_context():
        with pytest.raises(connections.NotConfigured, match="IS 7 connection is not set up"):
            connections.is_client()
        with pytest.raises(connections.NotConfigured, match="API Manager connection is not set up"):
            connections.apim_client()
        result = connections.test("is")
        assert not result.ok and "not set up" in result.summary


def test_clients_need_trust_and_for_mtls_a_client_certificate(app, is7, pki):
    with app.app_context():
        connections.save("is", mtls(is7.base_url), ACTOR, check=False)
        with pytest.raises(connections.NotConfigured, match="trusts no certificate for IS 7"):
            connections.is_client()
        certificates.upload_certificate("ca", pki.server_ca.cert_pem.encode(), ACTOR)
        with pytest.raises(connections.NotConfigured, match="client certificate"):
            connections.is_client()
        assert "client certificate" in connections.test("is").summary


def test_is_client_calls_with_the_stored_settings(app, is7, pki):
    store_trust(app, pki)
    is7.add_tenant("abc.com")
    with app.app_context():
        connections.save("is", mtls(is7.base_url), ACTOR, check=False)
        with connections.is_client() as client:
            assert client.timeout == (2.0, 5.0)
            assert [t.domain for t in client.list_tenants().tenants] == ["abc.com"]
    assert is7.requests[-1].user == "admin"


def test_test_connection_reports_a_401_at_the_identity_user(app, is7, pki):
    store_trust(app, pki)
    with app.app_context():
        connections.save("is", mtls(is7.base_url, identity_user="bob"), ACTOR, check=False)
        result = connections.test("is")
    assert not result.ok and "401" in result.summary
    assert "identity_user" in result.field_errors
    assert any("Test mutual TLS" in d for d in result.details)


def test_test_connection_when_the_product_is_down(app, pki):
    store_trust(app, pki, client=False)
    with app.app_context():
        connections.save("is", basic(f"https://127.0.0.1:{free_port()}"), ACTOR, check=False)
        result = connections.test("is")
    assert not result.ok and "refused" in result.summary and "base_url" in result.field_errors


# --- Pages -----------------------------------------------------------------------------------------------------------


def test_admin_saves_a_connection_through_the_page(app, db, admin_client, is7, pki):
    store_trust(app, pki, client=False)
    response = admin_client.post("/sharing/connections/is", data=basic(is7.base_url))
    assert response.status_code == 302 and response.headers["Location"].endswith("/sharing/connections")
    page = admin_client.get("/sharing/connections").get_data(as_text=True)
    assert is7.base_url in page and "Basic authentication" in page and IS_PASSWORD not in page
    edit = admin_client.get("/sharing/connections/is").get_data(as_text=True)
    assert "set: leave empty to keep" in edit and IS_PASSWORD not in edit
    assert db.session.get(ProductConnection, "is").username == "portal"


def test_a_failed_check_on_the_page_offers_to_save_without_it(app, db, admin_client, is7, pki):
    store_trust(app, pki, client=False)
    response = admin_client.post("/sharing/connections/is", data=basic(is7.base_url, password="nope"))
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "The connection test failed: nothing was saved" in page and "Save without testing" in page
    assert "nope" not in page
    assert db.session.get(ProductConnection, "is") is None
    response = admin_client.post("/sharing/connections/is", data=basic(is7.base_url, password="nope", skip_check="y"))
    assert response.status_code == 302
    assert db.session.get(ProductConnection, "is") is not None


def test_bad_input_on_the_page_is_shown_at_the_field(admin_client):
    response = admin_client.post("/sharing/connections/apim", data=basic("http://apim:9443"))
    assert response.status_code == 400
    assert "must start with https://" in response.get_data(as_text=True)


@pytest.mark.parametrize("role", ["operator", "auditor"])
def test_others_read_but_do_not_change(signed_in, role):
    client = signed_in(role)
    assert client.get("/sharing/connections").status_code == 200
    page = client.get("/sharing/connections/is").get_data(as_text=True)
    assert "Only administrators can change connections." in page
    assert client.post("/sharing/connections/is", data=basic("https://is:9443")).status_code == 403


def test_operators_may_test_a_connection(app, signed_in, is7, pki):
    store_trust(app, pki)
    with app.app_context():
        connections.save("is", mtls(is7.base_url), ACTOR, check=False)
    response = signed_in("operator").post("/sharing/connections/is/test")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Connection works" in page
    assert signed_in("auditor", "auditor-2").post("/sharing/connections/is/test").status_code == 403


def test_unknown_product_pages_are_404(admin_client):
    assert admin_client.get("/sharing/connections/oracle").status_code == 404
    assert admin_client.post("/sharing/connections/oracle/test").status_code == 404


def test_upstream_errors_are_typed(app, pki):
    """What callers (the worker) catch: a typed UpstreamError with a cause, never a raw requests exception."""
    store_trust(app, pki, client=False)
    with app.app_context():
        connections.save("is", basic(f"https://127.0.0.1:{free_port()}"), ACTOR, check=False)
        with connections.is_client() as client, pytest.raises(UpstreamError) as info:
            client.list_tenants(limit=1)
    assert info.value.cause == "refused"


# --- API Manager -----------------------------------------------------------------------------------------------------


def apim_basic(url, **extra):
    return {"base_url": url, "auth": "basic", "username": "admin", "password": "admin", "connect_timeout": "2",
            "read_timeout": "5", **extra}


def test_api_manager_connection_is_checked_through_the_admin_service(app, db, apim, pki):
    store_trust(app, pki, client=False)
    with app.app_context():
        conn = connections.save("apim", apim_basic(apim.base_url), ACTOR)
        assert (conn.auth, conn.trust_roles) == ("basic", ["ca", "apim"])
        assert connections.test("apim").ok
        with connections.apim_client() as client:
            assert client.timeout == (2.0, 5.0)
    assert apim.requests[-1].path == "/services/TenantMgtAdminService"
    assert apim.requests[-1].basic_user == "admin"


def test_api_manager_refusing_the_password_is_pinned_to_it(app, apim, pki):
    store_trust(app, pki, client=False)
    with app.app_context(), pytest.raises(CheckFailed) as info:
        connections.save("apim", apim_basic(apim.base_url, password="wrong"), ACTOR)
    assert "Authentication failure" in info.value.errors["password"]
    assert any("credentials were refused" in d for d in info.value.result.details)


def test_api_manager_test_connection_on_the_page(app, admin_client, apim, pki):
    store_trust(app, pki, client=False)
    form = apim_basic(apim.base_url, trust_roles=["ca", "apim"])
    assert admin_client.post("/sharing/connections/apim", data=form).status_code == 302
    apim.stop()
    page = admin_client.post("/sharing/connections/apim/test").get_data(as_text=True)
    assert "Connection failed" in page and "refused" in page


def test_test_connection_is_budgeted_per_actor(make_app, pki):
    """"Test connection" connects where the stored base URL says: it spends the actor's check budget (issue 13), and
    past it answers 429 before anything is connected."""
    app = make_app(RATELIMIT_ENABLED=True, CONNECTION_CHECK_LIMIT_PER_ACTOR="2 per minute")
    store_trust(app, pki, client=False)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.5)
        with app.app_context():
            connections.save("is", basic(f"https://127.0.0.1:{listener.getsockname()[1]}"), ACTOR, check=False)
            create_admin(app, "budgeted")
        client = app.test_client()
        assert login(client, "budgeted").status_code == 302
        for _ in range(2):
            assert client.post("/sharing/connections/is/test").status_code == 200
        accepted = 0
        with contextlib.suppress(TimeoutError):
            while True:
                listener.accept()[0].close()
                accepted += 1
        refused = client.post("/sharing/connections/is/test")
        assert refused.status_code == 429 and "Too many connection checks" in refused.get_data(as_text=True)
        with pytest.raises(TimeoutError):
            listener.accept()
    assert accepted >= 2


def test_a_policy_refusal_is_shown_at_the_base_url(make_app, pki):
    app = make_app(OUTBOUND_ALLOW_LOOPBACK=False)
    store_trust(app, pki, client=False)
    with app.app_context(), pytest.raises(CheckFailed) as info:
        connections.save("is", basic(f"https://127.0.0.1:{free_port()}"), ACTOR)
    assert "loopback" in info.value.errors["base_url"] and "OUTBOUND_ALLOW_LOOPBACK" in info.value.errors["base_url"]
