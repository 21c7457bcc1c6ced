"""Outbound calls to WSO2 Identity Server 7's REST APIs, over mutual TLS (wso2-apis.md §1, §2; security.md §4).

One `IdentityServerClient` owns one `requests.Session`:
- IS's server certificate is verified against the CA bundle given (only that bundle: `trust_env` is off, so
  `REQUESTS_CA_BUNDLE` and proxy variables cannot widen trust or reroute the call);
- the portal's client certificate and key arrive as PEM text (the key is stored encrypted); `ssl` can only load them
  from files, so they are written to a private temporary directory, loaded into an `SSLContext`, and deleted at once;
- every call has a timeout, sends `WSO2-Identity-User` when set and an `activityid` correlation id IS logs;
- idempotent calls are retried on connection failures and 429/502/503/504; POST never is;
- every failure is an `UpstreamError`: an HTTP error with IS's status, error code, message, description and trace
  id; or a transport failure with a plain `Cause` (TLS problems above all, since IS answers them with a bare
  handshake failure). A raw `Response` never leaves this module.

Issue 5 adds the other tenant calls; they go through `_call`, which owns the error mapping.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

PRODUCT = "WSO2 Identity Server"
API_PATH = "api/server/v1"
USER_HEADER = "WSO2-Identity-User"
CORRELATION_HEADER = "activityid"  # IS's RequestCorrelationIdValve maps it to the Correlation-ID it logs
TRACE_HEADER = "X-WSO2-TraceId"
DEFAULT_TIMEOUT = (3.05, 15.0)  # (connect, read) seconds
MAX_BODY_BYTES = 2 * 1024 * 1024  # a page of 100 tenants is a few tens of KiB
SORT_ORDERS = ("ASC", "DESC")  # IS compares case-sensitively; anything else silently means ASC
MAX_LIMIT = 100  # IS clamps larger limits to MaximumItemsPerPage


class Cause(StrEnum):
    """Why a call failed, in terms an administrator can act on."""

    HTTP_ERROR = "http_error"  # IS answered with an error status: see status / code / description
    NO_CLIENT_CERTIFICATE = "no_client_certificate"
    SERVER_NOT_TRUSTED = "server_not_trusted"
    SERVER_NAME_MISMATCH = "server_name_mismatch"
    CLIENT_CA_UNKNOWN = "client_ca_unknown"
    CLIENT_CERTIFICATE_REJECTED = "client_certificate_rejected"
    KEY_MISMATCH = "key_mismatch"
    BAD_CREDENTIALS = "bad_credentials"  # the certificate, key or CA bundle could not be read
    TIMEOUT = "timeout"
    REFUSED = "refused"
    HOST_UNKNOWN = "host_unknown"
    CONNECTION_RESET = "connection_reset"
    TLS = "tls"  # another TLS failure
    NETWORK = "network"  # another network failure
    BAD_RESPONSE = "bad_response"  # a success status with a body that is not what IS sends


HINTS: dict[Cause, str] = {  # what to do about it; the error's message says what happened
    Cause.NO_CLIENT_CERTIFICATE: "Upload the portal's client certificate with its private key.",
    Cause.SERVER_NOT_TRUSTED: "Upload the CA that issued IS's server certificate (or IS's certificate itself) as a "
                              "trusted certificate.",
    Cause.SERVER_NAME_MISMATCH: "Use the host name IS's certificate was issued for, or reissue it with this name.",
    Cause.CLIENT_CA_UNKNOWN: "Import the CA that issued the portal's client certificate into IS's client-truststore "
                             "and restart IS.",
    Cause.CLIENT_CERTIFICATE_REJECTED: "Check the certificate's validity dates and that it allows client "
                                       "authentication; upload a new one if needed.",
    Cause.KEY_MISMATCH: "Upload the certificate together with the private key it was issued for.",
    Cause.BAD_CREDENTIALS: "Upload the certificate, key or CA bundle again.",
    Cause.TIMEOUT: "Check that IS is running and not overloaded, or allow more time.",
    Cause.REFUSED: "Check the host and port in the base URL, that IS is running, and firewalls.",
    Cause.HOST_UNKNOWN: "Check the host name's spelling and DNS.",
    Cause.CONNECTION_RESET: "Look for a proxy or load balancer in between; if it happens on every call, IS may be "
                            "refusing the client certificate.",
    Cause.TLS: "Compare the TLS versions and ciphers IS allows with the portal's (TLS 1.2 or newer).",
    Cause.NETWORK: "Check the network path between the portal and IS.",
    Cause.BAD_RESPONSE: "Check that the base URL points at IS itself and not at a proxy or login page.",
    Cause.HTTP_ERROR: "See IS's error code and description; search IS's logs for the trace id.",
}


class UpstreamError(Exception):
    """A call to a WSO2 product failed. Either IS answered with an error status (`status`, `code` such as
    "TM-60014", `message`, `description`, `trace_id`), or the call failed before an answer (`status` None, `cause`
    says why, `detail` keeps the library's own words for the logs)."""

    def __init__(self, cause: Cause, message: str, *, product: str = PRODUCT, status: int | None = None,
                 code: str | None = None, description: str | None = None, trace_id: str | None = None,
                 detail: str | None = None, target: str | None = None, correlation_id: str | None = None) -> None:
        self.cause = cause
        self.message = message
        self.product = product
        self.status = status
        self.code = code
        self.description = description
        self.trace_id = trace_id
        self.detail = detail
        self.target = target
        self.correlation_id = correlation_id
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.status is not None:
            head = f"{self.product} answered {self.status}"
            if self.code:
                head += f" {self.code}"
            text = f"{head}: {self.message}"
            if self.description and self.description != self.message:
                text += f" {self.description}"
            if self.trace_id:
                text += f" (trace id {self.trace_id})"
            return text
        return f"{self.product}: {self.message}"

    @property
    def hint(self) -> str:
        return HINTS[self.cause]

    @property
    def not_found(self) -> bool:
        """IS reports an unknown tenant as 400 TM-60014 / TM-60015, not 404 (product-is#25494)."""
        return self.status == 404 or self.code in ("TM-60014", "TM-60015")


# --- Results ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantOwner:
    id: str | None
    username: str | None


@dataclass(frozen=True)
class TenantSummary:
    """A TenantListItem / TenantResponseModel."""

    id: str
    domain: str
    name: str | None = None
    owners: tuple[TenantOwner, ...] = ()
    created_date: str | None = None  # IS's ISO-8601 UTC string, kept as sent
    activated: bool | None = None


@dataclass(frozen=True)
class TenantsPage:
    total_results: int
    start_index: int
    count: int
    tenants: tuple[TenantSummary, ...] = ()
    links: tuple[tuple[str, str], ...] = ()  # (rel, href) as IS sends them: relative hrefs


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)


