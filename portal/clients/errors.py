"""Typed failures of the calls to WSO2 products, shared by the IS and API Manager clients (security.md §4, §6).

Every failed call becomes one `UpstreamError`: either the product answered with an error status (`status`, its own
error `code` such as "TM-60014" or a SOAP fault code, `message`, `description`, `trace_id`, `retry_after`), or the
call failed before an answer (`status` None, and `cause` says why in terms an administrator can act on). Three
subclasses mark errors a caller acts on by type: `PermissionDenied` (a 403 naming the missing permission),
`DeletionDisabled` (IS's TM-60016) and `AlreadyExists` (a 409); `error_class` maps a status and code to them (one
map, as hvac's). The transport (portal.clients.transport) turns network failures into causes with `classify`.
"""
from __future__ import annotations

import email.utils
import socket
import ssl
import time
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

import requests
import urllib3

PRODUCT_IS = "WSO2 Identity Server"
PRODUCT_APIM = "WSO2 API Manager"
SHORT_NAMES = {PRODUCT_IS: "IS", PRODUCT_APIM: "API Manager"}
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


class Cause(StrEnum):
    """Why a call failed, in terms an administrator can act on."""

    HTTP_ERROR = "http_error"  # the product answered with an error status: see status / code / description
    NOT_FOUND = "not_found"  # the object the call needs does not exist in the product
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
    BAD_RESPONSE = "bad_response"  # a success status with a body that is not what the product sends
    POLICY = "policy"  # the portal's outbound address policy forbids the address: nothing was connected


# What to do about it; the error's message says what happened. "{p}" is the product's short name.
HINTS: dict[Cause, str] = {
    Cause.NO_CLIENT_CERTIFICATE: "Upload the portal's client certificate with its private key.",
    Cause.SERVER_NOT_TRUSTED: "Upload the CA that issued {p}'s server certificate (or {p}'s certificate itself) as a "
                              "trusted certificate.",
    Cause.SERVER_NAME_MISMATCH: "Use the host name {p}'s certificate was issued for, or reissue it with this name.",
    Cause.CLIENT_CA_UNKNOWN: "Import the CA that issued the portal's client certificate into {p}'s client-truststore "
                             "and restart {p}.",
    Cause.CLIENT_CERTIFICATE_REJECTED: "Check the certificate's validity dates and that it allows client "
                                       "authentication; upload a new one if needed.",
    Cause.KEY_MISMATCH: "Upload the certificate together with the private key it was issued for.",
    Cause.BAD_CREDENTIALS: "Upload the certificate, key or CA bundle again.",
    Cause.TIMEOUT: "Check that {p} is running and not overloaded, or allow more time.",
    Cause.REFUSED: "Check the host and port in the base URL, that {p} is running, and firewalls.",
    Cause.HOST_UNKNOWN: "Check the host name's spelling and DNS.",
    Cause.CONNECTION_RESET: "Look for a proxy or load balancer in between; if it happens on every call, {p} may be "
                            "refusing the client certificate.",
    Cause.TLS: "Compare the TLS versions and ciphers {p} allows with the portal's (TLS 1.2 or newer).",
    Cause.NETWORK: "Check the network path between the portal and {p}.",
    Cause.BAD_RESPONSE: "Check that the base URL points at {p} itself and not at a proxy or login page.",
    Cause.HTTP_ERROR: "See {p}'s error code and description; search {p}'s logs for the trace id.",
    Cause.NOT_FOUND: "Create the object in {p} first, or run a reconcile.",
    Cause.POLICY: "Use {p}'s address on a network the portal may reach, or ask the portal's operator to change the "
                  "OUTBOUND_* settings.",
}

_TRANSIENT_CAUSES = frozenset({Cause.TIMEOUT, Cause.REFUSED, Cause.CONNECTION_RESET, Cause.NETWORK,
                               Cause.HOST_UNKNOWN})


