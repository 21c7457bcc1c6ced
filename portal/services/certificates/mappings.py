"""IS 7's thumbprint mappings: kept in order (IS takes the first match), linted against the uploaded
certificates and the registry's tenants, explained for one call, and written out as the deployment.toml block.
The decisions come from services.cert_auth, on the IS handler line the administrator says IS runs (a setting).

API Manager's auto-configured WSO2-IS-7 key manager calls IS per tenant with
`WSO2-Identity-User: <tenant admin>@<tenant domain>`: the lint models every current tenant's admin that way."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
import tomli_w

from portal.extensions import db
from portal.models import Setting
from portal.models.certificate import MAPPING_KINDS, Certificate, ThumbprintMapping
from portal.models.tenant import Tenant
from portal.services.admin import audit
from portal.services.certificates import cert_auth, service as certificates
from portal.services.certificates.service import CertificateInfo
from portal.services.context import Actor
from portal.services.errors import NotFound, ValidationError

HANDLER_LINE_KEY = "mtls.handler_line"
HANDLER_LINES = {
    cert_auth.MASTER: "master (IS 7.x with auth-rest 1.9.38+)",
    cert_auth.BACKPORT: "1.8.x/1.11.x backport",
}
SHOWN_TENANTS = 5  # tenants named in a lint finding; the rest are counted
MAX_USERNAMES = 50
_HEX_COLONS = re.compile(r"[0-9A-Fa-f:]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TOML_SECTION = "client_certificate_based_authentication"


@dataclass(frozen=True)
class MappingInput:
    trusted_issuer: str
    cert_thumbprint: str = ""
    allowed_usernames: tuple[str, ...] = ()  # user mappings
    allowed_system_user: str = ""  # system mappings


def split_usernames(text: str) -> tuple[str, ...]:
    """A textarea's usernames: one per line or separated by commas."""
    return tuple(part.strip() for part in re.split(r"[,\n]", text or "") if part.strip())


# ---------------------------------------------------------------------------------------------------------------
# CRUD and order.

def _ordered(kind: str):
    return sa.select(ThumbprintMapping).where(ThumbprintMapping.kind == kind).order_by(
        ThumbprintMapping.position, ThumbprintMapping.id)


def list_mappings(kind: str) -> list[ThumbprintMapping]:
    return list(db.session.execute(_ordered(kind)).scalars())


def get_mapping(mapping_id: int) -> ThumbprintMapping:
    mapping = db.session.get(ThumbprintMapping, mapping_id)
    if mapping is None:
        raise NotFound(f"No thumbprint mapping with id {mapping_id}.")
    return mapping


def _clean(kind: str, data: MappingInput) -> MappingInput:
    """Shape and sanity only: anything IS would read but misinterpret is allowed and reported by `lint`."""
    if kind not in MAPPING_KINDS:
        raise ValidationError({"kind": "Choose a user or a system mapping."})
    errors: dict[str, str] = {}
    issuer = (data.trusted_issuer or "").strip()
    if not issuer:
        errors["trusted_issuer"] = "Enter the issuer DN, as shown on the certificate's page."
    elif len(issuer) > 1024 or _CONTROL.search(issuer):
        errors["trusted_issuer"] = "Use one line of at most 1024 characters."
    thumb = (data.cert_thumbprint or "").strip()
    if thumb not in ("", cert_auth.WILDCARD) and (len(thumb) > 255 or not _HEX_COLONS.fullmatch(thumb)):
        errors["cert_thumbprint"] = "Use the SHA-256 thumbprint (hex pairs separated by colons, AA:BB:…), or *."
    users: list[str] = []
    system_user = ""
    if kind == "user":
        for name in data.allowed_usernames:
            name = name.strip()
            if len(name) > 255 or _CONTROL.search(name) or "," in name:
                errors["allowed_usernames"] = "Each username is one line of at most 255 characters, without commas."
            elif name and name.lower() not in {u.lower() for u in users}:
                users.append(name)
        if len(users) > MAX_USERNAMES:
            errors["allowed_usernames"] = f"Use at most {MAX_USERNAMES} usernames."
    else:
        system_user = (data.allowed_system_user or "").strip()
        if len(system_user) > 255 or _CONTROL.search(system_user):
            errors["allowed_system_user"] = "Use one line of at most 255 characters."
    if errors:
        raise ValidationError(errors)
    return MappingInput(issuer, thumb, tuple(users), system_user)