# --- TLS set-up ------------------------------------------------------------------------------------------------


class _TlsAdapter(HTTPAdapter):
    """Hands urllib3 our SSLContext (CA bundle + client certificate already loaded) and stops requests from adding
    its default CA bundle or certificate files to it: trust is exactly the bundle the portal was given."""

    def __init__(self, context: ssl.SSLContext, **kwargs: Any) -> None:
        self._context = context
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        for key in ("ca_certs", "ca_cert_dir", "cert_file", "key_file"):
            pool_kwargs.pop(key, None)
        pool_kwargs["ssl_context"] = self._context
        pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
        return host_params, pool_kwargs

    def cert_verify(self, conn, url, verify, cert) -> None:
        conn.cert_reqs = "CERT_REQUIRED"  # never relaxed, whatever `verify` says
        conn.ca_certs = None
        conn.ca_cert_dir = None


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key and block the worker.
    return b""


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def build_ssl_context(ca_pem: str, cert_pem: str | None = None, key_pem: str | None = None) -> ssl.SSLContext:
    """A client context trusting only `ca_pem`, presenting the client certificate when given.

    Raises UpstreamError(BAD_CREDENTIALS | KEY_MISMATCH) before any connection is made."""
    if not ca_pem or "-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise UpstreamError(Cause.BAD_CREDENTIALS, "The CA bundle for IS's server certificate is empty or not PEM.")
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
    except (ssl.SSLError, ValueError) as exc:
        raise UpstreamError(Cause.BAD_CREDENTIALS, "The CA bundle for IS's server certificate could not be read.",
                            detail=str(exc)) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_pem is None and key_pem is None:
        return context
    if not cert_pem or not key_pem:
        raise UpstreamError(Cause.BAD_CREDENTIALS,
                            "The portal's client certificate needs both the certificate and its private key.")
    if "ENCRYPTED" in key_pem:
        raise UpstreamError(Cause.BAD_CREDENTIALS, "The portal's private key is password-protected; store it "
                            "unencrypted (the portal encrypts it at rest).")
    directory = tempfile.mkdtemp(prefix="portal-mtls-")  # mode 0700
    try:
        cert_path = os.path.join(directory, "client.pem")
        key_path = os.path.join(directory, "client-key.pem")
        _write_private(cert_path, cert_pem)
        _write_private(key_path, key_pem)
        context.load_cert_chain(cert_path, key_path, password=_no_password)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise UpstreamError(Cause.KEY_MISMATCH, "The private key does not match the portal's client "
                                "certificate.", detail=str(exc)) from None
        raise UpstreamError(Cause.BAD_CREDENTIALS, "The portal's client certificate or private key could not be "
                            "read.", detail=str(exc)) from None
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return context


