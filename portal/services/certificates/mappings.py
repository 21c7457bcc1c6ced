"""IS 7's thumbprint mappings: kept in order (IS takes the first match), explained for one call, and written out
as the deployment.toml block (the lint against the uploaded certificates and the registry's tenants lives in
mapping_lint). The decisions come from services.cert_auth, on the IS handler line the administrator says IS runs (a
setting).

API Manager's auto-configured WSO2-IS-7 key manager calls IS per tenant with
`WSO2-Identity-User: <tenant admin>@<tenant domain>` (km_user)."""
from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
import tomli_w

from portal.extensions import db
from portal.models import Setting
from portal.models.certificate import MAPPING_KINDS, ThumbprintMapping
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
MAX_USERNAMES = 50
_THUMB_NOISE = re.compile(r"^\s*sha-?256\s*fingerprint\s*=|[\s:]", re.IGNORECASE)  # openssl's prefix, colons, spaces
_HEX = re.compile(r"[0-9A-Fa-f]+")
SHA256_DIGITS = 64  # IS 7 compares the SHA-256 thumbprint: 32 bytes
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
    if thumb not in ("", cert_auth.WILDCARD):
        try:
            thumb = normalise_thumbprint(thumb)
        except ValueError as exc:
            errors["cert_thumbprint"] = str(exc)
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


def normalise_thumbprint(text: str) -> str:
    """IS's form of a SHA-256 thumbprint, upper-case hex pairs joined by colons (AA:BB:…), from what an
    administrator pastes: without colons, in lower case, with spaces, or as openssl prints it. IS compares the
    stored text with that form, so anything else would never match; ValueError says why it cannot be one."""
    digits = _THUMB_NOISE.sub("", text)
    if len(text) > 255 or not _HEX.fullmatch(digits):
        raise ValueError("Use the SHA-256 thumbprint (hex pairs separated by colons, AA:BB:…), or *.")
    if len(digits) == 40:
        raise ValueError("This is a SHA-1 thumbprint (20 bytes): IS 7 compares the certificate's SHA-256 "
                         "thumbprint (32 bytes, 64 hex digits). Copy it from the certificate's page.")
    if len(digits) != SHA256_DIGITS:
        raise ValueError(f"A SHA-256 thumbprint has 64 hex digits (32 bytes); this one has {len(digits)}.")
    digits = digits.upper()
    return ":".join(digits[i:i + 2] for i in range(0, SHA256_DIGITS, 2))


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
