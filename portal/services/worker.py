"""The outbox worker: claims due jobs, delivers them with services.sync, and records the outcome.

`flask --app portal worker` runs it (`make run` starts one beside the web server). WSO2 calls are I/O-bound, so one
worker runs `--concurrency` threads, each with its own database session and its own product clients. On PostgreSQL
more workers, on more hosts, can run side by side: claims use FOR UPDATE SKIP LOCKED and never hand a job out twice.
On SQLite, whose writers are serialised, the claim is a single guarded UPDATE: still never twice, but workers queue
for the one writer, so one worker process (with threads) is the right size there.

Jobs are leases: a worker that dies mid-job leaves it `running` until the lease runs out, then another takes it over.
Each claim carries a fresh token that every later write must match, so the worker that lost the lease cannot
overwrite the new owner's progress. Failures back off exponentially with jitter and honour Retry-After.
"""
from __future__ import annotations

import functools
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask

from portal.extensions import db
from portal.models import OutboxJob, ProductConnection, SyncState
from portal.models.base import utcnow
from portal.models.outbox import SYNC_PRODUCTS
from portal.services import decommission, key_managers
from portal.services.sync import (
    OPEN_JOB_STATES,
    PRODUCT_NAMES,
    DeliveryError,
    DeliveryFailed,
    LazySides,
    LeaseLost,
    Products,
    Settings,
    deliver,
    desired_now,
    settings,
    state_rows,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")
LEASE_CHECK_SECONDS = 2.0  # how often each worker thread looks for jobs whose worker died


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
        running = [p for p in SYNC_PRODUCTS if taken.steps.get(p) != "done"]
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


def renew(taken: Claim, cfg: Settings, *, now: datetime | None = None) -> None:
    """Extend the lease (and save the progress so far); raises LeaseLost when the job is no longer ours."""
    now = now or utcnow()
    lease_until = now + timedelta(seconds=cfg.lease_seconds)

    def write() -> bool:
        if not _update_ours(taken, lease_until=lease_until, steps=dict(taken.steps), updated_at=now):
            db.session.rollback()
            return False
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
    taken.steps.update({product: "done" for product in SYNC_PRODUCTS})

    def write() -> bool:
        if not _update_ours(taken, status="done", steps=dict(taken.steps), done_at=now, lease_until=None,
                            last_error=None, fix=None, updated_at=now):
            db.session.rollback()
            return False
        _settle(taken, {}, None, now)
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
        decommission.finish(taken.tenant_id, taken.steps, now)
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
    text = " | ".join(f"{PRODUCT_NAMES.get(p, p)}: {e.message}" for p, e in errors.items())
    fix = next((e.fix for e in errors.values() if e.fix), None)

    def write() -> bool:
        if not _update_ours(taken, status="failed" if give_up else "pending", steps=dict(taken.steps),
                            lease_until=None, next_attempt_at=next_at or now, last_error=text[:4000], fix=fix,
                            updated_at=now):
            db.session.rollback()
            return False
        _settle(taken, errors, next_at, now)
        if give_up and taken.op == "decommission":
            decommission.note_failure(taken.tenant_id, errors)
        db.session.commit()
        return True

    if not _with_retries(write):
        return False
    log.info("outbox job %s attempt %s failed (%s): %s", taken.job_id, taken.attempts,
             "gave up" if give_up else f"next attempt {next_at:%H:%M:%S}", text)
    return True


def _settle(taken: Claim, errors: Mapping[str, DeliveryError], next_at: datetime | None, now: datetime) -> None:
    """Per product: failed with the error; synced when done and nothing newer waits; pending otherwise."""
    newer_open = db.session.execute(NEWER_OPEN, {"p_tenant": taken.tenant_id, "p_id": taken.job_id}
                                    ).first() is not None
    for product, error in errors.items():
        _set_states(taken.tenant_id, [product], now, status="failed", error=error.message[:4000],
                    error_code=(error.code or "")[:64] or None, trace_id=(error.trace_id or "")[:128] or None,
                    next_attempt_at=next_at, attempts=taken.attempts, fix=error.fix)
    done = [p for p in SYNC_PRODUCTS if p not in errors and taken.steps.get(p) == "done"]
    _set_states(taken.tenant_id, done, now, status="pending" if newer_open else "synced", error=None,
                error_code=None, trace_id=None, next_attempt_at=None, attempts=0, synced_at=now, fix=None)
    waiting = [p for p in SYNC_PRODUCTS if p not in errors and p not in done]  # the other product failed first
    _set_states(taken.tenant_id, waiting, now, status="pending", next_attempt_at=next_at)


def process_one(worker: str, products: Products, cfg: Settings | None = None, *,
                check_expired: bool = True, probe: bool = True) -> str | None:
    """Claim one due job and deliver it. Returns "done", "retry", "failed", "lost" or None (nothing due)."""
    cfg = cfg or settings()
    taken = claim(worker, cfg, check_expired=check_expired, probe=probe)
    if taken is None:
        return None
    # Level-triggered: the tenant as it is now, not as the job's payload recorded it.
    desired = desired_now(taken.tenant_id, taken.payload)
    connected = None
    if taken.op == "decommission":
        connected = frozenset(db.session.execute(sa.select(ProductConnection.product)).scalars())
    direction = products.direction()
    db.session.close()  # no transaction stays open across the calls to WSO2
    if desired is None:  # the tenant is gone (its jobs go with it): nothing left to deliver
        return "done" if complete(taken) else "lost"
    renew_after = cfg.lease_seconds / 3

    def heartbeat() -> None:
        if (taken.lease_until - utcnow()).total_seconds() < cfg.lease_seconds - renew_after:
            renew(taken, cfg)

    try:
        if taken.op == "decommission":
            decommission.deliver(taken, LazySides(products), direction, desired, connected, heartbeat=heartbeat)
        else:
            deliver(taken, LazySides(products), direction, cfg, desired, heartbeat=heartbeat)
    except LeaseLost:
        log.warning("outbox job %s: lease lost; another worker owns it now", taken.job_id)
        return "lost"
    except (DeliveryFailed, DeliveryError) as exc:  # DeliveryError alone: a client could not even be built
        errors = exc.errors if isinstance(exc, DeliveryFailed) else {exc.product: exc}
        if not fail(taken, errors, cfg):
            return "lost"
        retrying = all(e.retryable for e in errors.values()) and taken.attempts < cfg.max_attempts
        return "retry" if retrying else "failed"
    if taken.op == "decommission":
        return "done" if finish_decommission(taken) else "lost"
    if not complete(taken):
        return "lost"
    if taken.op in ("create", "sync"):
        key_managers.after_delivery(taken.tenant_id)  # never raises: the delivery stands whatever the check finds
    return "done"


# --- The loop --------------------------------------------------------------------------------------------------


@dataclass
class Stats:
    done: int = 0
    retry: int = 0
    failed: int = 0
    lost: int = 0
    crashed: int = 0  # an unexpected error in the worker itself; the job's lease expires and it is retried
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, outcome: str) -> None:
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + 1)

    @property
    def total(self) -> int:
        return self.done + self.retry + self.failed + self.lost + self.crashed


