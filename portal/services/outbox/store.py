"""The outbox store: every write to outbox jobs and sync state (the transactional outbox, security.md §6).

- `enqueue` is called by the tenant services inside the tenant change's own transaction: the change and its job
  commit together or not at all, so no change is lost between the registry and the products. The payload records
  what the change was (no secrets); delivery reads the tenant's current row.
- A worker `claim`s due jobs: `UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED)` on PostgreSQL, so workers
  side by side never take the same job; on SQLite, whose writers are serialised anyway, the same UPDATE guarded by
  `status = 'pending'` is the single, atomic claim. A job waits while an earlier job of the same tenant is open
  (pending, running or failed): a deactivation never overtakes the creation it follows.
- A claim is a lease. A worker that dies leaves a `running` job whose lease runs out; the next claim takes it over.
  Each claim has a fresh token, and every report (`renew`, `complete`, `fail`) carries it: a late report from the
  worker that lost the lease is ignored.
- Failures retry with capped exponential backoff and jitter, never sooner than a `Retry-After`; after the last
  attempt, or on an error retrying cannot fix, the job is `failed` ("waiting for a person") until someone presses
  "retry now" (`retry_now`, `retry_job`) or discards it (`discard_job`). `settle` keeps `SyncState` (tenant x
  product, what the pages show) in step.
"""
from __future__ import annotations

import functools
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa

from portal.extensions import db
from portal.models import OutboxJob, SyncState, Tenant
from portal.models.base import utcnow
from portal.models.outbox import JOB_OPS
from portal.services.admin import audit
from portal.services.context import Actor
from portal.services.errors import Conflict, NotFound
from portal.services.outbox import decommission_record
from portal.services.outbox.policy import Settings, settings
from portal.services.outbox.products import PRODUCTS, DeliveryError, LeaseLost, label
from portal.services.outbox.reads import OPEN_JOB_STATES, JobView, get_job

log = logging.getLogger(__name__)
_T = TypeVar("_T")
RUNNING_REFUSED = "A worker is delivering {what} now: wait for this attempt to end, then try again."


# --- Enqueue (inside the tenant change's transaction) ------------------------------------------------------


def snapshot(tenant: Tenant) -> dict[str, Any]:
    """The tenant as the products should see it after this change. No secret: the owner's password stays in the
    tenant's encrypted column and is read at delivery."""
    owner = None
    if tenant.owner_username:
        owner = {"username": tenant.owner_username, "email": tenant.owner_email,
                 "firstname": tenant.owner_first_name, "lastname": tenant.owner_last_name,
                 "provisioning": tenant.owner_provisioning}
    return {"domain": tenant.domain, "name": tenant.display_name, "active": bool(tenant.active), "owner": owner}


def owner_fingerprint(tenant: Tenant) -> tuple:
    """What an owner update propagates; compared before and after an edit (the password included)."""
    return (tenant.owner_username, tenant.owner_email, tenant.owner_first_name, tenant.owner_last_name,
            tenant.owner_provisioning, tenant.owner_password)


def enqueue(tenant: Tenant, op: str, actor: Actor | None = None, *, password_changed: bool = False) -> OutboxJob:
    """Add a job for this change to the current transaction; the caller commits it with the change."""
    if op not in JOB_OPS:
        raise ValueError(f"unknown outbox operation {op!r}")
    if tenant.id is None:
        db.session.flush()
    now = utcnow()
    payload = snapshot(tenant)
    if op == "update_owner":
        payload["passwordChanged"] = bool(password_changed)
    job = OutboxJob(tenant_id=tenant.id, op=op, payload=payload, status="pending", steps={}, attempts=0,
                    next_attempt_at=now, created_by=(actor.name if actor else "system")[:64], created_at=now,
                    updated_at=now)
    db.session.add(job)
    for state in state_rows(tenant.id).values():
        if state.status == "synced":  # failed stays failed: that job still holds this one back
            state.status, state.updated_at = "pending", now
    return job


