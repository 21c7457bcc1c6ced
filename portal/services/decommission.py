"""Decommissioning a tenant: deactivate it in IS 7 and API Manager, delete it where the product allows, then remove
it from the registry, keeping a Decommission record (so reconcile can tell a tenant removed on purpose, perhaps only
deactivated in a product that does not delete, from a stray).

- `request` (the tenant page's confirmed form and DELETE /v1/tenant/<id>) marks the tenant, writes the record and
  an outbox job "decommission" in one transaction, audited. The tenant's waiting jobs are discarded: the
  decommission acts on the tenant as it is, so they are moot. From then on the tenant cannot be edited or activated.
- The worker runs `deliver` (level-triggered, like every job), per product: absent -> "absent"; otherwise deactivate
  (read again: a product whose own sync rolled the change back still has it active, and that is retried), then
  delete: IS 7's metadata DELETE answers 400 TM-60016 when tenant deletion is disabled; API Manager's SOAP
  deleteTenant reports success and does nothing in that case. So the product is read once more: gone -> "deleted",
  still there -> "deactivated". Neither product's listener propagates a delete, so each is asked itself.
- `finish` (in the worker's fenced transaction) records the outcomes and removes the tenant row; its jobs, states
  and keys go with it (foreign keys ON DELETE CASCADE).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from portal.clients.errors import DeletionDisabled
from portal.extensions import db
from portal.models import Decommission, OutboxJob, Tenant
from portal.models.base import utcnow
from portal.models.outbox import SYNC_PRODUCTS
from portal.services import audit, sync
from portal.services.context import Actor
from portal.services.errors import Conflict, NotFound, ValidationError
from portal.services.sync import PRODUCT_NAMES, DeliveryError, DeliveryFailed, Desired, JobInHand, Side

OUTCOME_TEXT = {"pending": "pending", "deleted": "deleted", "deactivated": "kept deactivated (deletion disabled)",
                "absent": "absent (never had it)", "failed": "failed"}
CANCELLED = "Cancelled"


class Decommissioning(Conflict):
    """A change refused because the tenant is being decommissioned (409 on the API)."""


def refuse_change(tenant: Tenant, what: str) -> None:
    """Raise when the tenant is being decommissioned: the worker is removing it."""
    if tenant.decommission_requested_at is not None:
        raise Decommissioning(
            f"Tenant {tenant.tenant_id} is being decommissioned (requested by {tenant.decommission_requested_by} "
            f"at {tenant.decommission_requested_at:%Y-%m-%d %H:%M} UTC): it cannot be {what}. To keep it, discard "
            "its decommission job on the synchronisation page.")


# --- Request --------------------------------------------------------------------------------------------------


def request(tenant_id: str, actor: Actor, *, confirm: str | None = None, check_confirm: bool = True) -> Decommission:
    """Start decommissioning (idempotent: a tenant already on its way returns its record). The page asks the
    administrator to type the tenant id (`confirm`); the API's DELETE is its own confirmation."""
    tenant = _tenant(tenant_id)
    if check_confirm and (confirm or "").strip().lower() != tenant.tenant_key:
        raise ValidationError({"confirm": f"Type the tenant id, {tenant.tenant_id}, to confirm the decommissioning."})
    if tenant.decommission_requested_at is not None:
        record = current_record(tenant)
        if record is not None:
            return record
    now = utcnow()
    tenant.decommission_requested_at, tenant.decommission_requested_by = now, actor.name[:64]
    record = Decommission(tenant_id=tenant.tenant_id, domain=tenant.domain, display_name=tenant.display_name,
                          requested_by=actor.name[:64], requested_at=now, is_outcome="pending",
                          apim_outcome="pending")
    db.session.add(record)
    superseded = list(db.session.execute(sa.select(OutboxJob).where(
        OutboxJob.tenant_id == tenant.id, OutboxJob.status.in_(("pending", "failed")))).scalars())
    for job in superseded:  # moot: the decommission acts on the tenant as it is
        job.status, job.updated_at = "discarded", now
        job.last_error = ((job.last_error or "") + " [Discarded: superseded by the decommissioning.]").strip()[:4000]
    audit.record(actor, "decommission.request", "tenant", tenant.tenant_id,
                 {"status": {"before": "active" if tenant.active else "inactive", "after": "decommissioning"},
                  "domain": tenant.domain, "discardedJobs": [job.id for job in superseded]})
    if sync.propagation_on():
        sync.enqueue(tenant, "decommission", actor)
    else:  # no product connection: the portal never wrote the tenant anywhere, so it goes now
        note = "No product connection is configured: the portal never wrote the tenant to IS 7 or API Manager."
        _remove(tenant, record, {"is": "absent", "apim": "absent"}, note, actor, now)
    db.session.commit()
    return record


def cancel(tenant_pk: int, actor: Actor, now: datetime) -> None:
    """Its decommission job was discarded: the tenant stays and can be changed again. Inside the caller's
    transaction (sync.discard_job, which audits the discard)."""
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


def _tenant(tenant_id: str) -> Tenant:
    tenant = db.session.execute(sa.select(Tenant).where(Tenant.tenant_key == str(tenant_id).lower())
                                ).scalar_one_or_none()
    if tenant is None:
        raise NotFound(f"No tenant with id {tenant_id!r}.")
    return tenant


