"""The one HTTPS transport of the clients for WSO2 products (IS 7 REST, API Manager SOAP, notify and admin REST;
security.md §4, §6): how a session is built, how a call is sent, read, retried and turned into an `Answer` or an
`UpstreamError`. The clients add only what their product says on the wire.

- Trust is exactly the CA bundle given: `build_ssl_context` loads it (and the portal's client certificate and key
  for mutual TLS) into an `SSLContext` that `TlsAdapter` hands to urllib3, and `trust_env` is off, so
  `REQUESTS_CA_BUNDLE`, proxy variables and .netrc can neither widen trust nor reroute a call.
- Every connection goes through the outbound address policy (`GuardedAdapter`).
- Every call has a timeout, never follows a redirect, and reads at most `MAX_BODY_BYTES` of the answer.
- `RetryPolicy` repeats an idempotent call after a transient failure or a 429/502/503/504, honouring a short
  Retry-After; a call that is not idempotent (a POST, or a SOAP operation that adds) is sent exactly once.
- A `requests.Session` may be injected (hvac's pattern): the transport then uses it as it is, and whoever built it
  owns its TLS set-up and adapters. Without one, the transport builds the session described above.
- URL templates are module constants in the clients; `expand` fills them, percent-encoding every value as exactly
  one path segment so a value can add neither a segment nor a query.
"""
from __future__ import annotations

import os
import random
import shutil
import ssl
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from string import Formatter
from typing import Any, Self
from urllib.parse import quote, urlsplit

import requests
import requests.auth

from portal.clients.address_policy import AddressPolicy, AddressRefused, GuardedAdapter
from portal.clients.errors import (
    PRODUCT_IS,
    RETRYABLE_STATUSES,
    SHORT_NAMES,
    Cause,
    UpstreamError,
    classify,
    connect_failure,
    detail_of,
    parse_retry_after,
    policy_error,
)

__all__ = ["DEFAULT_TIMEOUT", "MAX_BODY_BYTES", "Answer", "AttemptFailed", "RetryPolicy", "TlsAdapter", "Transport",
           "TransportClient", "build_session", "build_ssl_context", "expand", "https_base_url", "normalise_base_url",
           "read_capped", "segment", "timeouts"]

DEFAULT_TIMEOUT = (3.05, 15.0)  # (connect, read) seconds
MAX_BODY_BYTES = 2 * 1024 * 1024  # a page of 100 tenants is a few tens of KiB
MAX_INLINE_RETRY_AFTER = 5.0  # longer Retry-After waits are left to the caller (the outbox worker reschedules)
CORRELATION_HEADER = "activityid"  # IS's RequestCorrelationIdValve maps it to the Correlation-ID it logs
USER_AGENT = "tenant-portal"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
TRANSIENT_CAUSES = frozenset({Cause.TIMEOUT, Cause.REFUSED, Cause.CONNECTION_RESET, Cause.NETWORK})


# --- URLs ------------------------------------------------------------------------------------------------------


def normalise_base_url(base_url: str, *, product: str = PRODUCT_IS) -> str:
    """`https://host[:port][/prefix]`, without a trailing slash. Raises ValueError with a reason."""
    short, example = ("IS", "is") if product == PRODUCT_IS else ("API Manager", "apim")
    reason = "mutual TLS needs TLS" if product == PRODUCT_IS else "passwords travel in every call"
    return https_base_url(base_url, empty=f"Enter {short}'s base URL, e.g. https://{example}.example.com:9443.",
                          unsafe="The base URL contains spaces or control characters.",
                          not_https=f"{short}'s base URL must start with https:// ({reason}).")


def https_base_url(text: object, *, empty: str, unsafe: str, not_https: str, max_length: int | None = None) -> str:
    """The one base URL rule (clients and the connection forms word their own refusals): https, a host, no user
    name or password, no query or fragment; returned without a trailing slash. Raises ValueError."""
    value = text.strip() if isinstance(text, str) else ""
    if not value:
        raise ValueError(empty)
    if (max_length is not None and len(value) > max_length) or any(ord(ch) <= 0x20 or ord(ch) == 0x7F
                                                                    for ch in value):
        raise ValueError(unsafe)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"The base URL is not valid ({exc}).") from None
    if parts.scheme.lower() != "https":
        raise ValueError(not_https)
    if not parts.hostname:
        raise ValueError("The base URL has no host name.")
    if parts.username or parts.password:
        raise ValueError("The base URL must not contain a user name or password.")
    if parts.query or parts.fragment:
        raise ValueError("The base URL must not contain a query or fragment.")
    return f"https://{parts.netloc}{parts.path.rstrip('/')}"