# --- The client ------------------------------------------------------------------------------------------------


def normalise_base_url(base_url: str) -> str:
    """`https://host[:port][/prefix]`, without a trailing slash. Raises ValueError with a reason."""
    text = (base_url or "").strip()
    if not text:
        raise ValueError("Enter IS's base URL, e.g. https://is.example.com:9443.")
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in text):
        raise ValueError("The base URL contains spaces or control characters.")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"The base URL is not valid ({exc}).") from None
    if parts.scheme.lower() != "https":
        raise ValueError("IS's base URL must start with https:// (mutual TLS needs TLS).")
    if not parts.hostname:
        raise ValueError("The base URL has no host name.")
    if parts.username or parts.password:
        raise ValueError("The base URL must not contain a user name or password.")
    if parts.query or parts.fragment:
        raise ValueError("The base URL must not contain a query or fragment.")
    return f"https://{parts.netloc}{parts.path.rstrip('/')}"


def _check_header_value(value: str) -> str:
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("The WSO2-Identity-User value contains control characters.")
    if len(value) > 255:
        raise ValueError("The WSO2-Identity-User value is longer than 255 characters.")
    return value


class IdentityServerClient:
    """REST client for one IS 7 server. Build it once per process (or per check) and `close()` it."""

    def __init__(self, base_url: str, *, ca_pem: str, cert_pem: str | None = None, key_pem: str | None = None,
                 identity_user: str | None = None, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
                 retries: int = 2, pool_maxsize: int = 4) -> None:
        self.base_url = normalise_base_url(base_url)
        self.api_base = f"{self.base_url}/{API_PATH}"
        user = (identity_user or "").strip()
        self.identity_user = _check_header_value(user) if user else None
        self.timeout = (float(timeout), float(timeout)) if isinstance(timeout, int | float) else tuple(timeout)
        if len(self.timeout) != 2 or min(self.timeout) <= 0:
            raise ValueError("timeouts must be positive")
        self.presents_certificate = cert_pem is not None
        context = build_ssl_context(ca_pem, cert_pem, key_pem)
        self._session = requests.Session()
        self._session.trust_env = False  # no REQUESTS_CA_BUNDLE, no proxies, no .netrc
        self._session.verify = True
        self._session.headers.update({"Accept": "application/json", "User-Agent": "tenant-portal"})
        retry = Retry(total=retries, connect=retries, read=min(retries, 1), status=retries, other=0,
                      redirect=False, backoff_factor=0.5, backoff_jitter=0.3,
                      status_forcelist={429, 502, 503, 504}, allowed_methods=Retry.DEFAULT_ALLOWED_METHODS,
                      respect_retry_after_header=True, raise_on_status=False, raise_on_redirect=False)
        adapter = _TlsAdapter(context, pool_connections=1, pool_maxsize=pool_maxsize, max_retries=retry)
        self._session.mount("https://", adapter)
        self._session.mount("http://", HTTPAdapter(max_retries=0))  # unreachable: base URLs are https only

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- Tenant management API ----------------------------------------------------------------------------

    def list_tenants(self, *, limit: int | None = None, offset: int | None = None, sort_order: str | None = None,
                     sort_by: str | None = None, filter: str | None = None,
                     correlation_id: str | None = None) -> TenantsPage:
        """GET /tenants. `filter` is "domainName <sw|ew|eq|co> <value>"; IS defaults limit to 15, caps it at 100."""
        params: dict[str, str | int] = {}
        if limit is not None:
            params["limit"] = int(limit)
        if offset is not None:
            params["offset"] = int(offset)
        if sort_order is not None:
            if sort_order.upper() not in SORT_ORDERS:
                raise ValueError("sort_order must be ASC or DESC")
            params["sortOrder"] = sort_order.upper()
        if sort_by is not None:
            params["sortBy"] = sort_by
        if filter is not None:
            params["filter"] = filter
        answer = self._call("GET", "tenants", params=params, correlation_id=correlation_id)
        return _tenants_page(_json_object(answer, self.base_url))

    # --- Plumbing -----------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json_body: Any = None,
              expected: tuple[int, ...] = (200,), correlation_id: str | None = None) -> _Answer:
        """One request; returns the answer when its status is expected, else raises UpstreamError."""
        correlation_id = correlation_id or str(uuid.uuid4())
        headers = {CORRELATION_HEADER: correlation_id}
        if self.identity_user:
            headers[USER_HEADER] = self.identity_user
        url = f"{self.api_base}/{path.lstrip('/')}"
        try:
            response = self._session.request(method, url, params=params, json=json_body, headers=headers,
                                             timeout=self.timeout, allow_redirects=False, stream=True)
            try:
                body = _read_capped(response)
            finally:
                response.close()
        except requests.RequestException as exc:
            raise self._transport_error(exc, correlation_id) from None
        except _TooLarge:
            raise UpstreamError(Cause.BAD_RESPONSE, f"The answer to {method} {path} is larger than "
                                f"{MAX_BODY_BYTES // 1024} KiB.", target=self.base_url,
                                correlation_id=correlation_id) from None
        answer = _Answer(response.status_code, dict(response.headers), body)
        if answer.status not in expected:
            raise _http_error(answer, self.base_url, correlation_id)
        return answer

    def _transport_error(self, exc: requests.RequestException, correlation_id: str) -> UpstreamError:
        cause, message = classify(exc, sent_certificate=self.presents_certificate, timeout=self.timeout)
        return UpstreamError(cause, message, detail=_detail(exc), target=self.base_url, correlation_id=correlation_id)