class UpstreamError(Exception):
    """A call to a WSO2 product failed. Either the product answered with an error status (`status`, `code` such as
    "TM-60014" or a SOAP fault code, `message`, `description`, `trace_id`, `retry_after` in seconds when it sent
    Retry-After), or the call failed before an answer (`status` None, `cause` says why, `detail` keeps the library's
    own words for the logs)."""

    def __init__(self, cause: Cause, message: str, *, product: str = PRODUCT_IS, status: int | None = None,
                 code: str | None = None, description: str | None = None, trace_id: str | None = None,
                 detail: str | None = None, target: str | None = None, correlation_id: str | None = None,
                 retry_after: float | None = None) -> None:
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
        self.retry_after = retry_after
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
    def words(self) -> str:
        """What happened in the product's own words: str() without the status, error code and trace id."""
        if self.status is None:
            return str(self)
        text = f"{self.product}: {self.message}"
        if self.description and self.description != self.message:
            text += f" {self.description}"
        return text

    @property
    def reference(self) -> str:
        """The status, the product's error code and the ids to find the call in its logs: detail, not the cause."""
        parts = [f"HTTP {self.status}"] if self.status is not None else []
        if self.code and self.code != str(self.status):
            parts.append(f"error code {self.code}")
        if self.trace_id:
            parts.append(f"trace id {self.trace_id}")
        if self.correlation_id and self.correlation_id != self.trace_id:
            parts.append(f"correlation id (activityid) {self.correlation_id}")
        return ", ".join(parts)

    @property
    def short_product(self) -> str:
        return SHORT_NAMES.get(self.product, self.product)

    @property
    def hint(self) -> str:
        return HINTS[self.cause].format(p=self.short_product)

    @property
    def not_found(self) -> bool:
        """IS reports an unknown tenant as 400 TM-60014 / TM-60015, not 404 (product-is#25494)."""
        return self.cause == Cause.NOT_FOUND or self.status == 404 or self.code in ("TM-60014", "TM-60015")

    @property
    def retryable(self) -> bool:
        """Worth trying again later: the product could not be reached, or it said it was busy or unavailable
        (429, 502-504), or it answered a bare 500 without its own error code (a proxy, a crash). An error the
        product explains (a TM code, a SOAP fault) will answer the same way next time."""
        if self.status is None:
            return self.cause in _TRANSIENT_CAUSES
        return self.status in RETRYABLE_STATUSES or (self.status == 500 and not self.code)


class PermissionDenied(UpstreamError):
    """The product's authorization layer answered 403: the user the portal signs in as lacks `permission` (a
    Carbon permission path, or a scope) for the operation called. The message names it; `hint` says what to do."""

    def __init__(self, cause: Cause, message: str, *, permission: str, **kwargs: Any) -> None:
        self.permission = permission
        super().__init__(cause, message, **kwargs)

    @property
    def hint(self) -> str:
        return (f"Give the user the portal signs in to {self.short_product} as a role that holds {self.permission}, "
                "or sign in as a user that has it.")


class DeletionDisabled(UpstreamError):
    """IS refused to delete a tenant's metadata because tenant deletion is off (400 TM-60016, carbon.xml
    `Tenant.TenantDelete`). Not retryable: the tenant stays in IS until an administrator enables deletion."""

    @property
    def hint(self) -> str:
        return ("Enable tenant deletion in IS (carbon.xml <Server><Tenant><TenantDelete>true</TenantDelete>) and "
                "restart it, or leave the tenant deactivated in IS.")

    @property
    def retryable(self) -> bool:
        return False


class AlreadyExists(UpstreamError):
    """The product answered 409: an object with that name already exists (e.g. a key manager in the tenant)."""

    @property
    def hint(self) -> str:
        return f"Use the existing object in {self.short_product}, or pick another name."


DELETION_DISABLED = "TM-60016"
CODE_ERRORS: dict[str, type[UpstreamError]] = {DELETION_DISABLED: DeletionDisabled}
STATUS_ERRORS: dict[int, type[UpstreamError]] = {403: PermissionDenied, 409: AlreadyExists}


def error_class(status: int | None, code: str | None) -> type[UpstreamError]:
    """The error type a product's answer maps to: by its own error code first, then by status; UpstreamError for
    anything else. The clients word the message (and name the permission) for their product."""
    return CODE_ERRORS.get(code or "") or STATUS_ERRORS.get(status or 0) or UpstreamError


def policy_error(exc: Exception, product: str, target: str, correlation_id: str | None = None) -> UpstreamError:
    """The outbound address policy refused the product's address (address_policy.AddressRefused): not retryable,
    and nothing was sent."""
    return UpstreamError(Cause.POLICY, str(exc), product=product, target=target, correlation_id=correlation_id)


# --- On the wire -------------------------------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


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


def connect_failure(exc: BaseException) -> bool:
    """The failure happened before a connection was made (refused, DNS, no route, connect timeout), so nothing was
    sent; anything else (a read timeout, a reset) may have reached the product."""
    return any(isinstance(link, requests.exceptions.ConnectTimeout | urllib3.exceptions.ConnectTimeoutError)
               for link in _chain(exc))


def detail_of(exc: BaseException) -> str:
    """The most specific message: the ssl/socket error if there is one."""
    for link in _chain(exc):
        if isinstance(link, ssl.SSLError | ConnectionError | socket.gaierror) and str(link):
            return str(link)[:500]
    return str(exc)[:500]