# --- Delivery (worker thread, no transaction open) ------------------------------------------------------------


def deliver(taken: JobInHand, sides: Mapping[str, Side], direction: str, desired: Desired,
            connected: frozenset[str] | None, *, heartbeat: Callable[[], None] = lambda: None) -> None:
    """Deactivate, then delete, in each product; outcomes go to taken.steps["outcomes"] (product -> outcome) and
    notes to taken.steps["notes"]. The source product of a sharing direction first: its own sync may follow.
    Raises DeliveryFailed."""
    order = list(sync.DIRECTIONS.get(direction, SYNC_PRODUCTS))
    outcomes = taken.steps.setdefault("outcomes", {})
    notes = taken.steps.setdefault("notes", {})
    errors: dict[str, DeliveryError] = {}
    for key in order:
        if taken.steps.get(key) == "done":
            continue
        if connected is not None and key not in connected:
            outcomes[key], notes[key] = "absent", (f"No {PRODUCT_NAMES[key]} connection is configured: the portal "
                                                   "never wrote the tenant there.")
            taken.steps[key] = "done"
            continue
        try:
            outcomes[key], note = _one(sides[key], desired)
        except DeliveryError as exc:
            errors[key] = exc
            continue
        if note:
            notes[key] = note
        taken.steps[key] = "done"
        heartbeat()
    if errors:
        raise DeliveryFailed(errors)


def _one(side: Side, desired: Desired) -> tuple[str, str | None]:
    name = PRODUCT_NAMES[side.key]
    off = dataclasses.replace(desired, active=False)
    with sync.calling(side):
        remote = side.read(desired.domain)
        if remote is None:
            return "absent", None
        if remote.active is not False:
            side.set_active(off, remote)
            remote = side.read(desired.domain)
            if remote is None:
                return "deleted", None
            if remote.active is not False:
                raise DeliveryError(side.key, f"{name} still has tenant {desired.domain} active after the "
                                    "deactivation (its own sync may have rolled it back); it is tried again.",
                                    retryable=True)
        note = None
        try:
            side.delete(desired.domain, remote)
        except DeletionDisabled as exc:  # IS 7: 400 TM-60016, Tenant.TenantDelete is off
            note = (f"{name} refused the deletion ({exc.code}: tenant deletion is disabled there); the tenant is "
                    "kept deactivated.")
        if side.read(desired.domain) is None:
            return "deleted", None
        return "deactivated", note or (f"{name} reported the deletion done but still has the tenant (deletion is "
                                       "disabled there); it is kept deactivated.")


# --- Finish (the worker's fenced transaction) -----------------------------------------------------------------


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
    note = " ".join(notes.get(p, "") for p in SYNC_PRODUCTS if notes.get(p)) or None
    _remove(tenant, record, dict(steps.get("outcomes") or {}), note, sync_actor(tenant.decommission_requested_by),
            now)


def _remove(tenant: Tenant, record: Decommission, outcomes: Mapping[str, str], note: str | None, actor: Actor,
            now: datetime) -> None:
    record.is_outcome, record.apim_outcome = outcomes.get("is", "absent"), outcomes.get("apim", "absent")
    record.note, record.completed_at = note, now
    audit.record(actor, "decommission.done", "tenant", tenant.tenant_id,
                 {"isOutcome": record.is_outcome, "apimOutcome": record.apim_outcome,
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
    for product, error in errors.items():
        setattr(record, f"{product}_outcome", "failed")
    record.note = " | ".join(f"{PRODUCT_NAMES[p]}: {e.message}" for p, e in errors.items())[:4000]
    audit.record(sync_actor(tenant.decommission_requested_by), "decommission.fail", "tenant",
                 tenant.tenant_id, {f"{p}Outcome": "failed" for p in errors})


def sync_actor(name: str | None) -> Actor:
    """The worker finishes on behalf of the administrator who asked."""
    return Actor(name=f"worker (for {name})" if name else "worker")


# --- Reading --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordView:
    record: Decommission

    @property
    def state(self) -> str:
        if self.record.completed_at is not None:
            return "completed"
        if (self.record.note or "").startswith(CANCELLED):
            return "cancelled"
        return "in progress"

    def outcome(self, product: str) -> str:
        return getattr(self.record, f"{product}_outcome")

    def outcome_text(self, product: str) -> str:
        return OUTCOME_TEXT.get(self.outcome(product), self.outcome(product))


def recent(limit: int = 50) -> list[RecordView]:
    return [RecordView(r) for r in db.session.execute(
        sa.select(Decommission).order_by(Decommission.id.desc()).limit(limit)).scalars()]


def completed_by_domain(domains: set[str] | None = None) -> dict[str, Decommission]:
    """The latest completed decommission per domain (for reconcile)."""
    stmt = sa.select(Decommission).where(Decommission.completed_at.is_not(None)).order_by(Decommission.id)
    if domains is not None:
        if not domains:
            return {}
        stmt = stmt.where(Decommission.domain.in_(sorted(domains)))
    return {r.domain: r for r in db.session.execute(stmt).scalars()}
