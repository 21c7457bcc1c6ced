"""EXTERNAL identity providers: fetch OIDC discovery and JWKS documents from administrator-entered URLs
without letting those URLs reach the portal's own network (SSRF), and check that the provider's keys can
verify the tenant's tokens.

The guard (ASVS 1.3.6, 10.5.3, 13.2.4): https only, the host is resolved once and every address
must be public (or inside an explicitly allowed lab network), the connection goes to the vetted address
while TLS is verified against the original name (so DNS rebinding cannot swap the target), redirects are
never followed, and the body is capped in size and must be a JSON object.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import certifi
import urllib3
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
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
from portal.clients.checks import CheckResult

# Field paths of the registration API (EXTERNAL identity provider), so the form can pin each problem.
ISSUER_FIELD = "issuer"
JWKS_FIELD = "jwkSetUrl"
ALGORITHM_FIELD = "supportAlgorithm"

RSA_ALGORITHMS = ("RS256", "RS384", "RS512")
MIN_RSA_BITS = 2048  # RFC 7518 section 3.3
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
        target = self._parse(url)
        addresses = self._resolve(target)
        last: _ConnectFailed | None = None
        for ip in addresses[:_MAX_ADDRESSES_TRIED]:
            try:
                return self._fetch(target, ip)
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

    def _fetch(self, target: _Target, ip: str) -> dict:
        deadline = time.monotonic() + self.policy.connect_timeout + self.policy.read_timeout
        with self._pool(target, ip) as pool:
            try:
                response = pool.urlopen(
                    "GET",
                    target.path,
                    headers={"Host": target.host_header, "Accept": "application/json", "Accept-Encoding": "identity"},
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
            raise FetchFailed(f"{target.url} answered HTTP {status}{reason} instead of 200.")
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


# --- The connection check ------------------------------------------------------------------------------


def check_oidc(issuer: str, jwks_url: str, algorithm: str, fetcher: GuardedFetcher) -> CheckResult:
    """Check an EXTERNAL identity provider the way token validation will use it: discovery issuer equal to
    the configured one, the configured JWKS URL equal to the advertised one, and a key able to verify the
    tenant's algorithm."""
    details: list[str] = []
    if algorithm in ("HS256", "HS384", "HS512"):
        message = (
            f"{algorithm} tokens are signed with a shared secret, which an external identity provider never "
            "publishes in its JWKS, so they cannot be verified; choose RS256, RS384 or RS512."
        )
        return _failed(message, details, {ALGORITHM_FIELD: message})
    if algorithm not in RSA_ALGORITHMS:
        message = (
            f"Algorithm {algorithm!r} is not supported for an external identity provider; "
            "choose RS256, RS384 or RS512."
        )
        return _failed(message, details, {ALGORITHM_FIELD: message})
    if not issuer or not issuer.strip():
        return _failed("Enter the issuer.", details, {ISSUER_FIELD: "Enter the issuer."})
    if not jwks_url or not jwks_url.strip():
        return _failed("Enter the JWK set URL.", details, {JWKS_FIELD: "Enter the JWK set URL."})

    discovery_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        discovery = fetcher.get_json(discovery_url)
    except FetchError as exc:
        message = f"Cannot fetch the discovery document {discovery_url}: {exc.reason}"
        return _failed(message, details, {ISSUER_FIELD: message})
    details.append(f"Fetched discovery document from {discovery_url}")

    advertised_issuer = discovery.get("issuer")
    if not isinstance(advertised_issuer, str):
        message = f"The discovery document {discovery_url} has no issuer."
        return _failed(message, details, {ISSUER_FIELD: message})
    if advertised_issuer != issuer:
        message = (
            f'The provider says its issuer is "{advertised_issuer}" but this tenant is configured with '
            f'"{issuer}"; they must match exactly (including any trailing slash), or every token is rejected.'
        )
        return _failed(message, details, {ISSUER_FIELD: message})
    details.append(f"issuer matches ({issuer})")

    advertised_jwks = discovery.get("jwks_uri")
    if not isinstance(advertised_jwks, str) or not advertised_jwks:
        message = f"The discovery document {discovery_url} has no jwks_uri."
        return _failed(message, details, {JWKS_FIELD: message})
    if advertised_jwks != jwks_url:
        message = (
            f'The provider publishes its keys at "{advertised_jwks}" but this tenant is configured with '
            f'"{jwks_url}"; use the jwks_uri from the discovery document.'
        )
        return _failed(message, details, {JWKS_FIELD: message})
    details.append("jwkSetUrl matches the jwks_uri of the discovery document")

    try:
        jwks = fetcher.get_json(jwks_url)
    except FetchError as exc:
        message = f"Cannot fetch the JWKS {jwks_url}: {exc.reason}"
        return _failed(message, details, {JWKS_FIELD: message})
    details.append(f"Fetched JWKS from {jwks_url}")

    keys = jwks.get("keys")
    if not isinstance(keys, list):
        message = f'{jwks_url} is not a JWK set: it has no "keys" list.'
        return _failed(message, details, {JWKS_FIELD: message})
    if not keys:
        message = f"The JWKS at {jwks_url} contains no keys."
        return _failed(message, details, {JWKS_FIELD: message})
    if len(keys) > MAX_JWKS_KEYS:
        message = f"The JWKS at {jwks_url} has {len(keys)} keys; at most {MAX_JWKS_KEYS} are accepted."
        return _failed(message, details, {JWKS_FIELD: message})

    usable: list[str] = []
    unusable: list[str] = []
    for index, key in enumerate(keys, start=1):
        label, bits, problem = assess_key(key, index, algorithm)
        if problem is None:
            usable.append(f"{label}, RSA {bits} bits")
        else:
            unusable.append(f"{label}: {problem}")
    plural = "s" if len(keys) != 1 else ""
    summary_line = f"JWKS: {len(keys)} key{plural}, {len(usable)} usable for {algorithm}"
    if usable:
        summary_line += f" ({'; '.join(usable)})"
    details.append(summary_line)
    details.extend(f"Not usable for {algorithm}: {line}" for line in unusable)

    if not usable:
        message = f"No key in the JWKS at {jwks_url} can verify {algorithm} tokens: " + "; ".join(unusable) + "."
        return _failed(message, details, {JWKS_FIELD: message})
    usable_plural = "s" if len(usable) != 1 else ""
    return CheckResult(
        ok=True,
        summary=f"OIDC discovery and JWKS fine: {len(usable)} RSA key{usable_plural} usable for {algorithm}",
        details=details,
    )