def _snapshot(mapping: ThumbprintMapping) -> dict:
    values = {"kind": mapping.kind, "position": mapping.position, "trusted_issuer": mapping.trusted_issuer,
              "cert_thumbprint": mapping.cert_thumbprint}
    if mapping.kind == "user":
        values["allowed_username"] = list(mapping.allowed_usernames)
    else:
        values["allowed_system_user"] = mapping.allowed_system_user
    return values


def create_mapping(kind: str, data: MappingInput, actor: Actor) -> ThumbprintMapping:
    """Appended at the end of its list: IS tries it after every existing one."""
    clean = _clean(kind, data)
    last = db.session.execute(sa.select(sa.func.max(ThumbprintMapping.position)).where(
        ThumbprintMapping.kind == kind)).scalar()
    mapping = ThumbprintMapping(kind=kind, position=(last or 0) + 1, trusted_issuer=clean.trusted_issuer,
                                cert_thumbprint=clean.cert_thumbprint, allowed_usernames=list(clean.allowed_usernames),
                                allowed_system_user=clean.allowed_system_user)
    db.session.add(mapping)
    db.session.flush()
    audit.record(actor, "thumbprint_mapping.create", "thumbprint_mapping", mapping.id,
                 audit.diff(None, _snapshot(mapping)))
    db.session.commit()
    return mapping


def update_mapping(mapping_id: int, data: MappingInput, actor: Actor) -> ThumbprintMapping:
    mapping = get_mapping(mapping_id)
    clean = _clean(mapping.kind, data)
    before = _snapshot(mapping)
    mapping.trusted_issuer = clean.trusted_issuer
    mapping.cert_thumbprint = clean.cert_thumbprint
    mapping.allowed_usernames = list(clean.allowed_usernames)
    mapping.allowed_system_user = clean.allowed_system_user
    changes = audit.diff(before, _snapshot(mapping))
    if changes:
        audit.record(actor, "thumbprint_mapping.update", "thumbprint_mapping", mapping.id, changes)
    db.session.commit()
    return mapping


def delete_mapping(mapping_id: int, actor: Actor) -> ThumbprintMapping:
    mapping = get_mapping(mapping_id)
    audit.record(actor, "thumbprint_mapping.delete", "thumbprint_mapping", mapping.id,
                 audit.diff(_snapshot(mapping), None))
    db.session.delete(mapping)
    db.session.commit()
    return mapping


def move_mapping(mapping_id: int, offset: int, actor: Actor) -> bool:
    """Swap with the neighbour above (offset -1) or below (+1). False when already first / last."""
    mapping = get_mapping(mapping_id)
    ordered = list_mappings(mapping.kind)
    index = next(i for i, m in enumerate(ordered) if m.id == mapping.id)
    target = index + offset
    if offset not in (-1, 1) or not 0 <= target < len(ordered):
        return False
    # Renumber the whole list: positions stay distinct even if gaps or ties crept in.
    ordered[index], ordered[target] = ordered[target], ordered[index]
    for position, item in enumerate(ordered, start=1):
        item.position = position
    audit.record(actor, "thumbprint_mapping.move", "thumbprint_mapping", mapping.id,
                 {"order": {"before": index + 1, "after": target + 1}})
    db.session.commit()
    return True


PREFILL_NOTES = {
    "user": ('allowed_username is prefilled with "*": API Manager\'s auto-configured key manager calls IS as each '
             "tenant's admin (<admin>@<tenant domain>), one user per tenant, so a list of names would have to grow "
             "with every tenant (the WSO2 sample uses \"*\" too). The certificate and its issuer still limit who "
             "may call."),
    "system": ("allowed_system_user is prefilled with admin: calls presenting this certificate without "
               "WSO2-Identity-User (e.g. API Manager's tenant sync, if its client presents the certificate) run "
               "as the super tenant's admin, who holds the tenant-management permissions."),
}


