"""API clients of the /v1 API: created by an administrator, key shown once and kept as a SHA-256 digest."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from portal.extensions import db
from portal.models import ApiClient
from portal.models.base import utcnow
from portal.services import audit
from portal.services.context import Actor
from portal.services.errors import NotFound, ValidationError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,127}")
LAST_USED_RESOLUTION = timedelta(minutes=1)  # last-used is written at most this often, to spare the database
# Compared against when the app id is unknown, so a miss costs the same as a hit.
_DUMMY_HASH = hashlib.sha256(b"no such client").hexdigest()


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def list_clients() -> list[ApiClient]:
    return list(db.session.execute(sa.select(ApiClient).order_by(ApiClient.created_at.desc())).scalars())


def create_client(name: str, actor: Actor) -> tuple[ApiClient, str]:
    """Returns the client and its key; the key is not stored and cannot be shown again."""
    name = (name or "").strip()
    if not NAME_RE.fullmatch(name):
        raise ValidationError({"name": "Use 1 to 128 letters, digits, spaces, '.', '_' or '-'."})
    key = secrets.token_urlsafe(32)
    client = ApiClient(app_id="app_" + secrets.token_hex(8), name=name, key_hash=_digest(key),
                       created_by=actor.name[:64])
    db.session.add(client)
    db.session.flush()
    audit.record(actor, "api_client.create", "api_client", client.app_id,
                 audit.diff(None, {"name": name, "app_id": client.app_id, "api_key": "set"}))
    db.session.commit()
    return client, key


def revoke_client(app_id: str, actor: Actor) -> ApiClient:
    client = db.session.execute(sa.select(ApiClient).where(ApiClient.app_id == app_id)).scalar_one_or_none()
    if client is None:
        raise NotFound("No such API client.")
    if client.revoked_at is None:
        client.revoked_at = utcnow()
        audit.record(actor, "api_client.revoke", "api_client", client.app_id,
                     {"status": {"before": "active", "after": "revoked"}})
        db.session.commit()
    return client


@dataclass(frozen=True)
class CallingClient:
    """The API client a request authenticated as: what the audit trail needs, without an ORM object."""

    id: int
    app_id: str


# Built once and run on the Core connection: every /v1 call starts here.
_BY_APP_ID = sa.select(ApiClient.id, ApiClient.app_id, ApiClient.key_hash, ApiClient.revoked_at,
                       ApiClient.last_used_at).where(ApiClient.app_id == sa.bindparam("app_id"))


def authenticate(app_id: str | None, key: str | None) -> CallingClient | None:
    """The active client these headers name, or None. Constant-time on the key."""
    if not app_id or not key or len(app_id) > 64 or len(key) > 256:
        return None
    row = db.session.connection().execute(_BY_APP_ID, {"app_id": app_id}).first()
    expected = row.key_hash if row is not None else _DUMMY_HASH
    if not hmac.compare_digest(expected, _digest(key)) or row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        db.session.execute(sa.update(ApiClient).where(ApiClient.id == row.id).values(last_used_at=now))
        db.session.commit()
    return CallingClient(row.id, row.app_id)