def segment(value: str, what: str = "an id") -> str:
    """One path segment, percent-encoded so a value cannot add segments or a query. "." and ".." are refused: no
    encoding survives urllib3's dot-segment removal, so they would climb the path."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} is required")
    if value in (".", ".."):
        raise ValueError(f"{what} cannot be {value}")
    return quote(value, safe="")


def expand(template: str, what: str = "an id", **values: str) -> str:
    """A URL template constant with each `{name}` replaced by its value as one percent-encoded segment; every
    placeholder needs a value and every value a placeholder."""
    names = {name for _, name, _, _ in Formatter().parse(template) if name is not None}
    if names != set(values):
        raise KeyError(f"{template} takes {sorted(names)}, not {sorted(values)}")
    return template.format(**{name: segment(value, what) for name, value in values.items()})


# --- TLS -------------------------------------------------------------------------------------------------------


class TlsAdapter(GuardedAdapter):
    """Hands urllib3 our SSLContext (CA bundle + client certificate already loaded) and stops requests from adding
    its default CA bundle or certificate files to it: trust is exactly the bundle the portal was given. Connections
    go through the outbound address policy (`policy`, else the app's OUTBOUND_* settings)."""

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


def build_ssl_context(ca_pem: str, cert_pem: str | None = None, key_pem: str | None = None, *,
                      product: str = PRODUCT_IS) -> ssl.SSLContext:
    """A client context trusting only `ca_pem`, presenting the client certificate when given. `ssl` loads a
    certificate and key only from files, so they are written to a private temporary directory and deleted at once.

    Raises UpstreamError(BAD_CREDENTIALS | KEY_MISMATCH) before any connection is made."""
    short = SHORT_NAMES.get(product, product)
    if not ca_pem or "-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise UpstreamError(Cause.BAD_CREDENTIALS, f"The CA bundle for {short}'s server certificate is empty or not "
                            "PEM.", product=product)
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
    except (ssl.SSLError, ValueError) as exc:
        raise UpstreamError(Cause.BAD_CREDENTIALS, f"The CA bundle for {short}'s server certificate could not be "
                            "read.", detail=str(exc), product=product) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_pem is None and key_pem is None:
        return context
    if not cert_pem or not key_pem:
        raise UpstreamError(Cause.BAD_CREDENTIALS,
                            "The portal's client certificate needs both the certificate and its private key.",
                            product=product)
    if "ENCRYPTED" in key_pem:
        raise UpstreamError(Cause.BAD_CREDENTIALS, "The portal's private key is password-protected; store it "
                            "unencrypted (the portal encrypts it at rest).", product=product)
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
                                "certificate.", detail=str(exc), product=product) from None
        raise UpstreamError(Cause.BAD_CREDENTIALS, "The portal's client certificate or private key could not be "
                            "read.", detail=str(exc), product=product) from None
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return context


def build_session(context: ssl.SSLContext, *, policy: AddressPolicy | None = None,
                  pool_maxsize: int = 4) -> requests.Session:
    """The default session: trust and client certificate from `context`, nothing from the environment, every
    connection through the address policy, and no retries below ours."""
    session = requests.Session()
    session.trust_env = False  # no REQUESTS_CA_BUNDLE, no proxies, no .netrc
    session.verify = True
    adapter = TlsAdapter(context, policy=policy, pool_connections=1, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("https://", adapter)
    # Unreachable (base URLs are https only), and guarded all the same.
    session.mount("http://", GuardedAdapter(policy=adapter.policy, max_retries=0))
    return session


# --- Answers and retries ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What a product answered: never a raw `Response`, and the body already read (and capped)."""

    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)

    def header(self, name: str) -> str | None:
        return {k.lower(): v for k, v in self.headers.items()}.get(name.lower())

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.header("retry-after"))


class TooLarge(Exception):
    pass


def read_capped(response: requests.Response, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body of a streamed response, refusing more than `limit` bytes."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(8192):
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class AttemptFailed(Exception):
    """An attempt that got no answer: the error to raise, and whether the connection was ever made."""

    def __init__(self, error: UpstreamError, connected: bool) -> None:
        super().__init__(str(error))
        self.error, self.connected = error, connected


@dataclass(frozen=True)
class RetryPolicy:
    """When a call is tried again: only when `idempotent`, at most `retries` times, after a failure whose cause is
    in `transient` (at most `read_retries` of those after the connection was made: a read timeout, a reset) or a
    429/502/503/504 answer. A Retry-After up to `max_inline_retry_after` is waited for; a longer one ends the
    retries, so the caller's error carries `retry_after` and the outbox worker reschedules instead of holding a
    thread. Otherwise the wait grows: `backoff` * 2^n with up to `jitter` more, the first repeat at once when
    `first_at_once`."""

    retries: int = 2
    backoff: float = 0.5
    jitter: float = 0.3
    read_retries: int | None = None  # None: as many as `retries`
    transient: frozenset[Cause] = TRANSIENT_CAUSES
    first_at_once: bool = False
    max_inline_retry_after: float = MAX_INLINE_RETRY_AFTER

    def run(self, send: Callable[[], Answer], *, idempotent: bool) -> Answer:
        """`send()` until an answer worth returning; the last answer is returned as it came, for the caller to
        judge, and the last failure raised."""
        attempts = 1 + (max(0, self.retries) if idempotent else 0)
        reads = self.retries if self.read_retries is None else self.read_retries
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                answer = send()
            except AttemptFailed as failed:
                if last or failed.error.cause not in self.transient or (failed.connected and reads <= 0):
                    raise failed.error from None
                reads -= failed.connected
                self._sleep(attempt, None)
                continue
            if answer.status in RETRYABLE_STATUSES and not last:
                wait = answer.retry_after
                if wait is None or wait <= self.max_inline_retry_after:
                    self._sleep(attempt, wait)
                    continue
            return answer
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int, retry_after: float | None) -> None:
        if retry_after is not None:
            time.sleep(retry_after)
        elif attempt or not self.first_at_once:
            time.sleep(self.backoff * (2 ** attempt) * (1 + random.uniform(0, self.jitter)))