def prefill_from_certificate(cert_id: int, kind: str) -> MappingInput:
    """A mapping for calls presenting this certificate: its issuer as Java prints it and its thumbprint; "*" as
    the allowed user (every tenant's key manager user), admin as the system user. PREFILL_NOTES say why."""
    cert = certificates.get_certificate(cert_id)
    return MappingInput(trusted_issuer=cert.issuer_dn, cert_thumbprint=cert.thumbprint,
                        allowed_usernames=(cert_auth.WILDCARD,) if kind == "user" else (),
                        allowed_system_user="admin" if kind == "system" else "")


def rules(kind: str) -> list[cert_auth.UserMapping] | list[cert_auth.SystemMapping]:
    if kind == "user":
        return [cert_auth.UserMapping(m.trusted_issuer, m.cert_thumbprint, tuple(m.allowed_usernames))
                for m in list_mappings("user")]
    return [cert_auth.SystemMapping(m.trusted_issuer, m.cert_thumbprint, m.allowed_system_user)
            for m in list_mappings("system")]


# ---------------------------------------------------------------------------------------------------------------
# The IS handler line: which ClientCertificateBasedAuthenticationHandler the administrator's IS runs.

def handler_line() -> str:
    setting = db.session.get(Setting, HANDLER_LINE_KEY)
    value = setting.value if setting is not None else None
    return value if value in HANDLER_LINES else cert_auth.MASTER


def set_handler_line(value: str, actor: Actor) -> str:
    value = (value or "").strip()
    if value not in HANDLER_LINES:
        raise ValidationError({"line": "Choose master (IS 7.x with auth-rest 1.9.38+) or the 1.8.x/1.11.x "
                                       "backport."})
    before = handler_line()
    setting = db.session.get(Setting, HANDLER_LINE_KEY)
    if setting is None:
        setting = Setting(key=HANDLER_LINE_KEY)
        db.session.add(setting)
    setting.value = value
    if before != value:
        audit.record(actor, "setting.update", "setting", HANDLER_LINE_KEY,
                     {"value": {"before": before, "after": value}})
    db.session.commit()
    return value


# ---------------------------------------------------------------------------------------------------------------
# The key manager's users: one per tenant, <owner>@<domain>.

def km_user(owner_username: str, domain: str) -> str:
    """The WSO2-Identity-User API Manager's auto-configured key manager sends for a tenant (IdentityUser)."""
    return f"{owner_username}@{domain}"


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


# ---------------------------------------------------------------------------------------------------------------
# Explain a call.

@dataclass
class Explanation:
    certificate: CertificateInfo
    source: str  # the uploaded certificate's label, or "pasted PEM"
    user: str | None
    decision: cert_auth.Decision
    mapping: ThumbprintMapping | None
    notes: list[str]
    line: str = cert_auth.MASTER
    tenant: str | None = None  # the tenant whose key manager user was modelled

    @property
    def line_label(self) -> str:
        return HANDLER_LINES[self.line]


def _key_manager_user_of(domain: str) -> str:
    """The tenant's key manager user, <owner>@<domain>, from the registry."""
    domain = domain.strip().lower()
    row = db.session.execute(sa.select(Tenant.owner_username, Tenant.domain).where(Tenant.domain == domain)).first()
    if row is None:
        raise ValidationError({"tenant": f"No tenant with the domain {domain!r} in the registry."})
    if not row.owner_username:
        raise ValidationError({"tenant": "This tenant has no owner: API Manager's key manager would call IS as "
                                         "<owner>@<domain>, so there is no user to model. Add the owner first."})
    return km_user(row.owner_username, row.domain)