class _TooLarge(Exception):
    pass


def _read_capped(response: requests.Response) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(8192):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _http_error(answer: _Answer, target: str, correlation_id: str) -> UpstreamError:
    """IS's error bodies: {"code": "TM-60014", "message", "description", "traceId"} from the API, or the auth
    valve's {"code": 401, "message": "Unauthorized", ...} with an integer code."""
    code = message = description = trace_id = None
    try:
        document = json.loads(answer.body) if answer.body else None
    except ValueError:
        document = None
    if isinstance(document, dict):
        raw_code = document.get("code")
        code = str(raw_code) if isinstance(raw_code, str | int) and not isinstance(raw_code, bool) else None
        message = document.get("message") if isinstance(document.get("message"), str) else None
        description = document.get("description") if isinstance(document.get("description"), str) else None
        trace_id = document.get("traceId") if isinstance(document.get("traceId"), str) else None
    headers = {k.lower(): v for k, v in answer.headers.items()}
    trace_id = trace_id or headers.get(TRACE_HEADER.lower())
    if message is None:
        message = f"HTTP {answer.status} without an IS error body."
    return UpstreamError(Cause.HTTP_ERROR, message, status=answer.status, code=code, description=description,
                         trace_id=trace_id, target=target, correlation_id=correlation_id)