def timeouts(timeout: float | tuple[float, float]) -> tuple[float, float]:
    """(connect, read) seconds from one number or a pair; ValueError unless both are positive."""
    pair = (float(timeout), float(timeout)) if isinstance(timeout, int | float) else tuple(timeout)
    if len(pair) != 2 or min(pair) <= 0:
        raise ValueError("timeouts must be positive")
    return pair  # type: ignore[return-value]


# --- The transport ---------------------------------------------------------------------------------------------


class Transport:
    """Sends calls to one product at `base_url` through one session (built here unless injected)."""

    def __init__(self, base_url: str, *, product: str, session: requests.Session | None = None,
                 context: Callable[[], ssl.SSLContext] | None = None, timeout: float | tuple[float, float] =
                 DEFAULT_TIMEOUT, retry: RetryPolicy | None = None, policy: AddressPolicy | None = None,
                 pool_maxsize: int = 4, sent_certificate: bool = True, auth: requests.auth.AuthBase | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.base_url = normalise_base_url(base_url, product=product)
        self.product = product
        self.timeout = timeouts(timeout)
        self.retry = retry or RetryPolicy()
        self.sent_certificate = sent_certificate  # False: a closed connection may be a missing client certificate
        if session is None:
            if context is None:
                raise ValueError("a transport needs an SSL context or a session")
            session = build_session(context(), policy=policy, pool_maxsize=pool_maxsize)
        self.session = session  # an injected one is used as it is: auth and headers go with each call
        self.auth = auth
        self.headers = {"User-Agent": USER_AGENT, **(headers or {})}

    def close(self) -> None:
        self.session.close()

    def request(self, method: str, path: str, *, idempotent: bool | None = None,
                correlation_id: str | None = None, **kwargs: Any) -> Answer:
        """`method` on base URL + `path` (an expanded template), retried by the policy; `idempotent` defaults to
        what the method says. One `correlation_id` for every attempt when given, else a new one per attempt.
        `kwargs` go to `Session.request` (params, json, data; headers and auth override the transport's)."""
        repeatable = method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent
        return self.retry.run(lambda: self._attempt(method, path, correlation_id or str(uuid.uuid4()), kwargs),
                              idempotent=repeatable)

    def _attempt(self, method: str, path: str, correlation_id: str, kwargs: dict[str, Any]) -> Answer:
        options = {**kwargs, "auth": kwargs.get("auth") or self.auth,
                   "headers": {**self.headers, **(kwargs.get("headers") or {}), CORRELATION_HEADER: correlation_id}}
        try:
            response = self.session.request(method, f"{self.base_url}{path}", timeout=self.timeout,
                                            allow_redirects=False, stream=True, **options)
            try:
                body = read_capped(response)
            finally:
                response.close()
        except requests.RequestException as exc:
            cause, message = classify(exc, sent_certificate=self.sent_certificate, timeout=self.timeout,
                                      product=self.product)
            error = UpstreamError(cause, message, product=self.product, detail=detail_of(exc), target=self.base_url,
                                  correlation_id=correlation_id)
            raise AttemptFailed(error, connected=not connect_failure(exc)) from None
        except AddressRefused as exc:  # nothing was connected
            raise policy_error(exc, self.product, self.base_url, correlation_id) from None
        except TooLarge:
            raise UpstreamError(Cause.BAD_RESPONSE, f"The answer to {method} {path} is larger than "
                                f"{MAX_BODY_BYTES // 1024} KiB.", product=self.product, target=self.base_url,
                                correlation_id=correlation_id) from None
        return Answer(response.status_code, dict(response.headers), body)


class TransportClient:
    """What every product client shares: its transport, the base URL and timeouts it settled on, and closing."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self.base_url = transport.base_url
        self.timeout = transport.timeout

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
