"""Audit trail: field-level diffs with secrets redacted, added to the caller's transaction."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from portal.extensions import db
from portal.models import AuditEvent
from portal.models.base import MAX_ID
from portal.services.context import Actor

REDACTED = "[redacted]"
# A safety net: any field named like a secret is redacted even if the caller forgot to say so.
_SECRET_NAME = re.compile(r"(password|secret|signing_?key|private_?key|api_?key|token|passphrase)(_?hash)?$", re.I)


def is_secret_field(name: str, secret_fields: frozenset[str] | set[str] = frozenset()) -> bool:
    return name in secret_fields or bool(_SECRET_NAME.search(name))


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None, secret_fields=frozenset()) -> dict:
    """{field: {"before": x, "after": y}} for changed fields; secrets become {"changed": true} only."""
    before, after = before or {}, after or {}
    changes: dict[str, dict] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if is_secret_field(name, secret_fields):
            changes[name] = {"before": REDACTED if old is not None else None,
                             "after": REDACTED if new is not None else None}
        else:
            changes[name] = {"before": old, "after": new}
    return changes


def record(actor: Actor, action: str, object_type: str, object_id: str | int | None,
           changes: dict | None = None) -> AuditEvent:
    """Add an audit event to the current transaction; the calling service commits it with the change."""
    event = AuditEvent(
        actor=actor.name[:64], actor_id=actor.id, action=action, object_type=object_type,
        object_id=None if object_id is None else str(object_id), changes=changes or {},
        request_id=actor.request_id, ip=actor.ip,
    )
    db.session.add(event)
    return event


@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    action: str = ""
    object_type: str = ""
    object_id: str = ""
    since: datetime | None = None
    until: datetime | None = None


@dataclass
class AuditPage:
    events: list[AuditEvent]
    next_before: int | None  # keyset cursor for the next (older) page


def search(flt: AuditFilter, before: int | None = None, limit: int = 50) -> AuditPage:
    """Newest first, keyset-paginated by id so deep pages cost the same as the first."""
    q = sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if flt.actor:
        q = q.where(AuditEvent.actor == flt.actor.strip().lower())
    if flt.action:
        q = q.where(AuditEvent.action.startswith(flt.action.strip(), autoescape=True))
    if flt.object_type:
        q = q.where(AuditEvent.object_type == flt.object_type)
    if flt.object_id:
        q = q.where(AuditEvent.object_id == flt.object_id.strip())
    if flt.since:
        q = q.where(AuditEvent.at >= flt.since)
    if flt.until:
        q = q.where(AuditEvent.at < flt.until)
    if before and abs(before) <= MAX_ID:  # a cursor out of the id column's range is none the portal handed out
        q = q.where(AuditEvent.id < before)
    rows = list(db.session.execute(q).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(events=rows, next_before=rows[-1].id if more and rows else None)


def object_types() -> list[str]:
    query = sa.select(AuditEvent.object_type).distinct().order_by(AuditEvent.object_type)
    return list(db.session.execute(query).scalars())