def explain(cert_id: int | None, pem: str, user: str | None, tenant: str | None = None) -> Explanation:
    """How IS 7 decides a call presenting this certificate with this WSO2-Identity-User (None: no header), on the
    configured handler line. `tenant` (a domain) models that tenant's key manager: user <owner>@<domain>."""
    notes = []
    tenant = (tenant or "").strip() or None
    if tenant is not None and (user or "").strip():
        raise ValidationError({"tenant": "Give either a WSO2-Identity-User or a tenant, not both."})
    if (pem or "").strip():
        certs = certificates.parse_certificates(pem.strip().encode(), field_name="pem")
        cert, source = certs[0], "pasted PEM"
        if len(certs) > 1:
            notes.append("The PEM holds several certificates; IS reads only the first (the client's own).")
    elif cert_id:
        stored = certificates.get_certificate(cert_id)
        cert, source = certificates.load(stored), stored.label
    else:
        raise ValidationError({"certificate": "Choose an uploaded certificate or paste a PEM certificate."})
    if tenant is not None:
        if len(tenant) > 253 or _CONTROL.search(tenant):
            raise ValidationError({"tenant": "Use a tenant domain of at most 253 characters."})
        user = _key_manager_user_of(tenant)
        notes.append(f"Modelled as API Manager's auto-configured key manager of {tenant.lower()}: it calls IS with "
                     f"WSO2-Identity-User: {user} (the tenant's admin, then @, then its domain).")
    user = (user or "").strip() or None
    if user is not None and (len(user) > 255 or _CONTROL.search(user)):
        raise ValidationError({"user": "Use one line of at most 255 characters."})
    info = certificates.describe(cert)
    if info.validity in ("expired", "not yet valid"):
        notes.append(f"This certificate is {info.validity}: the TLS handshake fails before IS looks at mappings.")
    line = handler_line()
    decision = cert_auth.evaluate(info.issuer, info.thumbprint, user, rules("user"), rules("system"), line=line)
    if decision.ok and decision.user is not None:
        if line == cert_auth.MASTER:
            notes.append(f"On the master line IS also requires {decision.user!r} to exist in its tenant "
                         f"({cert_auth.tenant_of(decision.user)}); the portal cannot see IS's user stores. A "
                         "tenant's owner exists in IS once the tenant is created there.")
        else:
            notes.append(f"The 1.8.x/1.11.x backport does not check that {decision.user!r} exists: IS lets the "
                         "call in as this name even if no such user is in the tenant.")
    mapping = None
    if decision.mapping_index is not None:
        mapping = list_mappings(decision.kind)[decision.mapping_index]
    return Explanation(info, source, user, decision, mapping, notes, line, tenant.lower() if tenant else None)


# ---------------------------------------------------------------------------------------------------------------
# deployment.toml.

LOG_INFO_NOTES = {
    cert_auth.MASTER: ("log_client_cert_info is left out: the master handler line (auth-rest 1.9.38+) never reads "
                       "LogClientCertInfoEnabled, so the line would do nothing."),
    cert_auth.BACKPORT: ("The 1.8.x/1.11.x backport reads log_client_cert_info (LogClientCertInfoEnabled) and then "
                         "logs every client certificate it sees."),
}


def deployment_toml(log_client_cert_info: bool = False, line: str | None = None) -> str:
    """IS 7's `[client_certificate_based_authentication]` block with every mapping in order, written by tomli_w
    (DNs hold quotes, backslashes and commas: never assemble TOML from strings). `enable = true` always (master
    is off without it); `log_client_cert_info` only on the backport line, the only one that reads it."""
    line = line or handler_line()
    section: dict = {"enable": True}
    if log_client_cert_info and line == cert_auth.BACKPORT:
        section["log_client_cert_info"] = True
    users = [{"trusted_issuer": m.trusted_issuer, "cert_thumbprint": m.cert_thumbprint,
              "allowed_username": list(m.allowed_usernames)} for m in list_mappings("user")]
    systems = [{"trusted_issuer": m.trusted_issuer, "cert_thumbprint": m.cert_thumbprint,
                "allowed_system_user": m.allowed_system_user} for m in list_mappings("system")]
    if users:
        section["user_thumbprint_mapping"] = users
    if systems:
        section["system_thumbprint_mapping"] = systems
    return tomli_w.dumps({TOML_SECTION: section})
