"""The token lab's verdict as a person reads it: the word and the reason in words (the code stays, as detail), which
rule decided (services.tokens' Verdict.decided_by, when it has one), exp/iat/nbf as UTC times with their age, the
identity claims Entra ID and other providers put in (tid, ver, aud, azp, appid), and a warning when the pasted
token belongs to another tenant than the page's (it was validated against that tenant's own settings)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from portal.services.tokens.service import Verdict
from portal.web.timefmt import from_epoch, relative, utc_text

TIME_CLAIMS = (("exp", "Expires (exp)"), ("iat", "Issued (iat)"), ("nbf", "Not before (nbf)"))
IDENTITY_CLAIMS = (("tid", "Directory (tid)"), ("ver", "Token version (ver)"), ("aud", "Audience (aud)"),
                   ("azp", "Authorised party (azp)"), ("appid", "Application (appid)"))


@dataclass(frozen=True)
class LabTime:
    claim: str
    label: str
    raw: Any
    at: datetime | None  # None: not a NumericDate (the raw value is shown as it is)
    utc: str = ""
    age: str = ""


@dataclass(frozen=True)
class LabResult:
    verdict: Verdict
    word: str  # "valid", "invalid", or "another tenant's token"
    badge: str
    explanation: str  # the reason in words
    other_tenant: str | None = None  # the tenant the token belongs to, when not the page's
    decided_by: str | None = None
    times: list[LabTime] = field(default_factory=list)
    identity: list[tuple[str, str]] = field(default_factory=list)  # (label, value)


def times_of(claims: dict[str, Any], now: datetime | None = None) -> list[LabTime]:
    found = []
    for claim, label in TIME_CLAIMS:
        if claim in claims:
            at = from_epoch(claims[claim])
            found.append(LabTime(claim, label, claims[claim], at, utc_text(at) if at else "",
                                 relative(at, now) if at else ""))
    return found


def identity_of(claims: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for claim, label in IDENTITY_CLAIMS:
        value = claims.get(claim)
        if value is None or value == "" or value == []:
            continue
        found.append((label, ", ".join(map(str, value)) if isinstance(value, list) else str(value)))
    return found


def explain(verdict: Verdict, times: list[LabTime]) -> str:
    """The reason in words; for a time refusal, with the time that decided it."""
    text = verdict.message
    when = {t.claim: t for t in times if t.at is not None}
    if verdict.reason == "expired" and "exp" in when:
        text += f" It expired at {when['exp'].utc} ({when['exp'].age})."
    elif verdict.reason == "not_yet_valid":
        future = [t for t in (when.get("nbf"), when.get("iat")) if t is not None and t.age.startswith("in ")]
        if future:
            text += f" {future[0].label} is {future[0].utc} ({future[0].age})."
    return text


def present(verdict: Verdict, page_tenant: str, now: datetime | None = None) -> LabResult:
    """The verdict for the token lab on `page_tenant`'s page."""
    times = times_of(verdict.claims or {}, now)
    decided_by = getattr(verdict, "decided_by", None) or None
    identity = identity_of(verdict.claims or {})
    owner = verdict.tenant_id
    if owner and owner.lower() != page_tenant.lower():
        where = "it is valid there." if verdict.valid else f"it is refused there. {explain(verdict, times)}"
        return LabResult(verdict, "another tenant's token", "state-warn",
                         f"This is not a token of {page_tenant}. It names tenant {owner} and was validated against "
                         f"{owner}'s own settings: {where}", owner, decided_by, times, identity)
    if verdict.valid:
        return LabResult(verdict, "valid", "state-ok", explain(verdict, times), None, decided_by, times, identity)
    return LabResult(verdict, "invalid", "state-off", explain(verdict, times), None, decided_by, times, identity)