def _failed(summary: str, details: list[str], field_errors: dict[str, str]) -> CheckResult:
    return CheckResult(ok=False, summary=summary, details=[*details, summary], field_errors=dict(field_errors))


def assess_key(key: object, index: int, algorithm: str) -> tuple[str, int, str | None]:
    """(label, RSA bits, problem or None). Inspected by hand rather than with PyJWK so that every reason a
    key is unusable can be reported, not only the first exception."""
    if not isinstance(key, dict):
        return f"key #{index}", 0, "not a JSON object"
    kid = key.get("kid")
    label = f"kid {kid}" if isinstance(kid, str) and kid else f"key #{index} (no kid)"
    problems: list[str] = []
    kty = key.get("kty")
    if kty != "RSA":
        return label, 0, f"key type {kty!r}, not RSA"
    use = key.get("use")
    if use is not None and use != "sig":
        problems.append(f'use is "{use}", not "sig"')
    alg = key.get("alg")
    if alg is not None and alg != algorithm:
        problems.append(f"alg is {alg}, not {algorithm}")
    key_ops = key.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        problems.append('key_ops does not include "verify"')
    if any(private in key for private in ("d", "p", "q", "dp", "dq", "qi")):
        problems.append("it contains private key material, which a JWKS must never publish")
    n = _b64url_int(key.get("n"))
    e = _b64url_int(key.get("e"))
    bits = n.bit_length() if n is not None else 0
    if n is None or e is None:
        problems.append('its "n" or "e" is missing or not base64url')
    else:
        try:
            RSAPublicNumbers(e, n).public_key()
        except ValueError as exc:
            problems.append(f"not a valid RSA public key ({exc})")
        if bits < MIN_RSA_BITS:
            problems.append(f"RSA {bits} bits; at least {MIN_RSA_BITS} are required")
    return label, bits, "; ".join(problems) if problems else None


def _b64url_int(value: object) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    return int.from_bytes(raw, "big") if raw else None
