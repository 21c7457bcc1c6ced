"""API clients of the /v1 API: created by an administrator with the scopes they need, optionally limited to some
tenants and to a date; the key is shown once and kept as a SHA-256 digest, and can be rotated with an overlap.

Authorization happens in two places, both deny-by-default: every /v1 operation requires one scope
(portal/api/auth.py), and a client limited to some tenants sees only those: a tenant outside its limit answers
404 exactly as a tenant that does not exist, so a limited client cannot even learn which tenant ids are taken
elsewhere (registration excepted: ids are unique across the portal, so a taken id is still a 409).
"""
from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, with_loader_criteria

from portal.extensions import db
from portal.models import ApiClient, Tenant
from portal.models.api_client import SCOPES, TENANT_SCOPES
from portal.models.base import utcnow
from portal.services.admin import audit
from portal.services.context import Actor
from portal.services.errors import NotFound, ValidationError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,127}")
# fnmatch-style, on tenant ids (compared ignoring case): '*' any run, '?' one character; no [sets], so the same
# pattern is a plain SQL LIKE for the list.
PATTERN_RE = re.compile(r"[A-Za-z0-9_*?-]{1,64}")
DEFAULT_SCOPES = ("read",)
SCOPE_LABELS = {
    "read": "Read tenants and their public signing keys (GET /v1/tenant, /v1/tenant/<id>, /v1/tenant/<id>/keys)",
    "register": "Register tenants (POST /v1/tenant)",
    "update": "Change tenants: update, activate, deactivate (PUT /v1/tenant/<id>, POST .../activate, "
              ".../deactivate)",
    "secrets": "Generate a tenant's new client secret (POST /v1/tenant/<id>/client-secret)",
    "keys": "Rotate and retire tenants' signing keys (POST /v1/tenant/<id>/keys/rotate, .../keys/<kid>/retire)",
    "validate": "Validate tenants' tokens (POST /v1/token/validate)",
    "decommission": "Decommission tenants (DELETE /v1/tenant/<id>)",
}
TENANT_SCOPE_LABELS = {
    "all": "Every tenant",
    "own": "Only tenants this client registers",
    "pattern": "Only tenant ids matching a pattern",
}
MAX_OVERLAP_HOURS = 720  # 30 days
LAST_USED_RESOLUTION = timedelta(minutes=1)  # last-used is written at most this often, to spare the database
# Compared against when the app id is unknown or there is no previous key, so a miss costs the same as a hit.
_DUMMY_HASH = hashlib.sha256(b"no such client").hexdigest()


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def list_clients() -> list[ApiClient]:
    return list(db.session.execute(sa.select(ApiClient).order_by(ApiClient.created_at.desc())).scalars())


def get_client(app_id: str) -> ApiClient:
    client = db.session.execute(sa.select(ApiClient).where(ApiClient.app_id == app_id)).scalar_one_or_none()
    if client is None:
        raise NotFound("No such API client.")
    return client


# --- rules ------------------------------------------------------------------------------------------------


def _scopes(names: Iterable[str] | None) -> str:
    chosen = DEFAULT_SCOPES if names is None else tuple(dict.fromkeys(n.strip().lower() for n in names))
    unknown = [name for name in chosen if name not in SCOPES]
    if unknown:
        raise ValidationError({"scopes": f"Unknown scope {unknown[0]!r}; choose from {', '.join(SCOPES)}."})
    if not chosen:
        raise ValidationError({"scopes": "Choose at least one scope (read only is the safe start)."})
    return " ".join(name for name in SCOPES if name in chosen)


def _restriction(tenant_scope: str, pattern: str | None) -> tuple[str, str | None]:
    tenant_scope = (tenant_scope or "all").strip().lower()
    if tenant_scope not in TENANT_SCOPES:
        raise ValidationError({"tenant_scope": f"Choose one of {', '.join(TENANT_SCOPES)}."})
    pattern = (pattern or "").strip()
    if tenant_scope != "pattern":
        if pattern:
            raise ValidationError({"tenant_pattern": "A pattern only applies to \"Only tenant ids matching a "
                                                     "pattern\"; leave it blank or choose that limit."})
        return tenant_scope, None
    if not PATTERN_RE.fullmatch(pattern):
        raise ValidationError({"tenant_pattern": "Use 1 to 64 letters, digits, '_', '-', and the wildcards '*' "
                                                 "(any run of characters) and '?' (one character)."})
    if not pattern.strip("*?"):
        raise ValidationError({"tenant_pattern": "A pattern of wildcards alone matches every tenant: choose "
                                                 "\"Every tenant\" instead, or add a fixed part such as ci-*."})
    return tenant_scope, pattern.lower()


def _expiry(expires_at: datetime | None, field: str = "expires_at") -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise ValidationError({field: "Give the expiry in UTC."})
    if expires_at <= utcnow():
        raise ValidationError({field: "The expiry must be in the future."})
    return expires_at


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z") if moment else None


