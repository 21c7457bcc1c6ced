"""The IS 7 REST client against the simulator over real mutual TLS: typed results, errors mapped to UpstreamError
with IS's code and trace id, TLS and network failures mapped to plain causes, timeouts, retries, trust."""
from __future__ import annotations

import datetime
import os
import socket
import tempfile
import time

import pytest
import requests
import requests.adapters
import urllib3

from portal.clients.errors import Cause, DeletionDisabled, PermissionDenied, UpstreamError, classify
from portal.clients.identity_server import (
    PERMISSION_LIST_TENANTS,
    PERMISSION_MODIFY_TENANTS,
    IdentityServerClient,
    IsTenant,
    TenantOwnerSpec,
    TenantsPage,
)
from portal.clients.transport import build_ssl_context, normalise_base_url
from simulators.is7 import Is7Simulator
from simulators.pki import Authority

SHORT = (2.0, 2.0)


def client_for(sim, pki, **overrides) -> IdentityServerClient:
    settings = {"ca_pem": pki.server_ca.cert_pem, "cert_pem": pki.client.cert_pem, "key_pem": pki.client.key_pem,
                "identity_user": "admin", "timeout": SHORT, "retries": 0}
    settings.update(overrides)
    return IdentityServerClient(settings.pop("base_url", sim.base_url), **settings)


def failure(sim, pki, call=lambda c: c.list_tenants(limit=1), **overrides) -> UpstreamError:
    with pytest.raises(UpstreamError) as info, client_for(sim, pki, **overrides) as client:
        call(client)
    return info.value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Results ---------------------------------------------------------------------------------------------------


def test_list_tenants_returns_a_typed_page_never_a_response(is7, pki):
    for i in range(3):
        is7.add_tenant(f"t{i}.com", owner=f"owner{i}")
    with client_for(is7, pki) as client:
        page = client.list_tenants(limit=2, offset=1, sort_order="desc")
    assert isinstance(page, TenantsPage)
    assert (page.total_results, page.start_index, page.count) == (3, 2, 2)
    assert [t.domain for t in page.tenants] == ["t1.com", "t0.com"]
    assert page.tenants[0].owners[0].username == "owner1" and page.tenants[0].activated is True
    assert ("previous", "/api/server/v1/tenants?offset=0&limit=1") in page.links
    sent = is7.requests[-1]
    assert sent.query == "limit=2&offset=1&sortOrder=DESC"  # IS compares sortOrder case-sensitively
    assert sent.headers["wso2-identity-user"] == "admin" and sent.headers["accept"] == "application/json"
    assert sent.headers["activityid"]


def test_an_empty_page_has_no_tenants(is7, pki):
    with client_for(is7, pki) as client:
        page = client.list_tenants()
    assert page.tenants == () and page.total_results == 0 and page.count == 0


def test_without_identity_user_no_header_is_sent(is7, pki):
    with client_for(is7, pki, identity_user="  ") as client:
        client.list_tenants(limit=1)
    assert "wso2-identity-user" not in is7.requests[-1].headers
    assert is7.requests[-1].decision.kind == "system"


def test_sort_order_must_be_asc_or_desc(is7, pki):
    with client_for(is7, pki) as client, pytest.raises(ValueError):
        client.list_tenants(sort_order="up")


# --- HTTP errors -> UpstreamError ----------------------------------------------------------------------------------


def test_an_api_error_keeps_code_message_description_and_trace_id(is7, pki):
    error = failure(is7, pki, lambda c: c.list_tenants(limit=-1, correlation_id="corr-42"))
    assert (error.cause, error.status, error.code) == (Cause.HTTP_ERROR, 400, "TM-60010")
    assert error.message == "Unable to list existing tenants."
    assert error.description == "Limit should not be negative."
    assert error.trace_id == "corr-42" == error.correlation_id
    assert error.product == "WSO2 Identity Server" and not error.not_found
    assert str(error) == ("WSO2 Identity Server answered 400 TM-60010: Unable to list existing tenants. Limit should "
                          "not be negative. (trace id corr-42)")


