"""IS 7's thumbprint mappings: kept in order (IS takes the first match), linted against the uploaded
certificates, explained for one call, and written out as the deployment.toml block. The decisions themselves come
from services.cert_auth, the one implementation of IS's algorithm."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
import tomli_w

from portal.extensions import db
from portal.models import Setting
from portal.models.certificate import MAPPING_KINDS, Certificate, ThumbprintMapping
from portal.services import audit, cert_auth, certificates
from portal.services.certificates import CertificateInfo
from portal.services.context import Actor
from portal.services.errors import NotFound, ValidationError

KM_USERNAME_KEY = "mtls.key_manager_username"
DEFAULT_KM_USERNAME = "admin"
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


def prefill_from_certificate(cert_id: int, kind: str) -> MappingInput:
    """A mapping for calls presenting this certificate: its issuer as Java prints it and its thumbprint; the key
    manager's mTLS user as the allowed user."""
    cert = certificates.get_certificate(cert_id)
    user = km_username()
    return MappingInput(trusted_issuer=cert.issuer_dn, cert_thumbprint=cert.thumbprint,
                        allowed_usernames=(user,) if kind == "user" else (),
                        allowed_system_user=user if kind == "system" else "")


def rules(kind: str) -> list[cert_auth.UserMapping] | list[cert_auth.SystemMapping]:
    if kind == "user":
        return [cert_auth.UserMapping(m.trusted_issuer, m.cert_thumbprint, tuple(m.allowed_usernames))
                for m in list_mappings("user")]
    return [cert_auth.SystemMapping(m.trusted_issuer, m.cert_thumbprint, m.allowed_system_user)
            for m in list_mappings("system")]


# ---------------------------------------------------------------------------------------------------------------
# The key manager's mutual-TLS user: API Manager's WSO2-IS-7 key manager calls IS as this user.

def km_username() -> str:
    setting = db.session.get(Setting, KM_USERNAME_KEY)
    return setting.value if setting is not None and isinstance(setting.value, str) else DEFAULT_KM_USERNAME


def set_km_username(value: str, actor: Actor) -> str:
    value = (value or "").strip()
    if not value or len(value) > 255 or _CONTROL.search(value) or "," in value or " " in value:
        raise ValidationError({"username": "Enter the username API Manager's key manager sends in "
                                           "WSO2-Identity-User (no spaces or commas, at most 255 characters)."})
    before = km_username()
    setting = db.session.get(Setting, KM_USERNAME_KEY)
    if setting is None:
        setting = Setting(key=KM_USERNAME_KEY)
        db.session.add(setting)
    setting.value = value
    if before != value:
        audit.record(actor, "setting.update", "setting", KM_USERNAME_KEY,
                     {"value": {"before": before, "after": value}})
    db.session.commit()
    return value


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
    km_username: str

    @property
    def problems(self) -> int:
        return sum(1 for m in self.user + self.system for f in m.findings if f.level != "info") + sum(
            1 for f in self.general if f.level != "info")


def _thumbprint_findings(thumb: str, known: set[str]) -> list[Finding]:
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
        findings.append(Finding("warning", "cert_thumbprint has lower-case letters: current IS 7 ignores case, but "
                                           "some auth-rest versions compared user mappings case-sensitively. Use "
                                           "upper case, as IS prints it."))
    return findings


def _issuer_findings(issuer: str, names: set[str]) -> list[Finding]:
    if issuer == cert_auth.WILDCARD:
        return [Finding("error", 'trusted_issuer is "*": IS skips this mapping entirely.')]
    if not any(cert_auth.issuer_matches(issuer, name) for name in names):
        return [Finding("warning", "trusted_issuer matches the issuer or subject of no uploaded certificate (IS "
                                   "ignores order, spaces and key case, not value case). Paste the issuer from "
                                   "the certificate's page, or upload the CA.")]
    return []


def _covers(mapping: ThumbprintMapping, cert: Certificate) -> bool:
    """Would IS consider this mapping for a call with this certificate (issuer and thumbprint or "*")?"""
    thumb = cert_auth.effective(mapping.cert_thumbprint)
    return (mapping.trusted_issuer.strip() != cert_auth.WILDCARD
            and cert_auth.issuer_matches(mapping.trusted_issuer, cert.issuer_dn)
            and (thumb == cert_auth.WILDCARD or cert_auth.thumbprint_equal(thumb, cert.thumbprint)))


def _same_target(a: ThumbprintMapping, b: ThumbprintMapping) -> bool:
    return (cert_auth.WILDCARD not in (a.trusted_issuer.strip(), b.trusted_issuer.strip())
            and cert_auth.normalize_dn(a.trusted_issuer) == cert_auth.normalize_dn(b.trusted_issuer)
            and cert_auth.effective(a.cert_thumbprint).lower() == cert_auth.effective(b.cert_thumbprint).lower())


