"""Audit trail: field-level diffs with secrets redacted, added to the caller's transaction."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from portal.extensions import db
from portal.models import AdminUser, ApiClient, AuditEvent, BulkJob, Certificate, Tenant, ThumbprintMapping
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
    existing: set[tuple[str, str]] = field(default_factory=set)  # objects of these events that still exist


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
    return AuditPage(events=rows, next_before=rows[-1].id if more and rows else None,
                     existing=existing_objects(rows))


def object_types() -> list[str]:
    query = sa.select(AuditEvent.object_type).distinct().order_by(AuditEvent.object_type)
    return list(db.session.execute(query).scalars())


def recent(limit: int = 10) -> list[AuditEvent]:
    return list(db.session.execute(sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)).scalars())


def _int_id(object_id: str) -> int:
    number = int(object_id)
    if abs(number) > MAX_ID:
        raise ValueError(object_id)
    return number


# object_type -> (the column its object_id names, how an object_id becomes that column's value)
_OBJECT_KEYS = {
    "tenant": (Tenant.tenant_key, str.lower),
    "certificate": (Certificate.id, _int_id),
    "thumbprint_mapping": (ThumbprintMapping.id, _int_id),
    "admin": (AdminUser.id, _int_id),
    "api_client": (ApiClient.app_id, str),
    "bulk_job": (BulkJob.id, _int_id),
}


def existing_objects(events: list[AuditEvent]) -> set[tuple[str, str]]:
    """(object_type, object_id) of the events' objects that still exist, so a page links only to those: one
    query per object type on the page, not one per event."""
    wanted: dict[str, dict[object, set[str]]] = {}
    for event in events:
        known = _OBJECT_KEYS.get(event.object_type)
        if known is None or event.object_id is None:
            continue
        try:
            key = known[1](event.object_id)
        except ValueError:
            continue
        wanted.setdefault(event.object_type, {}).setdefault(key, set()).add(event.object_id)
    found: set[tuple[str, str]] = set()
    for object_type, keys in wanted.items():
        column = _OBJECT_KEYS[object_type][0]
        for key in db.session.execute(sa.select(column).where(column.in_(list(keys)))).scalars():
            found.update((object_type, object_id) for object_id in keys[key])
    return found