def test_the_valves_401_has_an_integer_code_kept_as_text(is7, pki):
    error = failure(is7, pki, identity_user="bob")
    assert (error.status, error.code, error.message) == (401, "401", "Unauthorized")
    assert error.description.startswith("Authorization failure.")


def test_not_found_is_recognised_from_ims_400_codes(is7, pki):
    error = failure(is7, pki, lambda c: c._call("GET", "/api/server/v1/tenants/unknown-id"))
    assert (error.status, error.code, error.not_found) == (400, "TM-60014", True)


def test_an_error_without_an_is_body(is7, pki):
    error = failure(is7, pki, lambda c: c._call("GET", "/api/server/v1/no-such-api"))
    assert (error.status, error.code, error.not_found) == (404, None, True)
    assert error.message == "HTTP 404 without an IS error body."
    assert error.trace_id == is7.requests[-1].trace_id  # from the X-WSO2-TraceId header


def test_server_errors_and_injected_bodies(is7, pki):
    is7.push_fault("GET", "/api/server/v1/tenants", 500, body={"code": "TM-65001", "message": "Unable to list "
                   "existing tenants.", "description": "Server encountered an error while listing the tenants."})
    error = failure(is7, pki)
    assert (error.status, error.code) == (500, "TM-65001")


def test_a_success_with_an_unexpected_body_is_a_bad_response(is7, pki):
    is7.push_fault("GET", "/api/server/v1/tenants", 200, body={"unexpected": True})
    error = failure(is7, pki)
    assert error.cause == Cause.BAD_RESPONSE and error.status is None


def test_an_oversized_answer_is_refused(is7, pki):
    is7.push_fault("GET", "/api/server/v1/tenants", 500, body={"description": "x" * (2 * 1024 * 1024 + 10)})
    error = failure(is7, pki)
    assert error.cause == Cause.BAD_RESPONSE and "larger than" in error.message


# --- Timeouts and retries ---------------------------------------------------------------------------------------


def test_a_slow_answer_times_out(is7, pki):
    is7.set_latency(1.5)
    started = time.monotonic()
    error = failure(is7, pki, timeout=(1.0, 0.2))
    assert error.cause == Cause.TIMEOUT and "0.2 s" in error.message
    assert error.status is None and error.correlation_id
    assert time.monotonic() - started < 1.2  # one attempt (retries=0), cut short by the read timeout