def _json_object(answer: _Answer, target: str) -> dict:
    try:
        document = json.loads(answer.body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        content_type = answer.headers.get("Content-Type", "no content type")
        raise UpstreamError(Cause.BAD_RESPONSE, f"IS answered {answer.status} without a JSON object "
                            f"({content_type}).", target=target)
    return document


def _bad_shape(what: str) -> UpstreamError:
    return UpstreamError(Cause.BAD_RESPONSE, f"IS's tenant list is not in the expected shape: {what}.")


def _int(document: dict, key: str, default: int | None = None) -> int:
    value = document.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad_shape(f"{key} is not a number")
    return value


def _tenant(item: object) -> TenantSummary:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not isinstance(item.get("domain"), str):
        raise _bad_shape("a tenant without an id or domain")
    owners = tuple(TenantOwner(o.get("id"), o.get("username")) for o in item.get("owners") or []
                   if isinstance(o, dict))
    status = item.get("lifecycleStatus")
    activated = status.get("activated") if isinstance(status, dict) else None
    return TenantSummary(id=item["id"], domain=item["domain"], name=item.get("name"), owners=owners,
                         created_date=item.get("createdDate"),
                         activated=activated if isinstance(activated, bool) else None)


def _tenants_page(document: dict) -> TenantsPage:
    tenants = document.get("tenants") or []  # IS leaves `tenants` out when the page is empty
    if not isinstance(tenants, list):
        raise _bad_shape("tenants is not a list")
    links = tuple((link.get("rel", ""), link.get("href", "")) for link in document.get("links") or []
                  if isinstance(link, dict))
    return TenantsPage(total_results=_int(document, "totalResults"), start_index=_int(document, "startIndex", 1),
                       count=_int(document, "count", len(tenants)), tenants=tuple(_tenant(t) for t in tenants),
                       links=links)


# --- Transport failures in plain words -------------------------------------------------------------------------


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (requests -> urllib3 MaxRetryError.reason -> ssl / socket errors)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen or len(seen) > 20:
            continue
        seen.add(id(current))
        yield current
        nested = [getattr(current, "reason", None), current.__cause__, current.__context__,
                  *(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))]
        stack.extend(n for n in nested if isinstance(n, BaseException))


def _detail(exc: BaseException) -> str:
    """The most specific message: the ssl/socket error if there is one."""
    for link in _chain(exc):
        if isinstance(link, ssl.SSLError | ConnectionError | socket.gaierror) and str(link):
            return str(link)[:500]
    return str(exc)[:500]


_CLIENT_CERT_ALERTS = ("CERTIFICATE_EXPIRED", "BAD_CERTIFICATE", "CERTIFICATE_REVOKED", "UNSUPPORTED_CERTIFICATE",
                       "CERTIFICATE_UNKNOWN", "ACCESS_DENIED", "DECRYPT_ERROR")