def default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """`concurrency` threads claiming and delivering jobs for one app."""

    def __init__(self, app: Flask, *, concurrency: int = 1, name: str | None = None, poll_interval: float = 1.0,
                 cfg: Settings | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.app = app
        self.concurrency = concurrency
        self.name = name or default_name()
        self.poll_interval = poll_interval
        with app.app_context():
            self.cfg = cfg or settings()
        self._busy = 0
        self._lock = threading.Lock()

    def run(self, *, once: bool = False, stop: threading.Event | None = None) -> Stats:
        """Deliver until `stop` is set; with `once`, until no job is due and no thread is busy."""
        stop = stop or threading.Event()
        stats = Stats()
        threads = [threading.Thread(target=self._loop, args=(f"{self.name}/{i}", once, stop, stats),
                                    name=f"outbox-worker-{i}", daemon=True) for i in range(self.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # short joins keep the main thread responsive to signals
        return stats

    def drain(self, *, timeout: float = 60.0) -> Stats:
        """Run until no job is pending or running (failed ones stay), waiting for backoffs; for tests, scripts
        and the benchmark. Raises TimeoutError with what is left."""
        deadline = time.monotonic() + timeout
        total = Stats()
        while True:
            stats = self.run(once=True)
            for name in ("done", "retry", "failed", "lost", "crashed"):
                setattr(total, name, getattr(total, name) + getattr(stats, name))
            with self.app.app_context():
                left, next_at = _open_jobs()
            if not left:
                return total
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{left} outbox job(s) still open after {timeout:g} s")
            wait = 0.05 if next_at is None else max(0.0, (next_at - utcnow()).total_seconds())
            time.sleep(min(wait, max(0.0, deadline - time.monotonic()), 1.0) or 0.01)

    def _loop(self, worker: str, once: bool, stop: threading.Event, stats: Stats) -> None:
        products = Products()
        idle = 0.02
        next_lease_check = 0.0
        outcome: str | None = None
        with self.app.app_context():
            try:
                while not stop.is_set():
                    with self._lock:
                        self._busy += 1
                    check_expired = time.monotonic() >= next_lease_check
                    if check_expired:
                        next_lease_check = time.monotonic() + LEASE_CHECK_SECONDS
                    try:
                        outcome = process_one(worker, products, self.cfg, check_expired=check_expired,
                                              probe=outcome is None)  # after a job, more are likely
                    except Exception:  # the loop must survive: the lease brings the job back
                        log.exception("outbox worker %s: unexpected error", worker)
                        db.session.rollback()
                        outcome = "crashed"
                    finally:
                        with self._lock:
                            self._busy -= 1
                    if outcome is not None:
                        stats.add(outcome)
                        idle = 0.02
                        continue
                    if once:
                        with self._lock:
                            if self._busy == 0:
                                return
                        stop.wait(idle)  # another thread's job may free this tenant's next one
                        idle = min(idle * 2, 0.25)
                    else:
                        stop.wait(self.poll_interval)
            finally:
                products.close()
                db.session.remove()


def _open_jobs() -> tuple[int, datetime | None]:
    """How many jobs are pending or running, and when the earliest pending one is due."""
    count, next_at = db.session.execute(
        sa.select(sa.func.count(), sa.func.min(OutboxJob.next_attempt_at))
        .where(OutboxJob.status.in_(("pending", "running")))).one()
    db.session.rollback()
    return count, next_at
