"""Decommissioning a tenant: deactivate it in IS 7 and API Manager, delete it where the product allows, then remove
it from the registry, keeping a Decommission record (so reconcile can tell a tenant removed on purpose, perhaps only
deactivated in a product that does not delete, from a stray).

- `request` (the tenant page's confirmed form and DELETE /v1/tenant/<id>) marks the tenant, writes the record and
  an outbox job "decommission" in one transaction, audited. The tenant's waiting jobs are discarded: the
  decommission acts on the tenant as it is, so they are moot. From then on the tenant cannot be edited or activated.
- The worker delivers it per product (services.outbox.delivery.deliver_decommission, level-triggered like every
  job), then, in its fenced transaction, services.outbox.decommission_record.finish records the outcomes and
  removes the tenant row; its jobs, states and keys go with it (foreign keys ON DELETE CASCADE).
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from portal.extensions import db
from portal.models import Decommission, OutboxJob, Tenant
from portal.models.base import utcnow
from portal.services.admin import audit
from portal.services.context import Actor
from portal.services.errors import Conflict, ValidationError
from portal.services.outbox import store
from portal.services.outbox.decommission_record import CANCELLED, current_record, remove
from portal.services.outbox.policy import propagation_on
from portal.services.outbox.products import PRODUCTS
from portal.services.tenants import lookups

OUTCOME_TEXT = {"pending": "pending", "deleted": "deleted", "deactivated": "kept deactivated (deletion disabled)",
                "absent": "absent (never had it)", "failed": "failed"}


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
    tenant = lookups.tenant(tenant_id)
    if check_confirm and (confirm or "").strip().lower() != tenant.tenant_key:
        raise ValidationError({"confirm": f"Type the tenant id, {tenant.tenant_id}, to confirm the decommissioning."})
    if tenant.decommission_requested_at is not None:
        record = current_record(tenant)
        if record is not None:
            return record
    now = utcnow()
    tenant.decommission_requested_at, tenant.decommission_requested_by = now, actor.name[:64]
    record = Decommission(tenant_id=tenant.tenant_id, domain=tenant.domain, display_name=tenant.display_name,
                          requested_by=actor.name[:64], requested_at=now,
                          **{f"{key}_outcome": "pending" for key in PRODUCTS})
    db.session.add(record)
    superseded = list(db.session.execute(sa.select(OutboxJob).where(
        OutboxJob.tenant_id == tenant.id, OutboxJob.status.in_(("pending", "failed")))).scalars())
    for job in superseded:  # moot: the decommission acts on the tenant as it is
        job.status, job.updated_at = "discarded", now
        job.last_error = ((job.last_error or "") + " [Discarded: superseded by the decommissioning.]").strip()[:4000]
    audit.record(actor, "decommission.request", "tenant", tenant.tenant_id,
                 {"status": {"before": "active" if tenant.active else "inactive", "after": "decommissioning"},
                  "domain": tenant.domain, "discardedJobs": [job.id for job in superseded]})
    if propagation_on():
        store.enqueue(tenant, "decommission", actor)
    else:  # no product connection: the portal never wrote the tenant anywhere, so it goes now
        note = "No product connection is configured: the portal never wrote the tenant to IS 7 or API Manager."
        remove(tenant, record, {key: "absent" for key in PRODUCTS}, note, actor, now)
    db.session.commit()
    return record


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