def test_a_server_that_never_accepts_the_connection_times_out(pki):
    """A listening socket whose accept queue is full drops new SYNs: the connect timeout applies."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        queued = []
        for _ in range(3):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            queued.append(sock)
        try:
            client = IdentityServerClient(f"https://127.0.0.1:{port}", ca_pem=pki.server_ca.cert_pem,
                                          timeout=(0.3, 5.0), retries=0)
            with client, pytest.raises(UpstreamError) as info:
                client.list_tenants()
        finally:
            for sock in queued:
                sock.close()
    assert info.value.cause == Cause.TIMEOUT
    assert info.value.message == "IS did not accept the connection within 0.3 s."


def test_a_read_timeout_on_a_get_is_retried_once(is7, pki):
    is7.push_fault("GET", "/api/server/v1/tenants", 200, delay=0.5)  # only the first attempt is slow
    with client_for(is7, pki, timeout=(1.0, 0.2), retries=2) as client:
        page = client.list_tenants()
    assert page.total_results == 0
    assert len(is7.requests) == 2


def test_503_is_retried_for_idempotent_calls(is7, pki):
    is7.push_fault("GET", "/api/server/v1/tenants", 503)
    with client_for(is7, pki, retries=1) as client:
        assert client.list_tenants().total_results == 0
    assert [r.status for r in is7.requests] == [503, 200]
    is7.push_fault("GET", "/api/server/v1/tenants", 503)
    assert failure(is7, pki, retries=0).status == 503


def test_a_reset_connection(is7, pki):
    is7.push_fault(None, "/api/server/v1/tenants", "reset")
    error = failure(is7, pki)
    assert error.cause == Cause.CONNECTION_RESET


# --- TLS and network failures in plain words -------------------------------------------------------------------------


def test_an_untrusted_server_certificate(is7, pki):
    error = failure(is7, pki, ca_pem=Authority("Some other CA").cert_pem)
    assert error.cause == Cause.SERVER_NOT_TRUSTED and "CERTIFICATE_VERIFY_FAILED" in error.detail
    assert is7.requests == []


def test_trust_comes_only_from_the_given_bundle_not_the_environment(is7, pki, tmp_path, monkeypatch):
    bundle = tmp_path / "right-ca.pem"
    bundle.write_text(pki.server_ca.cert_pem)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")  # a proxy that is not there
    assert failure(is7, pki, ca_pem=Authority("Some other CA").cert_pem).cause == Cause.SERVER_NOT_TRUSTED
    with client_for(is7, pki) as client:  # and the proxy variable is ignored too
        assert client.list_tenants().total_results == 0


def test_a_server_certificate_for_another_name(pki):
    server = pki.server_ca.server(hosts=("is.example.test",), common_name="is.example.test")
    with Is7Simulator(server_cert_pem=server.cert_pem, server_key_pem=server.key_pem,
                      client_ca_pem=pki.client_ca.cert_pem) as sim:
        error = failure(sim, pki)
    assert error.cause == Cause.SERVER_NAME_MISMATCH


def test_a_client_ca_unknown_to_is(is7, pki):
    stranger = Authority("Stranger CA").client("portal")
    error = failure(is7, pki, cert_pem=stranger.cert_pem, key_pem=stranger.key_pem)
    assert error.cause == Cause.CLIENT_CA_UNKNOWN and "UNKNOWN_CA" in error.detail


def test_an_expired_client_certificate(is7, pki):
    expired = pki.client_ca.client("portal", not_before=datetime.datetime.now(datetime.UTC)
                                   - datetime.timedelta(days=10), days=1)
    error = failure(is7, pki, cert_pem=expired.cert_pem, key_pem=expired.key_pem)
    assert error.cause == Cause.CLIENT_CERTIFICATE_REJECTED


def test_no_client_certificate_when_is_requires_one(pki):
    with Is7Simulator(server_cert_pem=pki.server.cert_pem, server_key_pem=pki.server.key_pem,
                      client_ca_pem=pki.client_ca.cert_pem, require_client_certificate=True) as sim:
        error = failure(sim, pki, cert_pem=None, key_pem=None)
    assert error.cause == Cause.NO_CLIENT_CERTIFICATE


def test_a_key_that_does_not_match_fails_before_connecting(is7, pki):
    other = pki.client_ca.client("other")
    with pytest.raises(UpstreamError) as info:
        client_for(is7, pki, key_pem=other.key_pem)
    assert info.value.cause == Cause.KEY_MISMATCH and "KEY_VALUES_MISMATCH" in info.value.detail
    assert is7.requests == []


def test_refused(pki):
    client = IdentityServerClient(f"https://127.0.0.1:{free_port()}", ca_pem=pki.server_ca.cert_pem,
                                  cert_pem=pki.client.cert_pem, key_pem=pki.client.key_pem, timeout=SHORT, retries=0)
    with client, pytest.raises(UpstreamError) as info:
        client.list_tenants()
    assert info.value.cause == Cause.REFUSED


def test_a_host_that_does_not_resolve_is_named_as_such():
    """Built from the exceptions urllib3 raises (a live DNS lookup would depend on the network)."""
    reason = urllib3.exceptions.NameResolutionError("nowhere.invalid", None,
                                                    socket.gaierror(-2, "Name or service not known"))
    exc = requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", reason))
    assert classify(exc, sent_certificate=True)[0] == Cause.HOST_UNKNOWN


@pytest.mark.parametrize(("message", "sent", "cause"), [
    ("[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required", False,
     Cause.NO_CLIENT_CERTIFICATE),
    ("EOF occurred in violation of protocol (_ssl.c:2427)", False, Cause.NO_CLIENT_CERTIFICATE),
    ("EOF occurred in violation of protocol (_ssl.c:2427)", True, Cause.TLS),
    ("[SSL: WRONG_VERSION_NUMBER] wrong version number", True, Cause.TLS),
])
def test_tls_messages_map_to_causes(message, sent, cause):
    exc = requests.exceptions.SSLError(urllib3.exceptions.SSLError(message))
    assert classify(exc, sent_certificate=sent)[0] == cause


def test_a_plain_http_port_is_a_tls_failure(pki):
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        client = IdentityServerClient(f"https://127.0.0.1:{server.server_address[1]}",
                                      ca_pem=pki.server_ca.cert_pem, timeout=SHORT, retries=0)
        with client, pytest.raises(UpstreamError) as info:
            client.list_tenants()
        assert info.value.cause == Cause.TLS
    finally:
        server.shutdown()
        server.server_close()


# --- Credentials and configuration --------------------------------------------------------------------------------


def test_credentials_are_loaded_from_private_files_that_are_deleted_at_once(pki, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen = {}
    real_mkdtemp = tempfile.mkdtemp

    def spy(*args, **kwargs):
        path = real_mkdtemp(*args, **kwargs)
        seen["mode"] = os.stat(path).st_mode & 0o777
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", spy)
    build_ssl_context(pki.server_ca.cert_pem, pki.client.cert_pem, pki.client.key_pem)
    assert seen["mode"] == 0o700
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("ca", "cert", "key", "fragment"), [
    ("not a pem", None, None, "CA bundle"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", None, None, "CA bundle"),
    (None, "cert", None, "both"),
    (None, "garbage", "garbage", "could not be read"),
    (None, None, "-----BEGIN ENCRYPTED PRIVATE KEY-----\n...", "password-protected"),
])
def test_unreadable_credentials(pki, ca, cert, key, fragment):
    cert = pki.client.cert_pem if cert is None and key else cert
    with pytest.raises(UpstreamError) as info:
        build_ssl_context(ca or pki.server_ca.cert_pem, cert, key)
    assert info.value.cause == Cause.BAD_CREDENTIALS and fragment in info.value.message


@pytest.mark.parametrize(("url", "fragment"), [
    ("", "Enter"), ("http://is:9443", "https://"), ("https://user:pw@is:9443", "user name"),
    ("https://is:9443/?x=1", "query"), ("https://", "host"), ("https://is:99999", "not valid"),
    ("https://is :9443", "spaces"),
])
def test_base_url_rules(url, fragment):
    with pytest.raises(ValueError, match=fragment):
        normalise_base_url(url)


def test_a_base_url_path_prefix_is_kept():
    assert normalise_base_url(" https://gw.example.com/is/ ") == "https://gw.example.com/is"


def test_identity_user_and_timeouts_are_checked(pki):
    with pytest.raises(ValueError):
        IdentityServerClient("https://is:9443", ca_pem=pki.server_ca.cert_pem, identity_user="admin\r\nX: y")
    with pytest.raises(ValueError):
        IdentityServerClient("https://is:9443", ca_pem=pki.server_ca.cert_pem, timeout=0)


# --- Tenant calls (issue 5) ---------------------------------------------------------------------------------------


def owner_spec(**overrides) -> TenantOwnerSpec:
    values = {"username": "kim", "email": "kim@abc.com", "firstname": "Kim", "lastname": "Lee",
              "password": "Kim#12345"}
    values.update(overrides)
    return TenantOwnerSpec(**values)


def test_create_tenant_returns_the_id_from_location_of_an_empty_201(is7, pki):
    with client_for(is7, pki) as client:
        tenant_id = client.create_tenant("abc.com", owner_spec())
    assert tenant_id == is7.tenant("abc.com").id
    sent = is7.requests[-1]
    assert (sent.method, sent.path, sent.status) == ("POST", "/api/server/v1/tenants", 201)
    assert sent.json() == {"domain": "abc.com", "owners": [{
        "username": "kim", "email": "kim@abc.com", "firstname": "Kim", "lastname": "Lee",
        "provisioningMethod": "inline-password", "password": "Kim#12345"}]}
    assert sent.headers["content-type"] == "application/json"


def test_create_with_a_name_and_an_invitation_sends_no_password(is7, pki):
    with client_for(is7, pki) as client:
        client.create_tenant("inv.com", owner_spec(provisioning_method="invite-via-email"), name="Invited")
    sent = is7.requests[-1].json()
    assert sent["name"] == "Invited" and "password" not in sent["owners"][0]
    assert sent["owners"][0]["provisioningMethod"] == "invite-via-email"
    with pytest.raises(ValueError):
        owner_spec(provisioning_method="carrier-pigeon").to_json()


def test_create_is_never_repeated_after_a_503_or_a_reset(is7, pki):
    is7.push_fault("POST", "/api/server/v1/tenants", 503)
    with client_for(is7, pki, retries=2) as client:
        with pytest.raises(UpstreamError) as info:
            client.create_tenant("abc.com", owner_spec())
        assert info.value.status == 503 and info.value.retryable
        is7.push_fault("POST", "/api/server/v1/tenants", "reset")
        with pytest.raises(UpstreamError) as info:
            client.create_tenant("abc.com", owner_spec())
        assert info.value.cause == Cause.CONNECTION_RESET
    assert [r.status for r in is7.requests] == [503, "reset"]
    assert is7.tenant("abc.com") is None


def test_post_is_not_retried_even_after_a_refused_connection(pki):
    """A POST is sent once whatever the failure; a GET gets its retries (each a new connection attempt)."""
    port = free_port()
    attempts = []

    class Counting(requests.adapters.HTTPAdapter):
        def send(self, request, **kwargs):
            attempts.append(request.method)
            return super().send(request, **kwargs)

    session = requests.Session()
    session.mount("https://", Counting(max_retries=0))
    with IdentityServerClient(f"https://127.0.0.1:{port}", session=session, username="admin", password="admin",
                              timeout=SHORT, retries=2) as client:
        with pytest.raises(UpstreamError) as info:
            client.create_tenant("abc.com", owner_spec())
        assert info.value.cause == Cause.REFUSED
        with pytest.raises(UpstreamError):
            client.list_tenants()
    assert attempts == ["POST", "GET", "GET", "GET"]


def test_duplicates_and_bad_input_keep_is_codes(is7, pki):
    with client_for(is7, pki) as client:
        client.create_tenant("abc.com", owner_spec())
        with pytest.raises(UpstreamError) as info:
            client.create_tenant("abc.com", owner_spec())
        assert (info.value.status, info.value.code) == (400, "TM-60009") and not info.value.retryable
        with pytest.raises(UpstreamError) as info:
            client.create_tenant("mail.com", owner_spec(email="broken"))
        assert (info.value.status, info.value.code) == (500, "TM-65002") and not info.value.retryable


def test_a_201_without_location_is_a_bad_response_naming_the_domain(is7, pki):
    is7.push_fault("POST", "/api/server/v1/tenants", 201, body={})
    with client_for(is7, pki) as client, pytest.raises(UpstreamError) as info:
        client.create_tenant("abc.com", owner_spec())
    assert info.value.cause == Cause.BAD_RESPONSE and "abc.com" in info.value.message


def test_get_tenant_and_by_domain(is7, pki):
    with client_for(is7, pki) as client:
        tenant_id = client.create_tenant("abc.com", owner_spec())
        tenant = client.get_tenant(tenant_id)
        assert isinstance(tenant, IsTenant)
        assert (tenant.id, tenant.domain, tenant.name, tenant.activated) == (tenant_id, "abc.com", None, True)
        assert [o.username for o in tenant.owners] == ["kim"] and tenant.owners[0].id
        assert tenant.created.tzinfo is not None
        assert abs((tenant.created - datetime.datetime.now(datetime.UTC)).total_seconds()) < 60
        by_domain = client.get_tenant_by_domain("abc.com")
        assert by_domain.id == tenant_id and by_domain.name == "abc.com"  # IS fills a blank name
        assert client.get_tenant("no-such-id") is None  # 400 TM-60014
        assert client.get_tenant_by_domain("nope.com") is None  # 400 TM-60015


def test_a_plain_404_is_not_a_missing_tenant(is7, pki):
    """Only IS's own not-found codes mean "no such tenant"; a 404 means a wrong URL, a proxy, something else."""
    is7.push_fault("GET", "/api/server/v1/tenants/domain", 404)
    with client_for(is7, pki) as client, pytest.raises(UpstreamError) as info:
        client.get_tenant_by_domain("abc.com")
    assert info.value.status == 404


