"""The clients' one transport (portal.clients.transport): an injected requests.Session is used as it is (a
session whose adapter records every call, pointed at the real IS 7 and API Manager simulators), URL templates
quote every value as exactly one segment, and the retry policy repeats only what may be repeated."""
from __future__ import annotations

import socket

import pytest
import requests

from portal.clients import transport
from portal.clients.api_manager import ApiManagerClient, ApimTenantSpec
from portal.clients.apim_admin import KEY_MANAGER
from portal.clients.errors import PRODUCT_IS, Cause, UpstreamError
from portal.clients.identity_server import (
    TENANT,
    TENANT_BY_DOMAIN,
    TENANT_LIFECYCLE,
    TENANT_METADATA,
    TENANT_OWNER,
    TENANT_OWNERS,
    TENANTS,
    IdentityServerClient,
)


class RecordingAdapter(transport.TlsAdapter):
    """The transport's own TLS adapter, noting each request it sends (method, path and query, headers)."""

    def __init__(self, context, **kwargs) -> None:
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        super().__init__(context, **kwargs)

    def send(self, request, **kwargs):
        self.calls.append((request.method, request.path_url, dict(request.headers)))
        return super().send(request, **kwargs)


def recording_session(ca_pem: str, cert_pem: str | None = None, key_pem: str | None = None):
    adapter = RecordingAdapter(transport.build_ssl_context(ca_pem, cert_pem, key_pem), max_retries=0)
    session = requests.Session()
    session.trust_env = False
    session.mount("https://", adapter)
    return session, adapter


# --- An injected session -------------------------------------------------------------------------------------


def test_the_is_client_sends_every_call_through_an_injected_session(is7, pki):
    session, adapter = recording_session(pki.server_ca.cert_pem, pki.client.cert_pem, pki.client.key_pem)
    is7.add_tenant("abc.com", owner="kim")
    is7.push_fault("GET", "/api/server/v1/tenants/domain", 503)
    with IdentityServerClient(is7.base_url, session=session, identity_user="admin", timeout=(2.0, 2.0),
                              retries=1) as client:
        tenant = client.get_tenant_by_domain("abc.com")
        assert client.get_tenant_by_domain("a/b?c") is None  # IS's TM-60015: no such tenant
    assert tenant.domain == "abc.com"
    paths = [(method, path) for method, path, _ in adapter.calls]
    assert paths == [("GET", "/api/server/v1/tenants/domain/abc.com")] * 2 + [
        ("GET", "/api/server/v1/tenants/domain/a%2Fb%3Fc")]
    first, retried, other = (headers for _, _, headers in adapter.calls)
    assert first["activityid"] == retried["activityid"] != other["activityid"]  # one id per call, not per attempt
    assert first["WSO2-Identity-User"] == "admin" and first["Accept"] == "application/json"
    assert first["User-Agent"] == "tenant-portal" and "Authorization" not in first
    assert [r.status for r in is7.requests] == [503, 200, 400]
    assert is7.requests[1].client_thumbprint == pki.client.thumbprint  # the injected adapter's mutual TLS
    assert not session.headers.get("WSO2-Identity-User") and session.auth is None  # the session is left as given


def test_the_api_manager_client_sends_soap_notify_and_rest_through_an_injected_session(apim, pki):
    session, adapter = recording_session(pki.server_ca.cert_pem)
    with ApiManagerClient(apim.base_url, session=session, username="admin", password="admin",
                          timeout=(2.0, 2.0), backoff=0.01) as client:
        client.add_tenant(ApimTenantSpec("abc.com", "kim", "Kim#12345", "kim@abc.com", "Kim", "Lee"))
        apim.push_fault("POST", "/services", 503, operation="getTenant")
        assert client.get_tenant("abc.com").domain == "abc.com"
        assert client.get_key_manager("no/such?id", "kim@abc.com", "Kim#12345") is None
    methods = [(method, path) for method, path, _ in adapter.calls]
    assert methods == [("POST", "/services/TenantMgtAdminService")] * 3 + [
        ("GET", "/api/am/admin/v4/key-managers/no%2Fsuch%3Fid")]
    soap_ids = [headers["activityid"] for _, _, headers in adapter.calls[1:3]]
    assert soap_ids[0] != soap_ids[1]  # API Manager's calls: a new correlation id for each attempt
    assert adapter.calls[1][2]["SOAPAction"] == '"urn:getTenant"'
    assert adapter.calls[3][2]["Authorization"].startswith("Basic ")  # the tenant admin's, per call
    assert [r.status for r in apim.requests][:3] == [200, 503, 200]
    assert session.auth is None


def test_a_failure_through_an_injected_session_is_still_typed(pki):
    session, _ = recording_session(pki.server_ca.cert_pem)
    with IdentityServerClient(
            f"https://127.0.0.1:{free_port()}", session=session, username="admin", password="admin", timeout=(1.0, 1.0),
            retries=0) as client, pytest.raises(UpstreamError) as info:
        client.list_tenants()
    assert info.value.cause == Cause.REFUSED and info.value.correlation_id