def enqueue_owner_change(tenant: Tenant, before: tuple, actor: Actor) -> OutboxJob | None:
    """After an edit: a job only when the owner changed (display name and settings are the registry's own)."""
    after = owner_fingerprint(tenant)
    if after == before or not tenant.owner_username:
        return None
    return enqueue(tenant, "update_owner", actor, password_changed=after[5] != before[5] and after[5] is not None)


def state_rows(tenant_id: int) -> dict[str, SyncState]:
    """Both products' rows for a tenant, created when missing (tenants registered before the outbox existed)."""
    rows = {s.product: s for s in db.session.execute(
        sa.select(SyncState).where(SyncState.tenant_id == tenant_id)).scalars()}
    for product in PRODUCTS:
        if product not in rows:
            rows[product] = SyncState(tenant_id=tenant_id, product=product, status="pending", attempts=0,
                                      updated_at=utcnow())
            db.session.add(rows[product])
    return rows


# --- Retry and discard (a person's actions) ----------------------------------------------------------------


def retry_now(tenant_id: str | None, actor: Actor) -> int:
    """Make a tenant's failed or waiting jobs due now (every tenant's when tenant_id is None); audited. Refused for
    a tenant while one of its jobs runs: that attempt's outcome comes first."""
    now = utcnow()
    stmt = sa.select(OutboxJob).where(OutboxJob.status.in_(("failed", "pending")))
    tenant = None
    if tenant_id is not None:
        tenant = db.session.execute(sa.select(Tenant).where(Tenant.tenant_key == str(tenant_id).lower())
                                    ).scalar_one_or_none()
        if tenant is None:
            raise NotFound(f"No tenant with id {tenant_id!r}.")
        if running_job(tenant.id) is not None:
            raise Conflict(RUNNING_REFUSED.format(what=f"a change of tenant {tenant.tenant_id}"))
        stmt = stmt.where(OutboxJob.tenant_id == tenant.id)
    else:
        stmt = stmt.where(sa.or_(OutboxJob.status == "failed", OutboxJob.next_attempt_at > now))
    jobs = list(db.session.execute(stmt.order_by(OutboxJob.id)).scalars())
    tenants_touched: set[int] = set()
    for job in jobs:
        _make_due(job, now)
        tenants_touched.add(job.tenant_id)
    _states_pending(tenants_touched, now)
    audit.record(actor, "sync.retry", "tenant" if tenant else "outbox",
                 tenant.tenant_id if tenant else None, {"jobs": {"before": None, "after": len(jobs)}})
    db.session.commit()
    return len(jobs)


def _make_due(job: OutboxJob, now: datetime) -> None:
    if job.status == "failed":
        job.attempts = 0  # a fresh set of attempts
    job.status, job.next_attempt_at, job.updated_at = "pending", now, now


def _states_pending(tenant_ids: set[int], now: datetime) -> None:
    if tenant_ids:
        for state in db.session.execute(sa.select(SyncState).where(SyncState.tenant_id.in_(tenant_ids))
                                        ).scalars():
            if state.status == "failed":
                state.status, state.next_attempt_at, state.fix, state.updated_at = "pending", None, None, now


def running_job(tenant_pk: int) -> OutboxJob | None:
    return db.session.execute(sa.select(OutboxJob).where(OutboxJob.tenant_id == tenant_pk,
                                                         OutboxJob.status == "running").limit(1)).scalar_one_or_none()


def _failed_or_waiting(job_id: int, done: str) -> JobView:
    """The job, if a person may act on it (`done`: "retried", "discarded"): failed or waiting, never running."""
    view = get_job(job_id)
    job = view.job
    if job.status == "running":
        raise Conflict(RUNNING_REFUSED.format(what=f"job {job.id}"))
    if job.status not in ("failed", "pending"):
        raise Conflict(f"Job {job.id} is {job.status}: only a failed or waiting job can be {done}.")
    return view