def test_path_values_cannot_add_segments(is7, pki):
    with client_for(is7, pki) as client:
        assert client.get_tenant_by_domain("../tenants?x=1") is None
    assert is7.requests[-1].path == "/api/server/v1/tenants/domain/..%2Ftenants%3Fx%3D1"  # one segment
    assert is7.requests[-1].query == ""


def test_tenant_exists_reads_head(is7, pki):
    is7.add_tenant("abc.com")
    with client_for(is7, pki) as client:
        assert client.tenant_exists("abc.com") is True
        assert client.tenant_exists("free.com") is False
        assert client.tenant_exists("carbon.super") is True
    assert is7.requests[-1].method == "HEAD"


def test_lifecycle_owners_and_owner_update(is7, pki):
    with client_for(is7, pki) as client:
        tenant_id = client.create_tenant("abc.com", owner_spec())
        client.set_lifecycle(tenant_id, False)
        assert is7.requests[-1].json() == {"activated": False}
        assert client.get_tenant(tenant_id).activated is False
        owners = client.get_owners(tenant_id)
        assert [o.username for o in owners] == ["kim"]
        client.update_owner(tenant_id, owners[0].id, "kim@new.com", "Kimberly", "Lee")
        assert is7.requests[-1].json() == {"email": "kim@new.com", "firstname": "Kimberly", "lastname": "Lee"}
        client.update_owner(tenant_id, owners[0].id, "kim@new.com", "Kimberly", "Lee", password="New#Pass1")
        assert is7.requests[-1].json()["password"] == "New#Pass1"
        with pytest.raises(UpstreamError) as info:
            client.set_lifecycle("no-such-id", True)
        assert info.value.code == "TM-60014" and info.value.not_found
    owner = is7.tenant("abc.com").owner
    assert (owner.email, owner.firstname, owner.password) == ("kim@new.com", "Kimberly", "New#Pass1")


