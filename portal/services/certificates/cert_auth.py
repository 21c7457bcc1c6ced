"""How WSO2 IS 7 decides a client-certificate REST call (ClientCertificateBasedAuthenticationHandler; see
wso2-apis.md §2 and wso2-fidelity-findings.md), for the "explain a call" page, the mapping lint and the live
mTLS check. The IS 7 simulator has its own, independent port of the handler (simulators/cert_oracle.py);
one table of vectors (tests/vectors/cert_auth_vectors.json) must pass through both.

Two handler lines exist (`line`): "master" (auth-rest v1.9.38+) and "backport" (the 1.8.x v1.8.49 / 1.11.x
v1.11.0 branches), which compare USER-mapping thumbprints case-sensitively (system mappings still ignore case)
and do not check that the user exists.

IS's rules, quirks included:
- the issuer string is Java's `getIssuerDN().getName()`; a mapping's `trusted_issuer` matches when equal, or equal
  after `normalize_dn` (split on every comma, naive about escapes; trim; keys upper-cased; parts sorted; values
  compared case-sensitively);
- `trusted_issuer = "*"` makes IS skip the mapping; a blank thumbprint, username list or system user means `*`
  (blank entries inside a username list are dropped, not read as `*`);
- thumbprints compare ignoring case (user mappings on the backport line: exactly), colons required;
- with a `WSO2-Identity-User` header the user mappings apply: the first mapping (in order) whose issuer matches and
  whose thumbprint equals the certificate's, else the first with a matching issuer and `*`; the user must be listed
  (case-insensitively) or `*` be listed, and (master) must exist;
- without the header the system mappings apply the same way; `allowed_system_user = "*"` lets the call in with no
  user.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

WILDCARD = "*"
MASTER = "master"
BACKPORT = "backport"
HANDLER_LINES = (MASTER, BACKPORT)


@dataclass(frozen=True)
class UserMapping:
    trusted_issuer: str
    cert_thumbprint: str = ""
    allowed_usernames: tuple[str, ...] = ()


@dataclass(frozen=True)
class SystemMapping:
    trusted_issuer: str
    cert_thumbprint: str = ""
    allowed_system_user: str = ""


@dataclass
class Decision:
    ok: bool
    reason: str  # one sentence for the administrator
    kind: str  # "user" or "system": which list was consulted
    mapping_index: int | None = None  # 0-based position in that list of the mapping IS chose
    user: str | None = None  # the user the call runs as (None: anonymous system call)
    steps: list[str] = field(default_factory=list)


def normalize_dn(dn: str) -> str:
    """IS's normalizeDN: naive split on ',' (Java's split: trailing empty parts dropped), trim, KEY upper-cased,
    sort, join with ', '."""
    pieces = dn.split(",")
    while len(pieces) > 1 and not pieces[-1]:
        pieces.pop()
    parts = []
    for part in pieces:
        key, sep, value = part.partition("=")
        parts.append(f"{key.strip().upper()}={value.strip()}" if sep else part.strip())
    return ", ".join(sorted(parts))


def issuer_matches(trusted_issuer: str, presented_issuer: str) -> bool:
    return trusted_issuer == presented_issuer or normalize_dn(trusted_issuer) == normalize_dn(presented_issuer)


def effective(value: str | None) -> str:
    """Blank means "*" to IS."""
    return value.strip() if value and value.strip() else WILDCARD


def thumbprint_equal(configured: str, actual: str, *, exact: bool = False) -> bool:
    """IS's comparison: ignoring case, or exactly (`exact`: user mappings on the backport line)."""
    if exact:
        return configured.strip() == actual.strip()
    return configured.strip().lower() == actual.strip().lower()


def allowed_usernames(mapping: UserMapping) -> list[str]:
    """The names IS reads: blank entries dropped; none left means ["*"]."""
    return [u.strip() for u in mapping.allowed_usernames if u and u.strip()] or [WILDCARD]


def _choose(mappings: Sequence[UserMapping | SystemMapping], issuer: str, thumbprint: str,
            kind: str, steps: list[str], line: str = MASTER) -> int | None:
    """Index of the mapping IS selects: exact thumbprint first, then the first wildcard thumbprint."""
    candidates = []
    for index, mapping in enumerate(mappings):
        label = f"{kind} mapping #{index + 1}"
        if mapping.trusted_issuer.strip() == WILDCARD:
            steps.append(f'{label}: skipped, trusted_issuer "*" is ignored by IS.')
            continue
        if not issuer_matches(mapping.trusted_issuer, issuer):
            steps.append(f"{label}: issuer {mapping.trusted_issuer!r} does not match {issuer!r}.")
            continue
        candidates.append(index)
        steps.append(f"{label}: issuer matches.")
    exact = line == BACKPORT and kind == "user"
    for index in candidates:
        if effective(mappings[index].cert_thumbprint) != WILDCARD and thumbprint_equal(
                mappings[index].cert_thumbprint, thumbprint, exact=exact):
            steps.append(f"{kind} mapping #{index + 1} chosen: its thumbprint equals the certificate's.")
            return index
    for index in candidates:
        if effective(mappings[index].cert_thumbprint) == WILDCARD:
            steps.append(f"{kind} mapping #{index + 1} chosen: matching issuer with thumbprint \"*\".")
            return index
    if candidates:
        steps.append("No mapping with a matching issuer has the certificate's thumbprint or \"*\".")
    return None