_CLIENT_CERT_ALERTS = ("CERTIFICATE_EXPIRED", "BAD_CERTIFICATE", "CERTIFICATE_REVOKED", "UNSUPPORTED_CERTIFICATE",
                       "CERTIFICATE_UNKNOWN", "ACCESS_DENIED", "DECRYPT_ERROR")


def classify(exc: BaseException, *, sent_certificate: bool, timeout: tuple[float, float] | None = None,
             product: str = PRODUCT_IS) -> tuple[Cause, str]:
    """Map a requests/urllib3/ssl failure to a Cause and one sentence. Order matters: requests' ConnectTimeout is
    also a ConnectionError, and urllib3's NewConnectionError (refused, DNS, no route) is a ConnectTimeoutError.

    `sent_certificate` False means a missing client certificate may explain a closed connection (IS's mTLS);
    callers that never use client certificates pass True so such failures are not blamed on one."""
    p = SHORT_NAMES.get(product, product)
    links = list(_chain(exc))
    text = " ".join(f"{type(link).__name__}: {link}" for link in links)
    connect_s, read_s = timeout or (None, None)

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(link, types) for link in links)

    if has(socket.gaierror) or "NameResolutionError" in text or "Name or service not known" in text:
        return Cause.HOST_UNKNOWN, f"The {p} host name does not resolve."
    if has(ConnectionRefusedError) or "Connection refused" in text:
        return Cause.REFUSED, f"The connection to {p} was refused."
    if has(urllib3.exceptions.NewConnectionError):  # no route to host, network unreachable...
        return Cause.NETWORK, f"The portal could not open a connection to {p}."
    if has(requests.exceptions.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError):
        return Cause.TIMEOUT, f"{p} did not accept the connection within {connect_s:g} s." if connect_s else \
            f"{p} did not accept the connection in time."
    if has(requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError, socket.timeout):
        return Cause.TIMEOUT, f"{p} did not answer within {read_s:g} s." if read_s else f"{p} did not answer in time."
    if has(ssl.SSLError, requests.exceptions.SSLError, urllib3.exceptions.SSLError):
        return _classify_tls(text, has(ssl.SSLEOFError), sent_certificate, p)
    if has(ConnectionResetError, BrokenPipeError) or "RemoteDisconnected" in text or "reset by peer" in text:
        if not sent_certificate:
            return Cause.NO_CLIENT_CERTIFICATE, (f"{p} closed the connection and the portal sent no client "
                                                 f"certificate; {p} probably requires one.")
        return Cause.CONNECTION_RESET, f"{p} closed the connection without an answer."
    return Cause.NETWORK, f"The call to {p} failed on the network."


def _classify_tls(text: str, eof: bool, sent_certificate: bool, p: str) -> tuple[Cause, str]:
    upper = text.upper()
    if "KEY_VALUES_MISMATCH" in upper:
        return Cause.KEY_MISMATCH, "The private key does not match the portal's client certificate."
    if "CERTIFICATE_VERIFY_FAILED" in upper:
        if "HOSTNAME MISMATCH" in upper or "IP ADDRESS MISMATCH" in upper:
            return Cause.SERVER_NAME_MISMATCH, f"{p}'s server certificate is not valid for the host in the base URL."
        return Cause.SERVER_NOT_TRUSTED, f"The portal does not trust {p}'s server certificate."
    if "UNKNOWN_CA" in upper:
        return Cause.CLIENT_CA_UNKNOWN, f"{p} does not know the CA that issued the portal's client certificate."
    if "CERTIFICATE_REQUIRED" in upper:
        return Cause.NO_CLIENT_CERTIFICATE, f"{p} requires a client certificate and the portal sent none."
    if any(alert in upper for alert in _CLIENT_CERT_ALERTS):
        return Cause.CLIENT_CERTIFICATE_REJECTED, f"{p} rejected the portal's client certificate."
    if eof or "EOF OCCURRED" in upper or "UNEXPECTED_EOF" in upper or "HANDSHAKE_FAILURE" in upper:
        if not sent_certificate:
            # TLS 1.3: the server's refusal arrives after the client thinks the handshake is done, as an EOF.
            return Cause.NO_CLIENT_CERTIFICATE, (f"{p} closed the TLS connection and the portal sent no client "
                                                 f"certificate; {p} requires one.")
        return Cause.TLS, f"{p} closed the TLS connection during the handshake."
    if "WRONG_VERSION_NUMBER" in upper or "RECORD_LAYER_FAILURE" in upper:
        return Cause.TLS, "The server at that port does not speak TLS (is it a plain-HTTP port?)."
    return Cause.TLS, f"The TLS handshake with {p} failed."