def test_deleting_metadata_is_refused_with_a_typed_error_unless_deletion_is_enabled(is7, pki):
    with client_for(is7, pki) as client:
        tenant_id = client.create_tenant("abc.com", owner_spec())
        with pytest.raises(DeletionDisabled) as info:
            client.delete_tenant_metadata(tenant_id)
        error = info.value
        assert isinstance(error, UpstreamError) and (error.status, error.code) == (400, "TM-60016")
        assert "tenant deletion is disabled" in error.message and "TenantDelete" in error.hint
        assert not error.retryable and not error.not_found and error.trace_id
        assert is7.requests[-1].method == "DELETE" and is7.requests[-1].path.endswith(f"/{tenant_id}/metadata")
        assert client.get_tenant(tenant_id) is not None
        is7.configure(tenant_deletion=True)
        client.delete_tenant_metadata(tenant_id)
        assert is7.requests[-1].status == 204
        assert client.get_tenant(tenant_id) is None and client.get_tenant_by_domain("abc.com") is None


def test_a_403_names_the_permission_the_operation_needs(is7, pki):
    is7.add_basic_user("viewer", "Viewer#1", permissions=[PERMISSION_LIST_TENANTS])
    is7.add_basic_user("nobody", "Nobody#1", permissions=["/permission/admin/login"])
    tenant_id = is7.add_tenant("abc.com", owner="kim").id
    with client_for(is7, pki, cert_pem=None, key_pem=None, identity_user=None, username="viewer",
                    password="Viewer#1") as viewer:
        assert viewer.get_tenant(tenant_id).domain == "abc.com"  # listing is allowed
        with pytest.raises(PermissionDenied) as info:
            viewer.set_lifecycle(tenant_id, False)
        error = info.value
        assert isinstance(error, UpstreamError) and (error.status, error.code) == (403, "403")
        assert error.permission == PERMISSION_MODIFY_TENANTS
        assert error.message == (f"IS refused PUT /api/server/v1/tenants/{tenant_id}/lifecycle-status: the user "
                                 f"'viewer' lacks the permission {PERMISSION_MODIFY_TENANTS} (scope "
                                 "internal_modify_tenants), which IS requires for it.")
        assert PERMISSION_MODIFY_TENANTS in error.hint and not error.retryable
        with pytest.raises(PermissionDenied) as info:
            viewer.delete_tenant_metadata(tenant_id)
        assert info.value.permission == PERMISSION_MODIFY_TENANTS
    with client_for(is7, pki, cert_pem=None, key_pem=None, identity_user=None, username="nobody",
                    password="Nobody#1") as nobody, pytest.raises(PermissionDenied) as info:
        nobody.list_tenants()
    assert info.value.permission == PERMISSION_LIST_TENANTS and "internal_list_tenants" in info.value.message
    assert "'nobody'" in str(info.value)


