"""EXTERNAL identity providers: fetch OIDC discovery and JWKS documents from administrator-entered URLs
without letting those URLs reach the portal's own network (SSRF), and check that the provider's keys can
verify the tenant's tokens.

The guard (ASVS 1.3.6, 10.5.3, 13.2.4): https only, the host is resolved once and every address
must be public (or inside an explicitly allowed lab network), the connection goes to the vetted address
while TLS is verified against the original name (so DNS rebinding cannot swap the target), redirects are
never followed, and the body is capped in size and must be a JSON object.
"""
from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import certifi
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError as Urllib3SSLError,
)

from portal.clients.address_policy import (  # re-exported: the SSRF guard's address rules live there now
    AddressPolicy,
    AddressRefused,
    IPAddress,
    ResolveFailed,
    embedded_ipv4 as _embedded_ipv4,  # noqa: F401
    non_public as _non_public,  # noqa: F401
)

MAX_JWKS_KEYS = 50  # a real provider publishes a handful; more is a misconfiguration or an attack
_MAX_ADDRESSES_TRIED = 3  # bounds the time spent on a name with many unreachable addresses
_CHUNK = 8192



class FetchError(Exception):
    """Common base so callers can catch both outcomes; `reason` is written for an administrator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FetchRefused(FetchError):
    """The portal would not make this request: the URL or the answer breaks the fetch policy."""


class FetchFailed(FetchError):
    """The request was allowed but did not produce a usable JSON document (network, TLS, HTTP, JSON)."""


class _ConnectFailed(FetchFailed):
    """Connecting to one address failed; another address of the same name may still work."""


@dataclass
class FetchPolicy:
    """What an administrator-entered URL may reach. Defaults are for production: public https only."""

    allow_http: bool = False
    allowed_networks: tuple[str, ...] = ()  # CIDRs that may be private/loopback (labs, tests)
    deny_networks: tuple[str, ...] = ()  # OUTBOUND_DENY_NETWORKS: refused even when public
    resolver: Callable[..., Any] | None = None  # socket.getaddrinfo's signature; tests hook name resolution here
    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    max_bytes: int = 65536
    ca_bundle: str | None = None  # None = system/certifi trust


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str  # DNS name or IP literal without brackets; TLS is verified against it
    port: int
    host_header: str
    path: str  # path and query, as sent on the request line


class GuardedFetcher:
    """Fetches small JSON documents from URLs an administrator typed in, under a `FetchPolicy`."""

    def __init__(self, policy: FetchPolicy | None = None) -> None:
        self.policy = policy or FetchPolicy()
        if self.policy.connect_timeout <= 0 or self.policy.read_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.policy.max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        # Raises ValueError on a malformed CIDR: a configuration mistake should stop start-up, not a check.
        self._addresses = AddressPolicy(
            allow_networks=tuple(self.policy.allowed_networks), deny_networks=tuple(self.policy.deny_networks),
            allow_loopback=False, allow_private=False, allow_setting="OIDC_ALLOWED_NETWORKS",
            loopback_setting="OIDC_ALLOWED_NETWORKS", private_setting="OIDC_ALLOWED_NETWORKS",
            resolver=self.policy.resolver,
        )

    def get_json(self, url: str) -> dict:
        """GET `url` and return its JSON object, or raise FetchRefused / FetchFailed with a plain reason."""
        return self._request(url, "GET", None)

    def post_form(self, url: str, fields: dict[str, str]) -> dict:
        """POST an urlencoded form (a token request) under the same policy; the JSON object answered with 200."""
        return self._request(url, "POST", urlencode(fields).encode("ascii"))

    def _request(self, url: str, method: str, body: bytes | None) -> dict:
        target = self._parse(url)
        addresses = self._resolve(target)
        last: _ConnectFailed | None = None
        for ip in addresses[:_MAX_ADDRESSES_TRIED]:
            try:
                return self._fetch(target, ip, method, body)
            except _ConnectFailed as exc:
                last = exc
        assert last is not None  # _resolve never returns an empty list
        raise FetchFailed(last.reason)

    # --- URL and address policy -----------------------------------------------------------------------

    def _parse(self, url: str) -> _Target:
        if not isinstance(url, str) or not url.strip():
            raise FetchRefused("No URL was given.")
        url = url.strip()
        if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url):
            raise FetchRefused(f"{url!r} contains spaces or control characters.")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise FetchRefused(f"{url} is not a valid URL ({exc}).") from None
        scheme = parts.scheme.lower()
        if scheme not in ("https", "http"):
            shown = f"{scheme}://" if scheme else "a URL without a scheme"
            raise FetchRefused(f"Only https:// URLs may be fetched; got {shown} in {url}.")
        if scheme == "http" and not self.policy.allow_http:
            raise FetchRefused(
                f"Plain http:// is not allowed for {url}; use https:// so the keys cannot be tampered with."
            )
        if "@" in parts.netloc:
            raise FetchRefused(f"{url} contains a user name or password; credentials are not allowed in the URL.")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise FetchRefused(f"{url} has no host name.")
        literal = _ip_literal(host)
        if literal is None:
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise FetchRefused(f"{url} has an invalid host name.") from None
        default_port = 443 if scheme == "https" else 80
        port = port or default_port
        shown_host = f"[{host}]" if literal is not None and literal.version == 6 else host
        host_header = shown_host if port == default_port else f"{shown_host}:{port}"
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return _Target(url=url, scheme=scheme, host=host, port=port, host_header=host_header, path=path)

    def _resolve(self, target: _Target) -> list[str]:
        """Resolve once and vet every answer through the outbound address policy (public only, plus the allowed
        networks); the connection then goes to a vetted address."""
        try:
            return self._addresses.vet(target.host, target.port)
        except AddressRefused as exc:
            raise FetchRefused(
                f"{exc.where} {exc.what}; only public internet addresses may be fetched. "
                "For a lab identity provider, add its network to the allowed networks (OIDC_ALLOWED_NETWORKS)."
                + (f" ({exc.rule.removeprefix('which ')})" if "DENY" in exc.rule else "")
            ) from None
        except ResolveFailed as exc:
            if "not a valid host name" in exc.reason:
                raise FetchRefused(f"{target.url} has an invalid host name.") from None
            raise FetchFailed(exc.reason) from None

    # --- The request ---------------------------------------------------------------------------------

    def _pool(self, target: _Target, ip: str) -> urllib3.HTTPConnectionPool:
        timeout = urllib3.Timeout(connect=self.policy.connect_timeout, read=self.policy.read_timeout)
        if target.scheme == "http":
            return urllib3.HTTPConnectionPool(ip, target.port, timeout=timeout, retries=False, maxsize=1)
        # Connect to the vetted IP; SNI and certificate verification (by OpenSSL, during the handshake)
        # use the name the administrator entered, so a certificate for that name is still required.
        return urllib3.HTTPSConnectionPool(
            ip,
            target.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            cert_reqs="CERT_REQUIRED",
            ca_certs=self.policy.ca_bundle or certifi.where(),
            server_hostname=target.host,
        )

    def _fetch(self, target: _Target, ip: str, method: str = "GET", body: bytes | None = None) -> dict:
        deadline = time.monotonic() + self.policy.connect_timeout + self.policy.read_timeout
        headers = {"Host": target.host_header, "Accept": "application/json", "Accept-Encoding": "identity"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        with self._pool(target, ip) as pool:
            try:
                response = pool.urlopen(
                    method,
                    target.path,
                    body=body,
                    headers=headers,
                    redirect=False,
                    retries=False,
                    assert_same_host=False,
                    preload_content=False,
                    decode_content=True,
                )
            except (HTTPError, OSError) as exc:
                raise self._network_error(exc, target, ip) from None
            try:
                body = self._read_body(response, target, deadline)
            except (HTTPError, OSError) as exc:
                raise self._network_error(exc, target, ip) from None
            finally:
                response.close()
        return _parse_json_object(body, target.url)

    def _read_body(self, response: urllib3.BaseHTTPResponse, target: _Target, deadline: float) -> bytes:
        status = response.status
        if 300 <= status < 400:
            location = response.headers.get("Location") or "(no Location header)"
            raise FetchRefused(
                f"{target.url} redirected to {location} (HTTP {status}); redirects are not followed, "
                "enter the final URL instead."
            )
        if status != 200:
            reason = f" {response.reason}" if response.reason else ""
            raise FetchFailed(f"{target.url} answered HTTP {status}{reason} instead of 200."
                              + _error_description(response))
        content_type = response.headers.get("Content-Type", "")
        if not _is_json_media_type(content_type):
            shown = content_type or "no Content-Type"
            raise FetchFailed(f"{target.url} did not return JSON (Content-Type: {shown}).")
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.policy.max_bytes:
            raise FetchRefused(
                f"{target.url} announced {int(declared)} bytes; at most {self.policy.max_bytes} bytes are accepted."
            )
        chunks: list[bytes] = []
        total = 0
        for chunk in _chunks(response):
            total += len(chunk)
            if total > self.policy.max_bytes:
                raise FetchRefused(
                    f"{target.url} sent more than {self.policy.max_bytes} bytes; the document is too large to accept."
                )
            chunks.append(chunk)
            if time.monotonic() > deadline:
                total = self.policy.connect_timeout + self.policy.read_timeout
                raise FetchFailed(f"{target.host} did not finish sending {target.url}: timed out after {total:g} s.")
        return b"".join(chunks)

    def _network_error(self, exc: BaseException, target: _Target, ip: str) -> FetchFailed:
        """Turn urllib3/socket/TLS exceptions into one sentence an administrator can act on."""
        where = target.host if target.host == ip else f"{target.host} ({ip})"
        verify = _find(exc, ssl.SSLCertVerificationError)
        if verify is not None:
            detail = verify.verify_message or str(verify)
            return FetchFailed(f"TLS certificate of {target.host} is not trusted: {detail}.")
        if isinstance(exc, Urllib3SSLError) or _find(exc, ssl.SSLError) is not None:
            return FetchFailed(f"TLS handshake with {where} port {target.port} failed: {_root_message(exc)}.")
        if isinstance(exc, NewConnectionError):  # before ConnectTimeoutError: it is a subclass
            if _find(exc, ConnectionRefusedError) is not None:
                return _ConnectFailed(f"Cannot connect to {where} port {target.port}: connection refused.")
            if _find(exc, socket.timeout) is not None or _find(exc, TimeoutError) is not None:
                return _ConnectFailed(
                    f"Connecting to {where} port {target.port} timed out after {self.policy.connect_timeout:g} s."
                )
            return _ConnectFailed(f"Cannot connect to {where} port {target.port}: {_root_message(exc)}.")
        if isinstance(exc, ConnectTimeoutError):
            return _ConnectFailed(
                f"Connecting to {where} port {target.port} timed out after {self.policy.connect_timeout:g} s."
            )
        if isinstance(exc, ReadTimeoutError) or _find(exc, socket.timeout) is not None:
            if any("handshake" in str(item) for item in _causes(exc)):
                # urllib3 reports a stalled handshake as a read timeout, but it ran under the connect timeout.
                return FetchFailed(
                    f"TLS handshake with {where} port {target.port} timed out after {self.policy.connect_timeout:g} s."
                )
            return FetchFailed(f"{where} did not answer {target.url}: timed out after {self.policy.read_timeout:g} s.")
        if _find(exc, ConnectionRefusedError) is not None:
            return _ConnectFailed(f"Cannot connect to {where} port {target.port}: connection refused.")
        return FetchFailed(f"The connection to {where} port {target.port} failed: {_root_message(exc)}.")


# --- Helpers for the fetcher ------------------------------------------------------------------------------


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _chunks(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """read1 returns what has arrived instead of waiting to fill a buffer, so the size and time caps apply early."""
    while True:
        chunk = response.read1(_CHUNK)
        if not chunk:
            return
        yield chunk


def _is_json_media_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _parse_json_object(body: bytes, url: str) -> dict:
    try:
        document = json.loads(body)
    except RecursionError:
        raise FetchFailed(f"{url} returned JSON nested too deeply to read.") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, oversized integers
        raise FetchFailed(f"{url} did not return valid JSON ({exc}).") from None
    if not isinstance(document, dict):
        raise FetchFailed(f"{url} returned JSON but not a JSON object (got {type(document).__name__}).")
    return document


def _error_description(response: urllib3.BaseHTTPResponse) -> str:
    """An OAuth error body's error and the first line of its description (e.g. Entra's "AADSTS7000215: Invalid
    client secret provided."), from at most 4 KiB; nothing when the answer is not such a body."""
    if not _is_json_media_type(response.headers.get("Content-Type", "")):
        return ""
    try:
        body = json.loads(response.read(4096, decode_content=True))
    except (ValueError, HTTPError, OSError):
        return ""
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return ""
    described = body.get("error_description")
    first = described.strip().splitlines()[0][:200] if isinstance(described, str) and described.strip() else ""
    return f" {body['error'][:64]}" + (f": {first}" if first else "")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)


def _find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    return next((item for item in _causes(exc) if isinstance(item, kind)), None)


def _root_message(exc: BaseException) -> str:
    """The innermost cause reads best ("[Errno 113] No route to host"), not urllib3's wrapper text."""
    innermost = exc
    for item in _causes(exc):
        innermost = item
    return str(innermost) or type(innermost).__name__
