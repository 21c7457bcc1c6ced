"""The Decommission record's writes, inside the outbox's transactions: cancel (its job was discarded), finish (the
worker delivered it: record the outcomes, remove the tenant, its jobs, states and keys going with it) and
note_failure (the job gave up). Kept apart from services.outbox.decommission so the store can call them."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from portal.extensions import db
from portal.models import Decommission, Tenant
from portal.services.admin import audit
from portal.services.context import Actor
from portal.services.outbox.products import PRODUCTS, DeliveryError, label

CANCELLED = "Cancelled"


def cancel(tenant_pk: int, actor: Actor, now: datetime) -> None:
    """Its decommission job was discarded: the tenant stays and can be changed again. Inside the caller's
    transaction (store.discard_job, which audits the discard)."""
    tenant = db.session.get(Tenant, tenant_pk)
    if tenant is None:
        return
    record = current_record(tenant)
    if record is not None:
        record.note = f"{CANCELLED} by {actor.name} at {now:%Y-%m-%d %H:%M} UTC: the decommission job was discarded."
    tenant.decommission_requested_at = tenant.decommission_requested_by = None
    audit.record(actor, "decommission.cancel", "tenant", tenant.tenant_id,
                 {"status": {"before": "decommissioning", "after": "active" if tenant.active else "inactive"}})


def current_record(tenant: Tenant) -> Decommission | None:
    return db.session.execute(sa.select(Decommission).where(
        Decommission.domain == tenant.domain, Decommission.completed_at.is_(None),
        sa.or_(Decommission.note.is_(None), ~Decommission.note.startswith(CANCELLED)))
        .order_by(Decommission.id.desc()).limit(1)).scalar_one_or_none()


def finish(tenant_pk: int, steps: Mapping[str, Any], now: datetime) -> None:
    """Record the outcomes, audit, and remove the tenant row (cascading to its jobs, states and keys)."""
    tenant = db.session.get(Tenant, tenant_pk)
    if tenant is None:
        return
    record = current_record(tenant) or Decommission(
        tenant_id=tenant.tenant_id, domain=tenant.domain, display_name=tenant.display_name,
        requested_by=tenant.decommission_requested_by or "system", requested_at=tenant.decommission_requested_at
        or now)
    db.session.add(record)
    notes = dict(steps.get("notes") or {})
    note = " ".join(notes.get(p, "") for p in PRODUCTS if notes.get(p)) or None
    remove(tenant, record, dict(steps.get("outcomes") or {}), note, sync_actor(tenant.decommission_requested_by),
            now)


def remove(tenant: Tenant, record: Decommission, outcomes: Mapping[str, str], note: str | None, actor: Actor,
            now: datetime) -> None:
    for key in PRODUCTS:
        setattr(record, f"{key}_outcome", outcomes.get(key, "absent"))
    record.note, record.completed_at = note, now
    audit.record(actor, "decommission.done", "tenant", tenant.tenant_id,
                 {**{f"{key}Outcome": getattr(record, f"{key}_outcome") for key in PRODUCTS},
                  "registry": {"before": "present", "after": "removed"}})
    tenant_pk = tenant.id
    db.session.flush()
    db.session.expunge(tenant)
    db.session.execute(sa.delete(Tenant).where(Tenant.id == tenant_pk))


def note_failure(tenant_pk: int, errors: Mapping[str, DeliveryError]) -> None:
    """The decommission job gave up: say so on the record (the tenant stays, marked, until a retry succeeds)."""
    tenant = db.session.get(Tenant, tenant_pk)
    record = current_record(tenant) if tenant is not None else None
    if record is None:
        return
    for product in errors:
        setattr(record, f"{product}_outcome", "failed")
    record.note = " | ".join(f"{label(p)}: {e.message}" for p, e in errors.items())[:4000]
    audit.record(sync_actor(tenant.decommission_requested_by), "decommission.fail", "tenant",
                 tenant.tenant_id, {f"{p}Outcome": "failed" for p in errors})


def sync_actor(name: str | None) -> Actor:
    """The worker finishes on behalf of the administrator who asked."""
    return Actor(name=f"worker (for {name})" if name else "worker")


# --- Reading --------------------------------------------------------------------------------------------------