def retry_job(job_id: int, actor: Actor) -> JobView:
    """Make one failed or waiting job due now, with a fresh set of attempts; audited. A running job is refused."""
    view = _failed_or_waiting(job_id, "retried")
    job, now, before = view.job, utcnow(), view.job.status
    _make_due(job, now)
    _states_pending({job.tenant_id}, now)
    audit.record(actor, "sync.job_retry", "tenant", view.tenant_id,
                 {"job": {"before": None, "after": job.id}, "status": {"before": before, "after": "pending"}})
    db.session.commit()
    return view


def discard_job(job_id: int, actor: Actor) -> JobView:
    """Drop a failed or waiting job: it is never delivered and no longer holds back the tenant's later jobs.
    Audited. The products may then differ from the registry: the tenant's state says so and points at reconcile.
    Discarding a decommission cancels the decommissioning (the tenant can be changed again)."""
    view = _failed_or_waiting(job_id, "discarded")
    job, now, before = view.job, utcnow(), view.job.status
    job.status, job.lease_until, job.updated_at = "discarded", None, now
    if job.op == "decommission":
        decommission_record.cancel(job.tenant_id, actor, now)
    newer_open = db.session.execute(sa.select(OutboxJob.id).where(
        OutboxJob.tenant_id == job.tenant_id, OutboxJob.id > job.id, OutboxJob.status.in_(OPEN_JOB_STATES)
    ).limit(1)).first() is not None
    for product, state in state_rows(job.tenant_id).items():
        if (job.steps or {}).get(product) == "done" or state.status == "synced":
            continue
        if newer_open:  # the next change of this tenant takes the product from here
            state.status, state.error, state.error_code, state.trace_id, state.fix = "pending", None, None, None, None
        else:
            state.status, state.fix = "failed", "reconcile"
            state.error = (f"The {job.op} change was discarded by {actor.name}; {label(product)} may differ "
                           "from the registry.")
            state.error_code = state.trace_id = None
        state.next_attempt_at, state.updated_at = None, now
    audit.record(actor, "sync.job_discard", "tenant", view.tenant_id,
                 {"job": {"before": None, "after": job.id}, "op": job.op,
                  "status": {"before": before, "after": "discarded"}})
    db.session.commit()
    return view


def backoff(attempts: int, cfg: Settings, retry_after: float | None = None,
            rng: random.Random | None = None) -> float:
    """Seconds until the next attempt after `attempts` failed ones: base * 2^(n-1), capped, with "equal jitter"
    (a random point in the upper half, so workers that failed together do not return together and no retry comes
    at once), and never sooner than the server's Retry-After."""
    ceiling = min(cfg.backoff_cap, cfg.backoff_base * (2 ** max(0, attempts - 1)))
    delay = (rng or random).uniform(ceiling / 2, ceiling)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(float(retry_after), cfg.retry_after_cap))
    return delay


# --- Claims and reports --------------------------------------------------------------------------------------


@dataclass
class Claim:
    job_id: int
    token: str
    worker: str
    tenant_id: int
    op: str
    payload: dict
    steps: dict
    attempts: int
    lease_until: datetime


JOBS = OutboxJob.__table__
STATES = SyncState.__table__
NEWER_OPEN = sa.select(JOBS.c.id).where(JOBS.c.tenant_id == sa.bindparam("p_tenant"), JOBS.c.id > sa.bindparam("p_id"),
                                        JOBS.c.status.in_(OPEN_JOB_STATES)).limit(1)