def evaluate(issuer: str, thumbprint: str, user: str | None, user_mappings: Sequence[UserMapping],
             system_mappings: Sequence[SystemMapping],
             user_exists: Callable[[str], bool] | None = None, line: str = MASTER) -> Decision:
    """Decide a call presenting a certificate with this issuer (Java form) and SHA-256 thumbprint.

    `user` is the WSO2-Identity-User header value (None or blank: absent). `user_exists` says whether a user is
    in its tenant's store; None skips that step (the portal cannot see IS's user stores); the backport line never
    checks it."""
    if line not in HANDLER_LINES:
        raise ValueError(f"line must be one of {HANDLER_LINES}")
    steps: list[str] = [f"Certificate issuer (as IS reads it): {issuer}", f"Certificate thumbprint: {thumbprint}"]
    header = user.strip() if user and user.strip() else None
    if header is not None:
        steps.append(f"WSO2-Identity-User: {header}: user thumbprint mappings apply.")
        index = _choose(user_mappings, issuer, thumbprint, "user", steps, line)
        if index is None:
            return Decision(False, _no_mapping_reason("user", user_mappings, issuer), "user", None, None, steps)
        mapping = user_mappings[index]
        allowed = allowed_usernames(mapping)
        if WILDCARD not in allowed and header.lower() not in {u.lower() for u in allowed}:
            reason = (f"User mapping #{index + 1} was chosen, but {header!r} is not in its allowed_username "
                      f"({', '.join(allowed)}); IS answers 401.")
            return Decision(False, reason, "user", index, None, steps)
        return _with_user(Decision(True, f"User mapping #{index + 1} lets {header!r} in.", "user", index, header,
                                   steps), user_exists, line)
    steps.append("No WSO2-Identity-User header: system thumbprint mappings apply.")
    index = _choose(system_mappings, issuer, thumbprint, "system", steps, line)
    if index is None:
        return Decision(False, _no_mapping_reason("system", system_mappings, issuer), "system", None, None, steps)
    system_user = effective(system_mappings[index].allowed_system_user)
    if system_user == WILDCARD:
        return Decision(True, f"System mapping #{index + 1} lets the call in with no user (allowed_system_user \"*\").",
                        "system", index, None, steps)
    return _with_user(Decision(True, f"System mapping #{index + 1} lets the call in as {system_user!r}.", "system",
                               index, system_user, steps), user_exists, line)


def _with_user(decision: Decision, user_exists: Callable[[str], bool] | None, line: str) -> Decision:
    if decision.user is not None and line == BACKPORT:
        decision.steps.append("The backport handler line does not check that the user exists.")
        return decision
    if user_exists is None or decision.user is None:
        return decision
    if user_exists(decision.user):
        decision.steps.append(f"User {decision.user!r} exists in its tenant.")
        return decision
    decision.ok = False
    decision.reason = (f"{decision.kind.capitalize()} mapping #{decision.mapping_index + 1} matched, but user "
                       f"{decision.user!r} does not exist in its tenant's user store; IS answers 401.")
    return decision


def _no_mapping_reason(kind: str, mappings: Sequence, issuer: str) -> str:
    if not mappings:
        return f"There are no {kind} thumbprint mappings; IS answers 401."
    if not any(m.trusted_issuer.strip() != WILDCARD and issuer_matches(m.trusted_issuer, issuer) for m in mappings):
        return (f"No {kind} mapping has a trusted_issuer matching the certificate's issuer {issuer!r} "
                "(order, spaces and key case do not matter; value case does); IS answers 401.")
    return (f"A {kind} mapping matches the issuer, but none has the certificate's thumbprint or \"*\"; "
            "IS answers 401.")


def tenant_of(username: str) -> str:
    """`[USERSTORE/]name[@tenant]`: text after the last '@', super tenant when none or carbon.super."""
    _, at, tenant = username.rpartition("@")
    return tenant if at and tenant and tenant != "carbon.super" else "carbon.super"
