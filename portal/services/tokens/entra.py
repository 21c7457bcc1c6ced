"""Entra ID's rules of token validation for EXTERNAL tenants with the Entra ID preset (portal/idp/entra.py).

Before a key is used: a token meant for Microsoft Graph is refused for what it is (its header nonce makes it
verifiable by Graph alone); `ver` must be one the tenant accepts; `tid` names the directory, which must be the
tenant's directory, or for a multi-tenant application one on the allow-list (or any, when the tenant chose so).
The expected issuer follows from `ver` and `tid`: v2 {authority}/{tid}/v2.0 (the discovery template with tid put
in), v1 https://sts.windows.net/{tid}/. After the key is found, its own `issuer` member, if any, must name the same
issuer (Microsoft.IdentityModel's signing-key issuer check, which also accepts the v2 form for a v1 token).
Every outcome names the rule that decided it (Verdict.decided_by)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from portal.clients import entra as issuers
from portal.idp import entra

REASONS = {
    "graph_token": "The token is meant for Microsoft Graph (a nonce in its header, or a Graph audience): Graph "
                   "hashes the nonce before checking the signature, so nobody else can validate such a token. Ask "
                   "for a token with your API's scope (<resource>/.default) instead.",
    "bad_version": "The token's ver claim is missing or is neither 1.0 nor 2.0.",
    "version_not_accepted": "The token's version (ver) is not one the tenant accepts (entraId.tokenVersions).",
    "missing_tid": "The token has no directory id (tid claim), so its issuer cannot be worked out.",
    "wrong_directory": "The token comes from another Entra ID directory than the tenant's.",
    "directory_not_allowed": "The token comes from an Entra ID directory that is not on the tenant's allow-list.",
    "directory_unresolved": "The tenant's verified domain has not been resolved to a directory id yet (its "
                            "discovery document could not be read).",
    "key_issuer_mismatch": "The signing key's own issuer member does not name the token's issuer (signing-key "
                           "issuer validation).",
}


@dataclass(frozen=True)
class Plan:
    """What a token of this tenant is checked against, or why it is refused before any key is used."""

    reason: str = ""
    decided_by: str | None = None
    issuer: str | None = None
    audiences: list[str] = field(default_factory=list)
    tid: str = ""
    version: str = ""

    def explain(self, reason: str) -> str | None:
        """The rule behind a refusal found while decoding."""
        if reason == "wrong_issuer":
            return f"v{self.version} issuer for directory {self.tid} must be {self.issuer}"
        if reason == "wrong_audience":
            return f"audience must be one of {', '.join(self.audiences)}"
        return self.decided_by


def plan(preset: Mapping[str, Any], header: Mapping[str, Any], claims: Mapping[str, Any],
         directory_tid: str | None, audience: str | None) -> Plan:
    """The checks a token must pass, from the unverified header and claims (all re-checked once verified)."""
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if "nonce" in header or any(a in entra.GRAPH_AUDIENCES for a in auds if isinstance(a, str)):
        shown = "a nonce in its header" if "nonce" in header else f"audience {aud}"
        return Plan("graph_token", f"Microsoft Graph token ({shown}): only Graph can verify it")
    version = claims.get("ver")
    if version not in entra.VERSIONS:
        return Plan("bad_version", f"ver is {version!r}; Entra ID access tokens say 1.0 or 2.0")
    accepted = preset["tokenVersions"]
    if version not in accepted:
        return Plan("version_not_accepted", f"v{version} token, but the tenant accepts only "
                                            f"{' and '.join('v' + v for v in accepted)}")
    tid = claims.get("tid")
    if not entra.is_guid(tid):
        return Plan("missing_tid", "no tid claim naming the token's directory")
    tid = tid.lower()
    reason, rule = _directory_rule(preset, tid, directory_tid)
    if reason:
        return Plan(reason, rule)
    issuer = issuers.v1_issuer(tid) if version == "1.0" else issuers.v2_issuer(preset["authority"], tid)
    client = claims.get("azp") or claims.get("appid")
    decided = f"v{version} issuer for directory {tid}, {rule}" + (f"; client {client}" if client else "")
    return Plan("", decided, issuer, [audience] if audience else list(preset["audiences"]), tid, version)


def _directory_rule(preset: Mapping[str, Any], tid: str, directory_tid: str | None) -> tuple[str, str]:
    """("", the rule that accepts tid) or (reason, the rule that refuses it)."""
    directory = preset["directory"]
    if entra.is_multi_tenant(preset):
        if preset.get("anyDirectory"):
            return "", "accepted because the tenant accepts any directory"
        if tid in preset.get("allowedDirectories", []):
            return "", "which is on the allow-list"
        return "directory_not_allowed", f"directory {tid} is not on the allow-list of this {directory} application"
    expected = directory if entra.is_guid(directory) else directory_tid
    if expected is None:
        return "directory_unresolved", f"the directory id of {directory} is not known yet"
    if tid != expected:
        return "wrong_directory", f"directory {tid} is not the tenant's directory {expected}"
    return "", "the tenant's directory" + ("" if expected == directory else f" ({directory})")


def key_issuer_refusal(key_issuer: Any, plan_: Plan, authority: str) -> str | None:
    """Why the key's own issuer member rules it out for this token, or None (no member, or a match)."""
    if not isinstance(key_issuer, str) or not key_issuer:
        return None
    effective = issuers.substitute(key_issuer, plan_.tid)
    if effective in (plan_.issuer, entra.v2_issuer(authority, plan_.tid)):
        return None
    return f"the signing key's issuer is {effective}, not {plan_.issuer}"