@functools.cache
def claim_statements(dialect: str, expired: bool) -> tuple[sa.Select, sa.Update]:
    """(probe, claim) for due pending jobs or for jobs whose lease expired, built once per process (they are the
    hottest statements of the worker) with bind parameters p_now, p_token, p_worker, p_lease.

    The pick is the oldest due job whose tenant has no earlier open job. PostgreSQL: the claim's pick locks its row
    with FOR UPDATE SKIP LOCKED, so concurrent claimers each get a different job without waiting. SQLite has no
    row locks; its writers are serialised, so the UPDATE's own guard on the status (re-checked when it runs) is
    what makes the claim single. The probe is the pick as a plain read."""
    cand, earlier = JOBS.alias("cand"), JOBS.alias("earlier")
    now = sa.bindparam("p_now", type_=JOBS.c.updated_at.type)
    held_back = sa.exists().where(earlier.c.tenant_id == cand.c.tenant_id, earlier.c.id < cand.c.id,
                                  earlier.c.status.in_(OPEN_JOB_STATES))
    if expired:
        due = sa.and_(cand.c.status == "running", cand.c.lease_until < now)
        guard = sa.and_(JOBS.c.status == "running", JOBS.c.lease_until < now)
    else:
        due = sa.and_(cand.c.status == "pending", cand.c.next_attempt_at <= now)
        guard = JOBS.c.status == "pending"
    pick = sa.select(cand.c.id).where(due, ~held_back).order_by(cand.c.id).limit(1)
    locked = pick.with_for_update(skip_locked=True, of=cand) if dialect == "postgresql" else pick
    take = (sa.update(JOBS)
            .where(JOBS.c.id == locked.scalar_subquery(), guard)
            .values(status="running", claim_token=sa.bindparam("p_token"), claimed_by=sa.bindparam("p_worker"),
                    lease_until=sa.bindparam("p_lease", type_=JOBS.c.lease_until.type),
                    attempts=JOBS.c.attempts + 1, updated_at=now)
            .returning(JOBS.c.id, JOBS.c.tenant_id, JOBS.c.op, JOBS.c.payload, JOBS.c.steps, JOBS.c.attempts))
    return pick, take


def _anything_due(now: datetime, *, expired: bool) -> tuple[bool, bool]:
    """(an expired lease, a due pending job) by plain reads: idle threads ask this, not a write, so on SQLite
    they never queue for the write lock just to learn there is nothing to do. Leases are looked at only when
    `expired` is asked for."""
    dialect = db.engine.dialect.name

    def due(kind: bool) -> bool:
        return db.session.execute(claim_statements(dialect, kind)[0], {"p_now": now}).first() is not None

    found = (expired and due(True), due(False))
    db.session.rollback()
    return found


def _with_retries(write: Callable[[], _T], attempts: int = 6) -> _T:
    """Run a short write transaction again when the database is momentarily busy (SQLite's "database is locked"
    under many writers, a PostgreSQL deadlock or serialization failure). Each attempt starts clean."""
    for attempt in range(attempts):
        try:
            return write()
        except sa.exc.OperationalError:
            db.session.rollback()
            if attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0.02, 0.05) * 2 ** attempt)
    raise AssertionError("unreachable")


def claim(worker: str, cfg: Settings | None = None, *, now: datetime | None = None,
          check_expired: bool = True, probe: bool = True) -> Claim | None:
    """Take one due job (a job whose lease expired first), mark its products running, commit. The worker loop
    looks for expired leases every few seconds only (check_expired): a take-over is not urgent, a claim is; and
    it skips the read-only probe (probe=False) right after a claim succeeded, when more work is likely."""
    cfg = cfg or settings()
    now = now or utcnow()
    if probe:
        expired_due, pending_due = _anything_due(now, expired=check_expired)
        if not (expired_due or pending_due):
            return None
    else:
        expired_due, pending_due = check_expired, True
    return _with_retries(lambda: _claim(worker, cfg, now, expired_due, pending_due))