def test_an_api_403_with_its_own_code_is_not_a_permission_problem(is7, pki):
    is7.push_fault("POST", "/api/server/v1/tenants", 403, body={"code": "TM-60019", "message": "Unable to add tenant.",
                                                                "description": "Tenant limit reached."})
    with client_for(is7, pki) as client, pytest.raises(UpstreamError) as info:
        client.create_tenant("abc.com", owner_spec())
    assert not isinstance(info.value, PermissionDenied) and info.value.code == "TM-60019"


def test_iter_all_tenants_follows_offsets_until_total_results(is7, pki):
    for i in range(250):
        is7.add_tenant(f"t{i:03d}.example.com")
    with client_for(is7, pki) as client:
        domains = [t.domain for t in client.iter_all_tenants()]
        assert domains == [f"t{i:03d}.example.com" for i in range(250)]
        assert [r.query for r in is7.requests] == [f"limit=100&offset={o}&sortOrder=ASC" for o in (0, 100, 200)]
        is7.clear_log()
        assert len(list(client.iter_all_tenants(page_size=500))) == 250  # IS clamps to 100; offsets follow
        assert len(is7.requests) == 3


def test_basic_authentication_instead_of_a_certificate(is7, pki):
    with client_for(is7, pki, cert_pem=None, key_pem=None, identity_user=None, username="admin",
                    password="admin") as client:
        client.ping()
    assert is7.requests[-1].basic_user == "admin" and is7.requests[-1].client_thumbprint is None
    error = failure(is7, pki, cert_pem=None, key_pem=None, identity_user=None, username="admin", password="nope")
    assert (error.status, error.code) == (401, "401")
    with pytest.raises(ValueError):
        client_for(is7, pki, username="admin")


def test_a_long_retry_after_is_not_slept_through(is7, pki):
    is7.push_fault("GET", "/api/server/v1/tenants", 503, headers={"Retry-After": "120"})
    started = time.monotonic()
    error = failure(is7, pki, retries=2)
    assert time.monotonic() - started < 5
    assert (error.status, error.retry_after) == (503, 120.0)
    assert len(is7.requests) == 1


@pytest.mark.parametrize(("status", "code", "cause", "retryable"), [
    (503, None, Cause.HTTP_ERROR, True), (429, None, Cause.HTTP_ERROR, True), (500, None, Cause.HTTP_ERROR, True),
    (500, "TM-65002", Cause.HTTP_ERROR, False), (400, "TM-60009", Cause.HTTP_ERROR, False),
    (None, None, Cause.REFUSED, True), (None, None, Cause.SERVER_NOT_TRUSTED, False),
])
def test_which_errors_are_worth_retrying(status, code, cause, retryable):
    assert UpstreamError(cause, "x", status=status, code=code).retryable is retryable