def classify(exc: BaseException, *, sent_certificate: bool,
             timeout: tuple[float, float] | None = None) -> tuple[Cause, str]:
    """Map a requests/urllib3/ssl failure to a Cause and one sentence. Order matters: requests' ConnectTimeout is
    also a ConnectionError, and urllib3's NewConnectionError (refused, DNS, no route) is a ConnectTimeoutError."""
    links = list(_chain(exc))
    text = " ".join(f"{type(link).__name__}: {link}" for link in links)
    connect_s, read_s = timeout or (None, None)

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(link, types) for link in links)

    if has(socket.gaierror) or "NameResolutionError" in text or "Name or service not known" in text:
        return Cause.HOST_UNKNOWN, "The IS host name does not resolve."
    if has(ConnectionRefusedError) or "Connection refused" in text:
        return Cause.REFUSED, "The connection to IS was refused."
    if has(urllib3.exceptions.NewConnectionError):  # no route to host, network unreachable...
        return Cause.NETWORK, "The portal could not open a connection to IS."
    if has(requests.exceptions.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError):
        return Cause.TIMEOUT, f"IS did not accept the connection within {connect_s:g} s." if connect_s else \
            "IS did not accept the connection in time."
    if has(requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError, socket.timeout):
        return Cause.TIMEOUT, f"IS did not answer within {read_s:g} s." if read_s else "IS did not answer in time."
    if has(ssl.SSLError, requests.exceptions.SSLError, urllib3.exceptions.SSLError):
        return _classify_tls(text, has(ssl.SSLEOFError), sent_certificate)
    if has(ConnectionResetError, BrokenPipeError) or "RemoteDisconnected" in text or "reset by peer" in text:
        if not sent_certificate:
            return Cause.NO_CLIENT_CERTIFICATE, ("IS closed the connection and the portal sent no client "
                                                 "certificate; IS probably requires one.")
        return Cause.CONNECTION_RESET, "IS closed the connection without an answer."
    return Cause.NETWORK, "The call to IS failed on the network."


def _classify_tls(text: str, eof: bool, sent_certificate: bool) -> tuple[Cause, str]:
    upper = text.upper()
    if "KEY_VALUES_MISMATCH" in upper:
        return Cause.KEY_MISMATCH, "The private key does not match the portal's client certificate."
    if "CERTIFICATE_VERIFY_FAILED" in upper:
        if "HOSTNAME MISMATCH" in upper or "IP ADDRESS MISMATCH" in upper:
            return Cause.SERVER_NAME_MISMATCH, "IS's server certificate is not valid for the host in the base URL."
        return Cause.SERVER_NOT_TRUSTED, "The portal does not trust IS's server certificate."
    if "UNKNOWN_CA" in upper:
        return Cause.CLIENT_CA_UNKNOWN, "IS does not know the CA that issued the portal's client certificate."
    if "CERTIFICATE_REQUIRED" in upper:
        return Cause.NO_CLIENT_CERTIFICATE, "IS requires a client certificate and the portal sent none."
    if any(alert in upper for alert in _CLIENT_CERT_ALERTS):
        return Cause.CLIENT_CERTIFICATE_REJECTED, "IS rejected the portal's client certificate."
    if eof or "EOF OCCURRED" in upper or "UNEXPECTED_EOF" in upper or "HANDSHAKE_FAILURE" in upper:
        if not sent_certificate:
            # TLS 1.3: the server's refusal arrives after the client thinks the handshake is done, as an EOF.
            return Cause.NO_CLIENT_CERTIFICATE, ("IS closed the TLS connection and the portal sent no client "
                                                 "certificate; IS requires one.")
        return Cause.TLS, "IS closed the TLS connection during the handshake."
    if "WRONG_VERSION_NUMBER" in upper or "RECORD_LAYER_FAILURE" in upper:
        return Cause.TLS, "The server at that port does not speak TLS (is it a plain-HTTP port?)."
    return Cause.TLS, "The TLS handshake with IS failed."