def _claim(worker: str, cfg: Settings, now: datetime, expired_due: bool, pending_due: bool) -> Claim | None:
    token = uuid.uuid4().hex
    lease_until = now + timedelta(seconds=cfg.lease_seconds)
    dialect = db.engine.dialect.name
    for expired in [flag for flag, due in ((True, expired_due), (False, pending_due)) if due]:
        row = db.session.execute(claim_statements(dialect, expired)[1], {
            "p_now": now, "p_token": token, "p_worker": worker[:128], "p_lease": lease_until}).one_or_none()
        if row is None:
            continue
        taken = Claim(job_id=row.id, token=token, worker=worker, tenant_id=row.tenant_id, op=row.op,
                      payload=dict(row.payload or {}), steps=dict(row.steps or {}), attempts=row.attempts,
                      lease_until=lease_until)
        if expired:
            log.warning("outbox job %s: lease expired, taken over by %s", taken.job_id, worker)
        running = [p for p in PRODUCTS if taken.steps.get(p) != "done"]
        _set_states(taken.tenant_id, running, now, status="running")
        db.session.commit()
        return taken
    db.session.rollback()
    return None


@functools.cache
def _state_update(names: tuple[str, ...]) -> sa.Update:
    """UPDATE sync_state SET <names>, updated_at WHERE tenant and product in a list; built once per set of names."""
    return (sa.update(STATES)
            .where(STATES.c.tenant_id == sa.bindparam("p_tenant"),
                   STATES.c.product.in_(sa.bindparam("p_products", expanding=True)))
            .values({name: sa.bindparam(f"v_{name}", type_=STATES.c[name].type) for name in (*names, "updated_at")}))


def _set_states(tenant_id: int, products: list[str], now: datetime, **values: Any) -> None:
    """One UPDATE for the tenant's rows of these products (rows missing for tenants older than the outbox are
    created first)."""
    if not products:
        return
    params = {"p_tenant": tenant_id, "p_products": products, "v_updated_at": now,
              **{f"v_{name}": value for name, value in values.items()}}
    result = db.session.execute(_state_update(tuple(sorted(values))), params)
    if result.rowcount < len(products):
        for product, state in state_rows(tenant_id).items():
            if product in products:
                for name, value in {"updated_at": now, **values}.items():
                    setattr(state, name, value)


def renew(taken: Claim, cfg: Settings, *, now: datetime | None = None, done: list[str] | None = None) -> None:
    """Extend the lease (and save the progress so far); raises LeaseLost when the job is no longer ours. `done`:
    products whose step just ended, shown as synced now (pending when a later change of the tenant waits) while
    the job goes on with the other product, so the pages tell each step apart."""
    now = now or utcnow()
    lease_until = now + timedelta(seconds=cfg.lease_seconds)

    def write() -> bool:
        if not _update_ours(taken, lease_until=lease_until, steps=dict(taken.steps), updated_at=now):
            db.session.rollback()
            return False
        if done:
            newer_open = db.session.execute(NEWER_OPEN, {"p_tenant": taken.tenant_id, "p_id": taken.job_id}
                                            ).first() is not None
            _set_states(taken.tenant_id, done, now, status="pending" if newer_open else "synced", error=None,
                        error_code=None, trace_id=None, next_attempt_at=None, attempts=0, synced_at=now, fix=None)
        db.session.commit()
        return True

    if not _with_retries(write):
        raise LeaseLost(taken.job_id)
    taken.lease_until = lease_until


@functools.cache
def _job_update(names: tuple[str, ...]) -> sa.Update:
    """UPDATE outbox_job SET <names> for a job only while this claim still holds it (the fencing token)."""
    return (sa.update(JOBS)
            .where(JOBS.c.id == sa.bindparam("p_id"), JOBS.c.claim_token == sa.bindparam("p_token"),
                   JOBS.c.status == "running")
            .values({name: sa.bindparam(f"v_{name}", type_=JOBS.c[name].type) for name in names}))


def _update_ours(taken: Claim, **values: Any) -> bool:
    """Write to the job if it is still ours; False (and nothing written) when another worker took it over."""
    params = {"p_id": taken.job_id, "p_token": taken.token, **{f"v_{name}": v for name, v in values.items()}}
    return db.session.execute(_job_update(tuple(sorted(values))), params).rowcount == 1


