"""Bulk onboarding jobs on the worker, not in web threads: the web process stores a job as pending
(services.bulk.create_job / apply_job) and a worker thread claims and runs it (services.bulk.run_job); the job
page polls the counters that run writes.

The claim is one UPDATE guarded by `status = 'pending'`; on PostgreSQL its pick locks the row with FOR UPDATE SKIP
LOCKED, so workers side by side never run a job twice (as the outbox's own claim). A pending job already stale (no
worker ran for minutes, and the page offered to apply it again) is left alone. The job runs on behalf of the
administrator who started it: the actor (name, id, request id, address) is read back from the job's `bulk.start`
audit event, so the audit trail reads as it did when jobs ran in the web process.
"""
from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta

import sqlalchemy as sa

from portal.extensions import db
from portal.models import AuditEvent, BulkJob
from portal.models.base import utcnow
from portal.services.context import Actor
from portal.services.tenants import bulk

log = logging.getLogger(__name__)
JOBS = BulkJob.__table__


@functools.cache
def _statements(dialect: str) -> tuple[sa.Select, sa.Update]:
    """(probe, claim) with bind parameters p_now and p_fresh (pending jobs written after it are not stale)."""
    cand = JOBS.alias("cand")
    now = sa.bindparam("p_now", type_=JOBS.c.updated_at.type)
    fresh = sa.bindparam("p_fresh", type_=JOBS.c.updated_at.type)
    pick = (sa.select(cand.c.id).where(cand.c.status == "pending", cand.c.updated_at > fresh)
            .order_by(cand.c.id).limit(1))
    locked = pick.with_for_update(skip_locked=True, of=cand) if dialect == "postgresql" else pick
    take = (sa.update(JOBS).where(JOBS.c.id == locked.scalar_subquery(), JOBS.c.status == "pending")
            .values(status="running", updated_at=now).returning(JOBS.c.id))
    return pick, take


def claim(*, now: datetime | None = None) -> int | None:
    """Take the oldest pending bulk job (its id), or None. A plain read first, so an idle worker never queues for
    SQLite's write lock; a busy database just means the next poll tries again."""
    now = now or utcnow()
    params = {"p_now": now, "p_fresh": now - timedelta(seconds=bulk.STALE_AFTER_SECONDS)}
    probe, take = _statements(db.engine.dialect.name)
    try:
        if db.session.execute(probe, params).first() is None:
            db.session.rollback()
            return None
        row = db.session.execute(take, params).first()
        db.session.commit()
    except sa.exc.OperationalError:  # SQLite's "database is locked", a PostgreSQL serialization failure
        db.session.rollback()
        return None
    return row.id if row else None


def claim_waiting(*, now: datetime | None = None) -> int:
    """How many bulk jobs a worker would claim now (for Worker.drain)."""
    now = now or utcnow()
    return db.session.execute(sa.select(sa.func.count()).select_from(BulkJob).where(
        BulkJob.status == "pending",
        BulkJob.updated_at > now - timedelta(seconds=bulk.STALE_AFTER_SECONDS))).scalar_one()


def starter(job_id: int) -> Actor:
    """Who started the job, as its bulk.start audit event recorded them."""
    event = db.session.execute(sa.select(AuditEvent).where(
        AuditEvent.action == "bulk.start", AuditEvent.object_type == "bulk_job",
        AuditEvent.object_id == str(job_id)).order_by(AuditEvent.id.desc()).limit(1)).scalar_one_or_none()
    if event is None:
        return Actor(name=db.session.get(BulkJob, job_id).created_by)
    return Actor(name=event.actor, id=event.actor_id, request_id=event.request_id, ip=event.ip)


def run_next() -> bool:
    """Claim one pending bulk job and run it to its end; False when none was pending."""
    job_id = claim()
    if job_id is None:
        return False
    log.info("bulk job %s: running", job_id)
    bulk.run_job(job_id, starter(job_id))
    return True
