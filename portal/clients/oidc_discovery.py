"""The EXTERNAL provider's connection check: discovery, the issuer it names, its jwks_uri and keys able to verify
the tenant's algorithm, each fetched through the SSRF-guarded fetcher (clients/oidc.py). The steps are shared with
the Entra ID check (clients/entra.py), which compares the issuer as a template instead."""
from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

from portal.clients.checks import CheckResult
from portal.clients.oidc import MAX_JWKS_KEYS, FetchError, GuardedFetcher

# Field paths of the registration API (EXTERNAL identity provider), so the form can pin each problem.
ISSUER_FIELD = "issuer"
JWKS_FIELD = "jwkSetUrl"
ALGORITHM_FIELD = "supportAlgorithm"

RSA_ALGORITHMS = ("RS256", "RS384", "RS512")
MIN_RSA_BITS = 2048  # RFC 7518 section 3.3
WELL_KNOWN = "/.well-known/openid-configuration"


class CheckStop(Exception):
    """A step failed: the message, and the field it belongs to."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message, self.field = message, field


def check_oidc(issuer: str, jwks_url: str, algorithm: str, fetcher: GuardedFetcher) -> CheckResult:
    """Check an EXTERNAL identity provider the way token validation will use it: discovery issuer equal to
    the configured one, the configured JWKS URL equal to the advertised one, and a key able to verify the
    tenant's algorithm."""
    details: list[str] = []
    try:
        check_algorithm(algorithm)
        if not issuer or not issuer.strip():
            raise CheckStop("Enter the issuer.", ISSUER_FIELD)
        if not jwks_url or not jwks_url.strip():
            raise CheckStop("Enter the JWK set URL.", JWKS_FIELD)
        discovery_url = issuer.rstrip("/") + WELL_KNOWN
        discovery = fetch_discovery(discovery_url, fetcher, details)
        advertised = advertised_issuer(discovery, discovery_url)
        if advertised != issuer:
            raise CheckStop(
                f'The provider says its issuer is "{advertised}" but this tenant is configured with '
                f'"{issuer}"; they must match exactly (including any trailing slash), or every token is rejected.',
                ISSUER_FIELD)
        details.append(f"issuer matches ({issuer})")
        check_jwks_uri(discovery, discovery_url, jwks_url, details)
        usable, _keys = check_keys(jwks_url, algorithm, fetcher, details)
    except CheckStop as stop:
        return failed(stop, details)
    plural = "s" if len(usable) != 1 else ""
    return CheckResult(ok=True, summary=f"OIDC discovery and JWKS fine: {len(usable)} RSA key{plural} usable for "
                                        f"{algorithm}", details=details)


def failed(stop: CheckStop, details: list[str]) -> CheckResult:
    return CheckResult(ok=False, summary=stop.message, details=[*details, stop.message],
                       field_errors={stop.field: stop.message})


def check_algorithm(algorithm: str) -> None:
    if algorithm in ("HS256", "HS384", "HS512"):
        raise CheckStop(
            f"{algorithm} tokens are signed with a shared secret, which an external identity provider never "
            "publishes in its JWKS, so they cannot be verified; choose RS256, RS384 or RS512.", ALGORITHM_FIELD)
    if algorithm not in RSA_ALGORITHMS:
        raise CheckStop(f"Algorithm {algorithm!r} is not supported for an external identity provider; "
                        "choose RS256, RS384 or RS512.", ALGORITHM_FIELD)


def fetch_discovery(discovery_url: str, fetcher: GuardedFetcher, details: list[str],
                    field: str = ISSUER_FIELD) -> dict:
    try:
        discovery = fetcher.get_json(discovery_url)
    except FetchError as exc:
        raise CheckStop(f"Cannot fetch the discovery document {discovery_url}: {exc.reason}", field) from None
    details.append(f"Fetched discovery document from {discovery_url}")
    return discovery


def advertised_issuer(discovery: dict, discovery_url: str, field: str = ISSUER_FIELD) -> str:
    value = discovery.get("issuer")
    if not isinstance(value, str):
        raise CheckStop(f"The discovery document {discovery_url} has no issuer.", field)
    return value


def check_jwks_uri(discovery: dict, discovery_url: str, jwks_url: str, details: list[str]) -> None:
    advertised = discovery.get("jwks_uri")
    if not isinstance(advertised, str) or not advertised:
        raise CheckStop(f"The discovery document {discovery_url} has no jwks_uri.", JWKS_FIELD)
    if advertised != jwks_url:
        raise CheckStop(f'The provider publishes its keys at "{advertised}" but this tenant is configured with '
                        f'"{jwks_url}"; use the jwks_uri from the discovery document.', JWKS_FIELD)
    details.append("jwkSetUrl matches the jwks_uri of the discovery document")


def check_keys(jwks_url: str, algorithm: str, fetcher: GuardedFetcher,
               details: list[str]) -> tuple[list[str], list[dict]]:
    """The labels of the usable keys and the usable keys themselves; CheckStop when none is."""
    try:
        jwks = fetcher.get_json(jwks_url)
    except FetchError as exc:
        raise CheckStop(f"Cannot fetch the JWKS {jwks_url}: {exc.reason}", JWKS_FIELD) from None
    details.append(f"Fetched JWKS from {jwks_url}")
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        raise CheckStop(f'{jwks_url} is not a JWK set: it has no "keys" list.', JWKS_FIELD)
    if not keys:
        raise CheckStop(f"The JWKS at {jwks_url} contains no keys.", JWKS_FIELD)
    if len(keys) > MAX_JWKS_KEYS:
        raise CheckStop(f"The JWKS at {jwks_url} has {len(keys)} keys; at most {MAX_JWKS_KEYS} are accepted.",
                        JWKS_FIELD)
    usable: list[str] = []
    fit: list[dict] = []
    unusable: list[str] = []
    for index, key in enumerate(keys, start=1):
        label, bits, problem = assess_key(key, index, algorithm)
        if problem is None:
            usable.append(f"{label}, RSA {bits} bits")
            fit.append(key)
        else:
            unusable.append(f"{label}: {problem}")
    plural = "s" if len(keys) != 1 else ""
    summary_line = f"JWKS: {len(keys)} key{plural}, {len(usable)} usable for {algorithm}"
    if usable:
        summary_line += f" ({'; '.join(usable)})"
    details.append(summary_line)
    details.extend(f"Not usable for {algorithm}: {line}" for line in unusable)
    if not usable:
        raise CheckStop(f"No key in the JWKS at {jwks_url} can verify {algorithm} tokens: " + "; ".join(unusable)
                        + ".", JWKS_FIELD)
    return usable, fit


def assess_key(key: object, index: int, algorithm: str) -> tuple[str, int, str | None]:
    """(label, RSA bits, problem or None). Inspected by hand rather than with PyJWK so that every reason a
    key is unusable can be reported, not only the first exception."""
    if not isinstance(key, dict):
        return f"key #{index}", 0, "not a JSON object"
    kid = key.get("kid")
    label = f"kid {kid}" if isinstance(kid, str) and kid else f"key #{index} (no kid)"
    kty = key.get("kty")
    if kty != "RSA":
        return label, 0, f"key type {kty!r}, not RSA"
    problems = _member_problems(key, algorithm)
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


def _member_problems(key: dict, algorithm: str) -> list[str]:
    problems: list[str] = []
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
    return problems


def _b64url_int(value: object) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    return int.from_bytes(raw, "big") if raw else None