def complete(taken: Claim, *, now: datetime | None = None) -> bool:
    """Mark the job done and its products synced. False (nothing written) when the lease was lost meanwhile."""
    now = now or utcnow()
    taken.steps.update({product: "done" for product in PRODUCTS})

    def write() -> bool:
        if not _update_ours(taken, status="done", steps=dict(taken.steps), done_at=now, lease_until=None,
                            last_error=None, fix=None, updated_at=now):
            db.session.rollback()
            return False
        settle(taken, {}, None, now)
        db.session.commit()
        return True

    return _with_retries(write)


def finish_decommission(taken: Claim, *, now: datetime | None = None) -> bool:
    """The decommission job delivered: record the outcomes and remove the tenant from the registry (its jobs and
    states go with it), in one transaction, only while this claim still holds the job."""
    now = now or utcnow()

    def write() -> bool:
        if not _update_ours(taken, status="done", steps=dict(taken.steps), done_at=now, lease_until=None,
                            last_error=None, fix=None, updated_at=now):
            db.session.rollback()
            return False
        decommission_record.finish(taken.tenant_id, taken.steps, now)
        db.session.commit()
        return True

    return _with_retries(write)


def fail(taken: Claim, errors: Mapping[str, DeliveryError], cfg: Settings, *, now: datetime | None = None,
         rng: random.Random | None = None) -> bool:
    """Record a failed attempt: back off and retry, or give up (`failed`) after the last attempt or on an error
    that retrying cannot fix. False when the lease was lost meanwhile."""
    now = now or utcnow()
    retryable = all(e.retryable for e in errors.values())
    give_up = not retryable or taken.attempts >= cfg.max_attempts
    next_at = None
    if not give_up:
        hints = [e.retry_after for e in errors.values() if e.retry_after]
        next_at = now + timedelta(seconds=backoff(taken.attempts, cfg, max(hints) if hints else None, rng))
    text = " | ".join(f"{PRODUCTS[p].label if p in PRODUCTS else p}: {e.message}" for p, e in errors.items())
    fix = next((e.fix for e in errors.values() if e.fix), None)

    def write() -> bool:
        if not _update_ours(taken, status="failed" if give_up else "pending", steps=dict(taken.steps),
                            lease_until=None, next_attempt_at=next_at or now, last_error=text[:4000], fix=fix,
                            updated_at=now):
            db.session.rollback()
            return False
        settle(taken, errors, next_at, now)
        if give_up and taken.op == "decommission":
            decommission_record.note_failure(taken.tenant_id, errors)
        db.session.commit()
        return True

    if not _with_retries(write):
        return False
    log.info("outbox job %s attempt %s failed (%s): %s", taken.job_id, taken.attempts,
             "gave up" if give_up else f"next attempt {next_at:%H:%M:%S}", text)
    return True


def settle(taken: Claim, errors: Mapping[str, DeliveryError], next_at: datetime | None, now: datetime) -> None:
    """Per product: failed with the error; synced when done and nothing newer waits; pending otherwise."""
    newer_open = db.session.execute(NEWER_OPEN, {"p_tenant": taken.tenant_id, "p_id": taken.job_id}
                                    ).first() is not None
    for product, error in errors.items():
        _set_states(taken.tenant_id, [product], now, status="failed", error=error.message[:4000],
                    error_code=(error.code or "")[:64] or None, trace_id=(error.trace_id or "")[:128] or None,
                    next_attempt_at=next_at, attempts=taken.attempts, fix=error.fix)
    done = [p for p in PRODUCTS if p not in errors and taken.steps.get(p) == "done"]
    _set_states(taken.tenant_id, done, now, status="pending" if newer_open else "synced", error=None,
                error_code=None, trace_id=None, next_attempt_at=None, attempts=0, synced_at=now, fix=None)
    waiting = [p for p in PRODUCTS if p not in errors and p not in done]  # the other product failed first
    _set_states(taken.tenant_id, waiting, now, status="pending", next_attempt_at=next_at)