def test_without_a_session_a_client_needs_a_trust_bundle():
    with pytest.raises(UpstreamError) as info:
        IdentityServerClient("https://is.example.com", username="admin", password="admin")
    assert info.value.cause == Cause.BAD_CREDENTIALS


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- URL templates --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("template", "values", "path"), [
    (TENANT_BY_DOMAIN, {"domain": "abc.com"}, "/api/server/v1/tenants/domain/abc.com"),
    (TENANT_BY_DOMAIN, {"domain": "../tenants?x=1#y"}, "/api/server/v1/tenants/domain/..%2Ftenants%3Fx%3D1%23y"),
    (TENANT, {"tenant_id": "a b/c"}, "/api/server/v1/tenants/a%20b%2Fc"),
    (TENANT_LIFECYCLE, {"tenant_id": "%2e%2e"}, "/api/server/v1/tenants/%252e%252e/lifecycle-status"),
    (TENANT_OWNERS, {"tenant_id": "t"}, "/api/server/v1/tenants/t/owners"),
    (TENANT_OWNER, {"tenant_id": "t", "owner_id": "o;x=1"}, "/api/server/v1/tenants/t/owners/o%3Bx%3D1"),
    (TENANT_METADATA, {"tenant_id": "ü"}, "/api/server/v1/tenants/%C3%BC/metadata"),
    (KEY_MANAGER, {"key_manager_id": "..."}, "/api/am/admin/v4/key-managers/..."),
    (KEY_MANAGER, {"key_manager_id": "a\r\nHost: x"}, "/api/am/admin/v4/key-managers/a%0D%0AHost%3A%20x"),
])
def test_templates_quote_each_value_as_one_segment(template, values, path):
    assert transport.expand(template, **values) == path


def test_a_template_needs_exactly_its_values():
    assert transport.expand(TENANTS) == "/api/server/v1/tenants"
    with pytest.raises(ValueError, match="a key manager id is required"):
        transport.expand(KEY_MANAGER, "a key manager id", key_manager_id="")
    with pytest.raises(KeyError):
        transport.expand(TENANT_OWNER, tenant_id="t")
    with pytest.raises(KeyError):
        transport.expand(TENANT, tenant_id="t", domain="abc.com")


@pytest.mark.parametrize("value", [".", ".."])
def test_dot_segments_are_refused_before_anything_is_sent(apim, pki, value):
    """No percent-encoding survives urllib3's dot-segment removal: "/key-managers/.." would become the list."""
    with pytest.raises(ValueError, match="cannot be"):
        transport.expand(TENANT, tenant_id=value)
    with ApiManagerClient(apim.base_url, ca_pem=pki.server_ca.cert_pem, username="admin", password="admin",
                          timeout=(2.0, 2.0)) as client, pytest.raises(ValueError):
        client.delete_key_manager(value, "kim@abc.com", "Kim#12345")
    assert apim.requests == []


# --- The retry policy -----------------------------------------------------------------------------------------


def answers(*items):
    """A `send` that hands out the given answers (or raises the given failures) in order, counting calls."""
    queue = list(items)
    sent = []

    def send():
        sent.append(1)
        item = queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    return send, sent


def failed(cause: Cause, *, connected: bool) -> transport.AttemptFailed:
    return transport.AttemptFailed(UpstreamError(cause, "x", product=PRODUCT_IS), connected=connected)


OK = transport.Answer(200, {}, b"")
BUSY = transport.Answer(503, {}, b"")
LATER = transport.Answer(503, {"Retry-After": "120"}, b"")
FAST = transport.RetryPolicy(retries=2, backoff=0.001)


def test_only_idempotent_calls_are_repeated():
    send, sent = answers(BUSY, OK)
    assert FAST.run(send, idempotent=False) is BUSY and len(sent) == 1
    send, sent = answers(BUSY, OK)
    assert FAST.run(send, idempotent=True) is OK and len(sent) == 2
    send, sent = answers(failed(Cause.REFUSED, connected=False), OK)
    with pytest.raises(UpstreamError):
        FAST.run(send, idempotent=False)
    assert len(sent) == 1


def test_a_long_retry_after_ends_the_retries_and_the_last_answer_is_returned():
    send, sent = answers(LATER, OK)
    assert FAST.run(send, idempotent=True) is LATER and len(sent) == 1
    send, sent = answers(BUSY, BUSY, BUSY, OK)
    assert FAST.run(send, idempotent=True) is BUSY and len(sent) == 3


def test_transient_causes_and_the_read_budget():
    send, sent = answers(failed(Cause.SERVER_NOT_TRUSTED, connected=False), OK)
    with pytest.raises(UpstreamError) as info:
        FAST.run(send, idempotent=True)
    assert info.value.cause == Cause.SERVER_NOT_TRUSTED and len(sent) == 1
    one_read = transport.RetryPolicy(retries=2, backoff=0.001, read_retries=1)
    send, sent = answers(failed(Cause.TIMEOUT, connected=True), failed(Cause.TIMEOUT, connected=True), OK)
    with pytest.raises(UpstreamError):
        one_read.run(send, idempotent=True)
    assert len(sent) == 2
    send, sent = answers(failed(Cause.REFUSED, connected=False), failed(Cause.REFUSED, connected=False), OK)
    assert one_read.run(send, idempotent=True) is OK and len(sent) == 3
