"""Durable propagation to IS 7 and API Manager: the outbox of tenant changes and each tenant's sync state per product.

A tenant change and its outbox job commit in one transaction, so a change is never lost between the registry and
the products; the worker delivers jobs later, in order per tenant."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, JSONType, UTCDateTime, utcnow

SYNC_PRODUCTS = ("is", "apim")
# "sync" makes the products match the registry's tenant as it is (reconcile's push); "decommission" deactivates the
# tenant in both products, deletes it where the product allows, then removes it from the registry.
JOB_OPS = ("create", "update_owner", "activate", "deactivate", "sync", "decommission")
# pending: waiting for its turn or its next attempt; running: leased by a worker; done; failed: gave up (retry now);
# discarded: an administrator dropped a failed job (audited), so it no longer holds the tenant's later jobs back.
JOB_STATES = ("pending", "running", "done", "failed", "discarded")
# What a person must do for a job that waiting cannot fix: the pages name it and link to where it is done.
FIX_HINTS = ("owner", "connection", "mappings", "sharing", "reconcile", "permission")
SYNC_STATES = ("pending", "running", "synced", "failed")
# ok: exactly one WSO2-IS-7 key manager with the expected settings; missing / duplicate / mismatch: not so;
# unverifiable: the portal holds no credentials of the tenant's admin; error: API Manager could not be asked;
# not_expected: auto_configure_key_manager is off, so no key manager is due.
KEY_MANAGER_STATES = ("ok", "missing", "duplicate", "mismatch", "unverifiable", "error", "not_expected")
# pending: not reached yet; deleted; deactivated: kept deactivated (the product does not delete, or deletion is off);
# absent: the product never had it; failed: see the note.
DECOMMISSION_OUTCOMES = ("pending", "deleted", "deactivated", "absent", "failed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class OutboxJob(Base):
    """One tenant change to carry to the products. `payload` is the tenant as the change left it, without secrets
    (the owner's password is read from the tenant at delivery, so it is stored encrypted in one place only).
    `steps` records which products are done, so a retry does not redo them; `claim_token` fences a worker whose
    lease expired: its late report no longer matches and is ignored."""

    __tablename__ = "outbox_job"
    __table_args__ = (
        sa.CheckConstraint(_in("op", JOB_OPS), name="op"),
        sa.CheckConstraint(_in("status", JOB_STATES), name="status"),
        sa.Index("ix_outbox_job_status_next", "status", "next_attempt_at"),
        sa.Index("ix_outbox_job_tenant_order", "tenant_id", "id"),  # order per tenant: nothing overtakes
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("tenant.id", ondelete="CASCADE"))
    op: Mapped[str] = mapped_column(sa.String(16))
    payload: Mapped[dict] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    steps: Mapped[dict] = mapped_column(JSONType, default=dict)  # {"is": "done", "apim": "done"}
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(sa.String(128))
    claim_token: Mapped[str | None] = mapped_column(sa.String(32))
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    fix: Mapped[str | None] = mapped_column(sa.String(32))  # one of FIX_HINTS when a person must act
    created_by: Mapped[str] = mapped_column(sa.String(64), default="system")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SyncState(Base):
    """Where one tenant stands in one product, for the pages: written by enqueue and by the worker, read in one
    query per page of tenants."""

    __tablename__ = "sync_state"
    __table_args__ = (
        sa.CheckConstraint(_in("product", SYNC_PRODUCTS), name="product"),
        sa.CheckConstraint(_in("status", SYNC_STATES), name="status"),
    )

    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True)
    product: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    error: Mapped[str | None] = mapped_column(sa.Text)  # the WSO2 error, in words, with its code and trace id
    error_code: Mapped[str | None] = mapped_column(sa.String(64))
    trace_id: Mapped[str | None] = mapped_column(sa.String(128))
    fix: Mapped[str | None] = mapped_column(sa.String(32))  # one of FIX_HINTS when a person must act
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KeyManagerCheck(Base):
    """What API Manager's admin REST API showed, the last time it was asked, about one tenant's WSO2-IS-7 key
    manager (the one auto_configure_key_manager should have made). Written by services.key_managers."""

    __tablename__ = "key_manager_check"
    __table_args__ = (sa.CheckConstraint(_in("status", KEY_MANAGER_STATES), name="status"),)

    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(16))
    detail: Mapped[str | None] = mapped_column(sa.Text)  # one or two sentences for the administrator
    key_manager_id: Mapped[str | None] = mapped_column(sa.String(64))  # API Manager's UUID for it
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    repaired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Decommission(Base):
    """A tenant that was decommissioned: kept after the tenant row is gone, so reconcile can tell a tenant
    deliberately removed (and perhaps only deactivated in a product that does not delete) from a stray."""

    __tablename__ = "decommission"
    __table_args__ = (
        sa.CheckConstraint(_in("is_outcome", DECOMMISSION_OUTCOMES), name="is_outcome"),
        sa.CheckConstraint(_in("apim_outcome", DECOMMISSION_OUTCOMES), name="apim_outcome"),
        sa.Index("ix_decommission_domain", "domain"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(64))  # as it was registered
    domain: Mapped[str] = mapped_column(sa.String(253))
    display_name: Mapped[str] = mapped_column(sa.String(255))
    requested_by: Mapped[str] = mapped_column(sa.String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    is_outcome: Mapped[str] = mapped_column(sa.String(16), default="pending")
    apim_outcome: Mapped[str] = mapped_column(sa.String(16), default="pending")
    note: Mapped[str | None] = mapped_column(sa.Text)