def _lint_list(kind: str, mappings: Sequence[ThumbprintMapping], certs: Sequence[Certificate],
               km_user: str) -> list[MappingLint]:
    names = {c.issuer_dn for c in certs} | {c.subject_dn for c in certs}
    known = {c.thumbprint for c in certs}
    apim = [c for c in certs if c.role == "apim"]
    result = []
    for index, mapping in enumerate(mappings):
        findings = _issuer_findings(mapping.trusted_issuer, names)
        findings += _thumbprint_findings(mapping.cert_thumbprint, known)
        earlier = next((i for i in range(index) if _same_target(mappings[i], mapping)), None)
        if earlier is not None:
            findings.append(Finding("warning", f"Never chosen: #{earlier + 1} has the same issuer and thumbprint "
                                               "and comes first (IS takes the first match)."))
        if kind == "user":
            findings += _user_findings(mapping, apim, km_user)
        else:
            findings += _system_findings(mapping)
        result.append(MappingLint(mapping, index + 1, findings))
    return result


def _user_findings(mapping: ThumbprintMapping, apim: Sequence[Certificate], km_user: str) -> list[Finding]:
    users = [u for u in mapping.allowed_usernames if u.strip()]
    findings = []
    if not users:
        findings.append(Finding("warning", 'allowed_username is empty: IS reads it as ["*"], any user.'))
    elif cert_auth.WILDCARD in users:
        findings.append(Finding("warning", 'allowed_username contains "*": any user named in WSO2-Identity-User '
                                           "is let in (if the user exists)."))
    allowed = {u.lower() for u in users} or {cert_auth.WILDCARD}
    relevant = any(_covers(mapping, c) for c in apim) if apim else True
    if relevant and cert_auth.WILDCARD not in allowed and km_user.lower() not in allowed:
        where = "this mapping covers API Manager's certificate" if apim else "no API Manager certificate is uploaded"
        findings.append(Finding("warning", f"allowed_username lacks the key manager's mutual-TLS user {km_user!r} "
                                           f"({where}): API Manager's calls as that user get a 401."))
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


def lint() -> LintReport:
    certs = certificates.list_certificates()
    km_user = km_username()
    users, systems = list_mappings("user"), list_mappings("system")
    general: list[Finding] = []
    if not users and not systems:
        general.append(Finding("info", "There are no mappings yet: IS answers 401 to every certificate call."))
    user_rules, system_rules = rules("user"), rules("system")
    for cert in certs:
        if cert.role != "apim":
            continue
        decision = cert_auth.evaluate(cert.issuer_dn, cert.thumbprint, km_user, user_rules, system_rules)
        level = "info" if decision.ok else "error"
        general.append(Finding(level, f"API Manager certificate {cert.label!r} calling as {km_user!r}: "
                                      f"{decision.reason}"))
    return LintReport(_lint_list("user", users, certs, km_user), _lint_list("system", systems, certs, km_user),
                      general, km_user)


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


def explain(cert_id: int | None, pem: str, user: str | None) -> Explanation:
    """How IS 7 decides a call presenting this certificate with this WSO2-Identity-User (None: no header)."""
    notes = []
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
    user = (user or "").strip() or None
    if user is not None and (len(user) > 255 or _CONTROL.search(user)):
        raise ValidationError({"user": "Use one line of at most 255 characters."})
    info = certificates.describe(cert)
    if info.validity in ("expired", "not yet valid"):
        notes.append(f"This certificate is {info.validity}: the TLS handshake fails before IS looks at mappings.")
    decision = cert_auth.evaluate(info.issuer, info.thumbprint, user, rules("user"), rules("system"))
    if decision.ok and decision.user is not None:
        notes.append(f"IS also requires {decision.user!r} to exist in its tenant "
                     f"({cert_auth.tenant_of(decision.user)}); the portal cannot see IS's user stores.")
    mapping = None
    if decision.mapping_index is not None:
        mapping = list_mappings(decision.kind)[decision.mapping_index]
    return Explanation(info, source, user, decision, mapping, notes)


# ---------------------------------------------------------------------------------------------------------------
# deployment.toml.

def deployment_toml(log_client_cert_info: bool = False) -> str:
    """IS 7's `[client_certificate_based_authentication]` block with every mapping in order, written by tomli_w
    (DNs hold quotes, backslashes and commas: never assemble TOML from strings)."""
    section: dict = {"enable": True}
    if log_client_cert_info:
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
