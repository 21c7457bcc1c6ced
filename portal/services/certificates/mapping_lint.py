"""The mapping lint: what IS 7 will really do with each thumbprint mapping, checked against the uploaded
certificates, the configured IS handler line and the registry's tenants. API Manager's auto-configured WSO2-IS-7 key
manager calls IS per tenant as `<tenant admin>@<tenant domain>`: the lint models every current tenant's admin that
way, reading their names only when a mapping lists names instead of "*"."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from portal.extensions import db
from portal.models.certificate import Certificate, ThumbprintMapping
from portal.models.tenant import Tenant
from portal.services.certificates import cert_auth, service as certificates
from portal.services.certificates.mappings import HANDLER_LINES, handler_line, km_user, list_mappings, rules

SHOWN_TENANTS = 5  # tenants named in a lint finding; the rest are counted

class TenantAdmins:
    """The registry's tenants as key manager users, read with one query of (owner_username, domain), only when a
    check needs names (a mapping without "*")."""

    def __init__(self) -> None:
        self._rows: list[tuple[str, str]] | None = None
        self._count: int | None = None

    @property
    def count(self) -> int:
        """How many tenants have an owner (one COUNT; no rows are read)."""
        if self._count is None:
            self._count = len(self._rows) if self._rows is not None else db.session.execute(
                sa.select(sa.func.count()).select_from(Tenant).where(Tenant.owner_username.is_not(None))).scalar_one()
        return self._count

    @property
    def rows(self) -> list[tuple[str, str]]:
        if self._rows is None:
            self._rows = [(owner, domain) for owner, domain in db.session.execute(
                sa.select(Tenant.owner_username, Tenant.domain).where(Tenant.owner_username.is_not(None))
                .order_by(Tenant.domain))]
        return self._rows

    def rejected(self, allowed: Sequence[str]) -> tuple[int, list[str]]:
        """(how many tenants' key manager users a mapping listing `allowed` refuses, the first few of them)."""
        names = {name.lower() for name in allowed}
        count, first = 0, []
        for owner, domain in self.rows:
            user = km_user(owner, domain)
            if user.lower() not in names:
                count += 1
                if len(first) < SHOWN_TENANTS:
                    first.append(user)
        return count, first


def _rejection_text(count: int, total: int, first: list[str]) -> str:
    more = f" and {count - len(first)} more" if count > len(first) else ""
    return f"{count} of {total} current tenants' key manager users would get a 401: {', '.join(first)}{more}"


# ---------------------------------------------------------------------------------------------------------------
# Lint.

@dataclass(frozen=True)
class Finding:
    level: str  # "error": IS will not do what the mapping seems to say; "warning": risky; "info"
    message: str


@dataclass
class MappingLint:
    mapping: ThumbprintMapping
    number: int  # 1-based place in its list, as IS tries it
    findings: list[Finding] = field(default_factory=list)


@dataclass
class LintReport:
    user: list[MappingLint]
    system: list[MappingLint]
    general: list[Finding]
    line: str  # the IS handler line the lint assumed
    tenants: int  # current tenants with an owner: each is one key manager user

    @property
    def line_label(self) -> str:
        return HANDLER_LINES[self.line]

    @property
    def problems(self) -> int:
        return sum(1 for m in self.user + self.system for f in m.findings if f.level != "info") + sum(
            1 for f in self.general if f.level != "info")


def _thumbprint_findings(thumb: str, known: set[str], kind: str = "user",
                         line: str = cert_auth.MASTER) -> list[Finding]:
    if not thumb:
        return [Finding("warning", 'cert_thumbprint is blank: IS reads it as "*", any certificate from this issuer.')]
    if thumb == cert_auth.WILDCARD:
        return [Finding("warning", 'cert_thumbprint "*": any certificate from this issuer is accepted (when no '
                                   "mapping has its exact thumbprint).")]
    findings = []
    if ":" not in thumb:
        findings.append(Finding("error", "cert_thumbprint has no colons: IS compares it with the colon-separated "
                                         "form (AA:BB:…), so it never matches."))
    digits = thumb.replace(":", "")
    pairs = ":".join(digits[i:i + 2] for i in range(0, len(digits), 2))
    if len(digits) != 64:
        findings.append(Finding("error", f"cert_thumbprint has {len(digits)} hex digits; a SHA-256 thumbprint has "
                                         "64 (SHA-1 has 40): it never matches."))
    elif ":" in thumb and thumb.upper() != pairs.upper():
        findings.append(Finding("error", "cert_thumbprint has colons in the wrong places: IS compares with one "
                                         "colon between every pair (AA:BB:…), so it never matches."))
    elif ":" in thumb and thumb.upper() not in known:
        findings.append(Finding("info", "No uploaded certificate has this thumbprint."))
    if thumb != thumb.upper():
        if kind == "user" and line == cert_auth.BACKPORT:
            findings.append(Finding("error", "cert_thumbprint has lower-case letters: the 1.8.x/1.11.x backport "
                                             "compares user-mapping thumbprints case-sensitively with IS's upper-case "
                                             "form, so it never matches. Use upper case."))
        elif kind == "user":
            findings.append(Finding("warning", "cert_thumbprint has lower-case letters: master ignores case, but the "
                                               "1.8.x/1.11.x backport compares user mappings case-sensitively. Use "
                                               "upper case, as IS prints it."))
        else:
            findings.append(Finding("info", "cert_thumbprint has lower-case letters: both handler lines ignore case "
                                            "for system mappings; upper case is how IS prints it."))
    return findings


def _issuer_findings(issuer: str, names: set[str]) -> list[Finding]:
    if issuer == cert_auth.WILDCARD:
        return [Finding("error", 'trusted_issuer is "*": IS skips this mapping entirely.')]
    if not any(cert_auth.issuer_matches(issuer, name) for name in names):
        return [Finding("warning", "trusted_issuer matches the issuer or subject of no uploaded certificate (IS "
                                   "ignores order, spaces and key case, not value case). Paste the issuer from "
                                   "the certificate's page, or upload the CA.")]
    return []


def _covers(mapping: ThumbprintMapping, cert: Certificate, kind: str, line: str) -> bool:
    """Would IS consider this mapping for a call with this certificate (issuer and thumbprint or "*")?"""
    thumb = cert_auth.effective(mapping.cert_thumbprint)
    exact = kind == "user" and line == cert_auth.BACKPORT
    return (mapping.trusted_issuer.strip() != cert_auth.WILDCARD
            and cert_auth.issuer_matches(mapping.trusted_issuer, cert.issuer_dn)
            and (thumb == cert_auth.WILDCARD or cert_auth.thumbprint_equal(thumb, cert.thumbprint, exact=exact)))


def _same_target(a: ThumbprintMapping, b: ThumbprintMapping) -> bool:
    return (cert_auth.WILDCARD not in (a.trusted_issuer.strip(), b.trusted_issuer.strip())
            and cert_auth.normalize_dn(a.trusted_issuer) == cert_auth.normalize_dn(b.trusted_issuer)
            and cert_auth.effective(a.cert_thumbprint).lower() == cert_auth.effective(b.cert_thumbprint).lower())


def _lint_list(kind: str, mappings: Sequence[ThumbprintMapping], certs: Sequence[Certificate], line: str,
               admins: TenantAdmins) -> list[MappingLint]:
    names = {c.issuer_dn for c in certs} | {c.subject_dn for c in certs}
    known = {c.thumbprint for c in certs}
    apim = [c for c in certs if c.role == "apim"]
    result = []
    for index, mapping in enumerate(mappings):
        findings = _issuer_findings(mapping.trusted_issuer, names)
        findings += _thumbprint_findings(mapping.cert_thumbprint, known, kind, line)
        earlier = next((i for i in range(index) if _same_target(mappings[i], mapping)), None)
        if earlier is not None:
            findings.append(Finding("warning", f"Never chosen: #{earlier + 1} has the same issuer and thumbprint "
                                               "and comes first (IS takes the first match)."))
        if kind == "user":
            findings += _user_findings(mapping, apim, line, admins)
        else:
            findings += _system_findings(mapping)
        result.append(MappingLint(mapping, index + 1, findings))
    return result


def _user_findings(mapping: ThumbprintMapping, apim: Sequence[Certificate], line: str,
                   admins: TenantAdmins) -> list[Finding]:
    users = [u.strip() for u in mapping.allowed_usernames if u.strip()]
    findings = []
    if not users:
        findings.append(Finding("warning", 'allowed_username is empty: IS reads it as ["*"], any user.'))
        return findings
    if cert_auth.WILDCARD in users:
        exists = " (if the user exists)" if line == cert_auth.MASTER else " (this line does not check it exists)"
        findings.append(Finding("info", 'allowed_username contains "*": any user named in WSO2-Identity-User is '
                                        f"let in{exists}; this is what API Manager's per-tenant key manager users "
                                        "need."))
        return findings
    relevant = any(_covers(mapping, c, "user", line) for c in apim) if apim else True
    if relevant and admins.count:
        count, first = admins.rejected(users)
        if count:
            where = "this mapping covers API Manager's certificate" if apim else \
                "no API Manager certificate is uploaded to check which mapping applies"
            findings.append(Finding("warning", f"allowed_username lacks key manager users ({where}): "
                                               f"{_rejection_text(count, admins.count, first)}. "
                                               'Use "*" or list every <admin>@<tenant domain>.'))
    return findings


def _system_findings(mapping: ThumbprintMapping) -> list[Finding]:
    user = mapping.allowed_system_user.strip()
    if not user:
        return [Finding("warning", 'allowed_system_user is blank: IS reads it as "*": calls without '
                                   "WSO2-Identity-User run with no user.")]
    if user == cert_auth.WILDCARD:
        return [Finding("warning", 'allowed_system_user "*": calls without WSO2-Identity-User run with no user '
                                   "(anonymous server-to-server).")]
    return []


def _key_manager_findings(cert: Certificate, users: Sequence[ThumbprintMapping], line: str,
                          admins: TenantAdmins) -> Finding:
    """Would IS admit every current tenant's key manager user presenting API Manager's certificate? The mapping
    IS selects does not depend on the user, so it is chosen once; names are checked only when it lacks "*"."""
    steps: list[str] = []
    index = cert_auth._choose(rules("user"), cert.issuer_dn, cert.thumbprint, "user", steps, line)
    label = f"API Manager certificate {cert.label!r}"
    total = admins.count
    if index is None:
        return Finding("error", f"{label}: no user mapping applies to it, so every tenant's key manager user "
                                f"(<admin>@<tenant domain>, {total} current tenant(s)) gets a 401.")
    allowed = cert_auth.allowed_usernames(cert_auth.UserMapping(users[index].trusted_issuer,
                                                                users[index].cert_thumbprint,
                                                                tuple(users[index].allowed_usernames)))
    if cert_auth.WILDCARD in allowed:
        exists = (" IS also requires each admin to exist in its tenant, which IS ensures for a tenant's owner."
                  if line == cert_auth.MASTER else "")
        return Finding("info", f"{label}: user mapping #{index + 1} lets every tenant's key manager user in "
                               f'(allowed_username "*").{exists}')
    if not total:
        return Finding("warning", f"{label}: user mapping #{index + 1} lists only {', '.join(allowed)}; there are "
                                  "no tenants yet, but each new tenant's key manager calls as "
                                  "<admin>@<tenant domain> and will get a 401 unless listed.")
    count, first = admins.rejected(allowed)
    if count:
        return Finding("error", f"{label}: user mapping #{index + 1} applies; "
                                f"{_rejection_text(count, total, first)}.")
    return Finding("info", f"{label}: user mapping #{index + 1} lists every current tenant's key manager user "
                           f"({total}); a new tenant's admin must be added before it is created.")


def lint() -> LintReport:
    certs = certificates.list_certificates()
    line = handler_line()
    admins = TenantAdmins()
    users, systems = list_mappings("user"), list_mappings("system")
    general: list[Finding] = []
    if not users and not systems:
        general.append(Finding("info", "There are no mappings yet: IS answers 401 to every certificate call."))
    for cert in certs:
        if cert.role != "apim":
            continue
        general.append(_key_manager_findings(cert, users, line, admins))
        if not any(_covers(m, cert, "system", line) for m in systems):
            general.append(Finding("warning", f"API Manager certificate {cert.label!r}: no system mapping covers "
                                              "it. If API Manager's client presents it on its Basic-authenticated "
                                              "calls to IS (tenant sync), IS decides those calls with the system "
                                              "mappings alone and answers 401."))
    return LintReport(_lint_list("user", users, certs, line, admins),
                      _lint_list("system", systems, certs, line, admins), general, line, admins.count)
