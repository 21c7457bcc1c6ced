"""Microsoft Entra ID as an EXTERNAL provider: its issuer forms (../shared/reference/entra-id.md) and the
connection check of a tenant with the Entra ID preset (portal/idp/entra.py).

The check reads the directory's v2 discovery document: a multi-tenant directory (organizations, common) publishes
the issuer as the literal template {authority}/{tenantid}/v2.0, which is understood rather than refused; a verified
domain resolves to its directory id. Then the keys, and, when the tenant's client credentials are given, one test
token from the directory's token endpoint (client credentials, scope <resource>/.default), verified with those keys
and compared with the accepted versions and audiences. Nothing is stored."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from portal.clients.checks import CheckResult
from portal.clients.oidc import FetchError, GuardedFetcher
from portal.clients.oidc_discovery import (
    CheckStop,
    check_jwks_uri,
    check_keys,
    failed,
    fetch_discovery,
)

MULTI_TENANT = ("organizations", "common")
TENANT_TEMPLATE = "{tenantid}"
V1_ISSUER = "https://sts.windows.net/{tid}/"  # v1 access tokens, whatever endpoint issued them
GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
DIRECTORY_FIELD = "entraId.directory"


def is_guid(value: Any) -> bool:
    return isinstance(value, str) and GUID_RE.fullmatch(value) is not None


def v2_issuer(authority: str, tid: str) -> str:
    return f"{authority}/{tid}/v2.0"


def v1_issuer(tid: str) -> str:
    return V1_ISSUER.format(tid=tid)


def substitute(template: str, tid: str) -> str:
    """An issuer template (multi-tenant discovery, a key's issuer member) with the token's tid put in."""
    return template.replace(TENANT_TEMPLATE, tid)


def tid_of_issuer(authority: str, issuer: str) -> str | None:
    """The directory id in a v2 issuer of this authority, e.g. a verified domain's discovery answer."""
    prefix, suffix = f"{authority}/", "/v2.0"
    middle = issuer[len(prefix):-len(suffix)] if issuer.startswith(prefix) and issuer.endswith(suffix) else ""
    return middle.lower() if is_guid(middle) else None


@dataclass(frozen=True)
class Preset:
    authority: str
    directory: str
    versions: tuple[str, ...]
    audiences: tuple[str, ...]
    jwks_url: str
    token_url: str
    scope: str

    @classmethod
    def of(cls, preset: Mapping[str, Any], settings: Mapping[str, Any]) -> Preset:
        """From the stored settings. A multi-tenant application's test token comes from its first allowed directory:
        the token endpoint of organizations / common issues none (AADSTS50059)."""
        schema = settings.get("oidcSchema") or {}
        token_url = schema.get("accessTokenUrl", "")
        allowed = preset.get("allowedDirectories") or []
        if preset["directory"] in MULTI_TENANT:
            token_url = token_url.replace(f"/{preset['directory']}/", f"/{allowed[0]}/", 1) if allowed else ""
        return cls(preset["authority"], preset["directory"], tuple(preset["tokenVersions"]),
                   tuple(preset["audiences"]), settings["jwkSetUrl"], token_url, schema.get("scope", ""))

    @property
    def multi_tenant(self) -> bool:
        return self.directory in MULTI_TENANT


def check_entra(preset: Preset, algorithm: str, fetcher: GuardedFetcher,
                client: tuple[str, str] | None) -> CheckResult:
    """Discovery (template understood), keys, and one test token when client credentials are given."""
    details: list[str] = []
    try:
        if algorithm != "RS256":
            raise CheckStop("Microsoft Entra ID signs with RS256 only; choose RS256.", "supportAlgorithm")
        discovery_url = f"{preset.authority}/{preset.directory}/v2.0/.well-known/openid-configuration"
        discovery = fetch_discovery(discovery_url, fetcher, details, DIRECTORY_FIELD)
        tid = _check_issuer(preset, discovery, discovery_url, details)
        # A verified domain's discovery names its keys by directory id: the same set as under the domain.
        by_id = preset.jwks_url.replace(f"/{preset.directory}/", f"/{tid}/", 1) if tid else preset.jwks_url
        check_jwks_uri(discovery, discovery_url, by_id, details)
        usable, keys = check_keys(preset.jwks_url, algorithm, fetcher, details)
        token = "no test token (no credentials)" if not client else (
            _test_token(preset, keys, fetcher, client, details) if preset.token_url
            else "no test token (any directory: no token endpoint to ask)")
    except CheckStop as stop:
        return failed(stop, details)
    where = f"directory {tid}" if tid else f"{preset.directory} (multi-tenant)"
    plural = "s" if len(usable) != 1 else ""
    return CheckResult(ok=True, summary=f"Entra ID {where}: discovery and {len(usable)} RSA key{plural} fine; "
                                        f"{token}", details=details)


def _check_issuer(preset: Preset, discovery: dict, discovery_url: str, details: list[str]) -> str | None:
    """The directory id (None for a multi-tenant directory), after comparing discovery's issuer with the form the
    directory should publish."""
    advertised = discovery.get("issuer")
    if not isinstance(advertised, str):
        raise CheckStop(f"The discovery document {discovery_url} has no issuer.", DIRECTORY_FIELD)
    if preset.multi_tenant:
        expected = v2_issuer(preset.authority, TENANT_TEMPLATE)
        if advertised != expected:
            raise CheckStop(f'{preset.directory} should publish the issuer template "{expected}"; the discovery '
                            f'document says "{advertised}".', DIRECTORY_FIELD)
        details.append(f"issuer is the multi-tenant template {advertised}: each token's tid is put in its place, "
                       "then checked against the allowed directories")
        return None
    tid = tid_of_issuer(preset.authority, advertised)
    if tid is None or (is_guid(preset.directory) and tid != preset.directory):
        raise CheckStop(f'The discovery document of directory {preset.directory} names the issuer "{advertised}", '
                        f"not {v2_issuer(preset.authority, preset.directory)}.", DIRECTORY_FIELD)
    details.append(f"issuer matches ({advertised})" if tid == preset.directory
                   else f"verified domain {preset.directory} is directory {tid} (issuer {advertised})")
    return tid


def _test_token(preset: Preset, keys: list[dict], fetcher: GuardedFetcher, client: tuple[str, str],
                details: list[str]) -> str:
    """Ask for one client-credentials token and verify it with the directory's keys. A token that cannot be had is
    reported (the client id may not be an Entra ID application); one that would be refused fails the check."""
    try:
        answer = fetcher.post_form(preset.token_url, {"grant_type": "client_credentials", "client_id": client[0],
                                                      "client_secret": client[1], "scope": preset.scope})
    except FetchError as exc:
        details.append(f"No test token from {preset.token_url}: {exc.reason}")
        return "no test token"
    token = answer.get("access_token")
    if not isinstance(token, str):
        details.append(f"No test token: {preset.token_url} answered without an access_token")
        return "no test token"
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = next((k for k in keys if k.get("kid") == kid), None)
        if key is None:
            raise CheckStop(f"The test token's key {kid!r} is not in the JWKS at {preset.jwks_url}.", "jwkSetUrl")
        claims = jwt.decode(token, jwt.PyJWK.from_dict(key).key, algorithms=["RS256"],
                            options={"verify_aud": False, "verify_iss": False})
    except jwt.PyJWTError as exc:
        raise CheckStop(f"The test token from {preset.token_url} does not verify: {exc}.", "jwkSetUrl") from None
    ver, aud = claims.get("ver"), claims.get("aud")
    details.append(f"Test token for {client[0]}: ver {ver}, tid {claims.get('tid')}, aud {aud}, kid {kid}; "
                   "signature verified")
    if ver not in preset.versions:
        raise CheckStop(f"The resource issues v{ver} tokens (its accessTokenAcceptedVersion) but this tenant accepts "
                        f"{' and '.join(preset.versions)}; accept {ver} too or change the application's manifest.",
                        "entraId.tokenVersions")
    if aud not in preset.audiences:
        raise CheckStop(f"The test token's audience is {aud!r}, not one of {', '.join(preset.audiences)}; add it "
                        "to the audiences.", "entraId.audiences")
    return f"test token v{ver} verified"