# --- changes ----------------------------------------------------------------------------------------------


def create_client(name: str, actor: Actor, *, scopes: Iterable[str] | None = None, tenant_scope: str = "all",
                  tenant_pattern: str | None = None,
                  expires_at: datetime | None = None) -> tuple[ApiClient, str]:
    """Returns the client and its key; the key is not stored and cannot be shown again. Scopes default to read."""
    name = (name or "").strip()
    errors: dict[str, str] = {}
    if not NAME_RE.fullmatch(name):
        errors["name"] = "Use 1 to 128 letters, digits, spaces, '.', '_' or '-'."
    checked: dict = {}
    for field, rule in (("scopes", lambda: _scopes(scopes)),
                        ("restriction", lambda: _restriction(tenant_scope, tenant_pattern)),
                        ("expires_at", lambda: _expiry(expires_at))):
        try:
            checked[field] = rule()
        except ValidationError as exc:
            errors.update(exc.errors)
    if errors:
        raise ValidationError(errors)
    limit, pattern = checked["restriction"]
    key = secrets.token_urlsafe(32)
    client = ApiClient(app_id="app_" + secrets.token_hex(8), name=name, key_hash=_digest(key),
                       created_by=actor.name[:64], scopes=checked["scopes"], tenant_scope=limit,
                       tenant_pattern=pattern, expires_at=checked["expires_at"])
    db.session.add(client)
    db.session.flush()
    audit.record(actor, "api_client.create", "api_client", client.app_id,
                 audit.diff(None, {"name": name, "app_id": client.app_id, "api_key": "set",
                                   "scopes": client.scopes, "tenants": describe_limit(client),
                                   "expires_at": _iso(client.expires_at)}))
    db.session.commit()
    return client, key


def rotate_key(app_id: str, actor: Actor, *, overlap_hours: int = 24,
               expires_at: datetime | None = None) -> tuple[ApiClient, str]:
    """A new key, returned this once. The old key keeps working for `overlap_hours` (never past its own expiry),
    so callers can switch over; a key replaced earlier stops at once. The new key expires at `expires_at`."""
    client = get_client(app_id)
    errors: dict[str, str] = {}
    if not client.active:
        errors["app_id"] = "This client is revoked; create a new one."
    if isinstance(overlap_hours, bool) or not isinstance(overlap_hours, int) \
            or not 0 <= overlap_hours <= MAX_OVERLAP_HOURS:
        errors["overlap_hours"] = f"A whole number of hours from 0 to {MAX_OVERLAP_HOURS}."
    try:
        expires_at = _expiry(expires_at)
    except ValidationError as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationError(errors)
    now = utcnow()
    overlap_end = now + timedelta(hours=overlap_hours)
    if client.expires_at is not None:
        overlap_end = min(overlap_end, client.expires_at)
    key = secrets.token_urlsafe(32)
    before = {"expires_at": _iso(client.expires_at), "previous_key_until": _iso(client.previous_key_expires_at)}
    client.previous_key_hash = client.key_hash if overlap_end > now else None
    client.previous_key_expires_at = overlap_end if overlap_end > now else None
    client.key_hash, client.key_rotated_at, client.expires_at = _digest(key), now, expires_at
    audit.record(actor, "api_client.rotate", "api_client", client.app_id,
                 {"api_key": {"before": "set", "after": "replaced"}, **audit.diff(before, {
                     "expires_at": _iso(client.expires_at),
                     "previous_key_until": _iso(client.previous_key_expires_at)})})
    db.session.commit()
    return client, key


def revoke_client(app_id: str, actor: Actor) -> ApiClient:
    client = get_client(app_id)
    if client.revoked_at is None:
        client.revoked_at = utcnow()
        audit.record(actor, "api_client.revoke", "api_client", client.app_id,
                     {"status": {"before": "active", "after": "revoked"}})
        db.session.commit()
    return client


def describe_limit(client: ApiClient | CallingClient) -> str:
    if client.tenant_scope == "own":
        return "tenants it registered"
    if client.tenant_scope == "pattern":
        return f"tenant ids matching {client.tenant_pattern}"
    return "every tenant"


# --- the hot path: authenticate every /v1 call ------------------------------------------------------------


@dataclass(frozen=True)
class CallingClient:
    """The API client a request authenticated as: what authorization and the audit trail need, no ORM object."""

    id: int
    app_id: str
    scopes: frozenset[str]
    tenant_scope: str = "all"
    tenant_pattern: str | None = None

    @property
    def limited(self) -> bool:
        return self.tenant_scope != "all"


@dataclass(frozen=True)
class Refusal:
    """Why the headers were refused; `detail` is only specific once the caller proved it holds the key."""

    reason: str  # "invalid", "expired", "rotated"
    detail: str


INVALID = Refusal("invalid", "The X-API-AppId and X-API-Key headers do not name an active API client: the app id is "
                             "unknown, the key is wrong, or the client was revoked.")

# Built once and run on the Core connection: every /v1 call starts here, with this one query.
_BY_APP_ID = sa.select(
    ApiClient.id, ApiClient.app_id, ApiClient.key_hash, ApiClient.revoked_at, ApiClient.last_used_at,
    ApiClient.scopes, ApiClient.tenant_scope, ApiClient.tenant_pattern, ApiClient.expires_at,
    ApiClient.previous_key_hash, ApiClient.previous_key_expires_at,
).where(ApiClient.app_id == sa.bindparam("app_id"))


def authenticate(app_id: str | None, key: str | None) -> CallingClient | Refusal:
    """The active client these headers name, or why not. Constant-time on the key, current or previous."""
    if not app_id or not key or len(app_id) > 64 or len(key) > 256:
        return INVALID
    row = db.session.connection().execute(_BY_APP_ID, {"app_id": app_id}).first()
    digest = _digest(key)
    current = hmac.compare_digest(row.key_hash if row is not None else _DUMMY_HASH, digest)
    previous = hmac.compare_digest((row.previous_key_hash if row is not None else None) or _DUMMY_HASH, digest)
    if row is None or row.revoked_at is not None or not (current or previous):
        return INVALID
    now = utcnow()
    if current and row.expires_at is not None and row.expires_at <= now:
        return Refusal("expired", f"This API client's key expired at {_iso(row.expires_at)}. An administrator can "
                                  "rotate the key (API clients page, or flask rotate-api-client-key).")
    if not current and (row.previous_key_expires_at is None or row.previous_key_expires_at <= now):
        return Refusal("rotated", "This key was replaced by a rotation and its overlap ended at "
                                  f"{_iso(row.previous_key_expires_at)}; use the new key.")
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        db.session.execute(sa.update(ApiClient).where(ApiClient.id == row.id).values(last_used_at=now))
        db.session.commit()
    return CallingClient(row.id, row.app_id, frozenset(row.scopes.split()), row.tenant_scope, row.tenant_pattern)


# --- tenant limits ----------------------------------------------------------------------------------------


def permits_tenant(client: CallingClient, tenant_id: str) -> bool:
    """May this client see or change this tenant? A tenant that does not exist is 'not permitted' too: the caller
    answers both with the same 404."""
    if not client.limited:
        return True
    key = str(tenant_id).strip().lower()
    if client.tenant_scope == "pattern":
        return fnmatch.fnmatchcase(key, client.tenant_pattern or "")
    owner = db.session.execute(sa.select(Tenant.registered_by_client_id).where(Tenant.tenant_key == key)).first()
    return owner is not None and owner[0] == client.id


def may_register(client: CallingClient, tenant_id: object) -> bool:
    """A pattern-limited client registers only ids its pattern matches; other clients any id (then it is theirs)."""
    if client.tenant_scope != "pattern" or not isinstance(tenant_id, str):
        return True  # a missing or malformed id is the registration's own 400
    return fnmatch.fnmatchcase(tenant_id.strip().lower(), client.tenant_pattern or "")


def _criterion(client: CallingClient) -> sa.ColumnElement[bool]:
    if client.tenant_scope == "own":
        return Tenant.registered_by_client_id == client.id
    like = (client.tenant_pattern or "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return Tenant.tenant_key.like(like.replace("*", "%").replace("?", "_"), escape="\\")


_LIMIT_KEY = "api_client.tenant_limit"
_REGISTRAR_KEY = "api_client.registrar"


@contextlib.contextmanager
def tenants_visible_to(client: CallingClient) -> Iterator[None]:
    """Inside the block every ORM query of tenants in this session sees only what the client may: the list's
    keyset paging and counts stay right because the limit is part of the WHERE clause."""
    if not client.limited:
        yield
        return
    db.session.info[_LIMIT_KEY] = _criterion(client)
    try:
        yield
    finally:
        db.session.info.pop(_LIMIT_KEY, None)


@contextlib.contextmanager
def registering_as(client: CallingClient) -> Iterator[None]:
    """Tenants first flushed inside the block record this client as their registrar, in the same transaction."""
    db.session.info[_REGISTRAR_KEY] = client.id
    try:
        yield
    finally:
        db.session.info.pop(_REGISTRAR_KEY, None)


@sa.event.listens_for(Session, "do_orm_execute")
def _limit_tenants(state) -> None:
    criterion = state.session.info.get(_LIMIT_KEY)
    if criterion is not None and state.is_select:
        state.statement = state.statement.options(with_loader_criteria(Tenant, criterion, include_aliases=True))


@sa.event.listens_for(Session, "before_flush")
def _stamp_registrar(session, _context, _instances) -> None:
    client_id = session.info.get(_REGISTRAR_KEY)
    if client_id is None:
        return
    for obj in session.new:
        if isinstance(obj, Tenant) and obj.registered_by_client_id is None:
            obj.registered_by_client_id = client_id
