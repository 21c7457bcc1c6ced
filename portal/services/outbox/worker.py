"""The outbox worker: claims due jobs (services.outbox.store), delivers them (services.outbox.delivery), and records
the outcome.

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

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import Flask

from portal.extensions import db
from portal.models import OutboxJob, ProductConnection
from portal.models.base import utcnow
from portal.services.outbox import bulk_jobs, store
from portal.services.outbox.delivery import LazySides, Products, deliver, deliver_decommission, desired_now
from portal.services.outbox.policy import Settings, settings
from portal.services.outbox.products import PRODUCTS, DeliveryError, DeliveryFailed, LeaseLost
from portal.services.sharing import key_managers

log = logging.getLogger(__name__)
LEASE_CHECK_SECONDS = 2.0  # how often each worker thread looks for jobs whose worker died


def process_one(worker: str, products: Products, cfg: Settings | None = None, *,
                check_expired: bool = True, probe: bool = True) -> str | None:
    """Claim one due job and deliver it. Returns "done", "retry", "failed", "lost" or None (nothing due)."""
    cfg = cfg or settings()
    taken = store.claim(worker, cfg, check_expired=check_expired, probe=probe)
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
        return "done" if store.complete(taken) else "lost"
    renew_after = cfg.lease_seconds / 3
    shown = {p for p in PRODUCTS if taken.steps.get(p) == "done"}

    def heartbeat() -> None:
        done = [p for p in PRODUCTS if taken.steps.get(p) == "done" and p not in shown]
        last = all(taken.steps.get(p) == "done" for p in PRODUCTS)  # the job's completion shows them at once
        if done and not last and taken.op != "decommission":  # a step ended: the pages show it now, not at the end
            store.renew(taken, cfg, done=done)
            shown.update(done)
        elif (taken.lease_until - utcnow()).total_seconds() < cfg.lease_seconds - renew_after:
            store.renew(taken, cfg)

    try:
        if taken.op == "decommission":
            deliver_decommission(taken, LazySides(products), direction, desired, connected, heartbeat=heartbeat)
        else:
            deliver(taken, LazySides(products), direction, cfg, desired, heartbeat=heartbeat)
    except LeaseLost:
        log.warning("outbox job %s: lease lost; another worker owns it now", taken.job_id)
        return "lost"
    except (DeliveryFailed, DeliveryError) as exc:  # DeliveryError alone: a client could not even be built
        errors = exc.errors if isinstance(exc, DeliveryFailed) else {exc.product: exc}
        if not store.fail(taken, errors, cfg):
            return "lost"
        retrying = all(e.retryable for e in errors.values()) and taken.attempts < cfg.max_attempts
        return "retry" if retrying else "failed"
    if taken.op == "decommission":
        return "done" if store.finish_decommission(taken) else "lost"
    if not store.complete(taken):
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
    bulk: int = 0  # bulk onboarding jobs run (services.outbox.bulk_jobs); not outbox jobs, so not in `total`
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
    """`concurrency` threads claiming and delivering outbox jobs for one app, and one thread running its bulk
    onboarding jobs (a long file never holds up delivery)."""

    def __init__(self, app: Flask, *, concurrency: int = 1, name: str | None = None, poll_interval: float = 1.0,
                 cfg: Settings | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        with app.app_context():
            room = _pool_room(db.engine.pool)
        if room is not None and room < concurrency + 2:
            raise ValueError(f"{concurrency} worker threads need {concurrency + 2} database connections (with the bulk "
                             f"and main threads); the pool has {room}. Set WORKER_CONCURRENCY (PORTAL_WORKER_"
                             f"CONCURRENCY) to {concurrency} or more: the pool is sized from it.")
        self.app = app
        self.concurrency = concurrency
        self.name = name or default_name()
        self.poll_interval = poll_interval
        with app.app_context():
            self.cfg = cfg or settings()
        self._busy = 0  # threads claiming or delivering a job right now
        self._bulk_busy = 0  # 1 while the bulk thread claims or runs a bulk job
        self._bulk_runs = 0  # bulk jobs run so far
        self._dry = threading.Event()  # a thread looked for work and found none (drain counts open jobs only then)
        self._lock = threading.Lock()

    def run(self, *, once: bool = False, stop: threading.Event | None = None) -> Stats:
        """Deliver until `stop` is set; with `once`, until no job is due and no thread is busy."""
        stop = stop or threading.Event()
        stats = Stats()
        _join(self._start(once, stop, stats))
        return stats

    def drain(self, *, timeout: float = 60.0) -> Stats:
        """Run until no job is pending or running (failed ones stay), waiting for backoffs; for tests, scripts
        and the benchmark. Raises TimeoutError with what is left.

        The threads stay up until then, as under `flask worker`: jobs another worker process holds count as open
        here, and starting every thread (and its product clients) again each time this process ran dry cost the
        benchmark's two processes more CPU than they delivered with."""
        deadline = time.monotonic() + timeout
        stop, stats = threading.Event(), Stats()
        threads = self._start(False, stop, stats, idle_cap=min(self.poll_interval, 0.25))
        try:
            while True:
                # While every thread finds work there is work left: count only once one came back empty-handed.
                if not self._dry.wait(max(0.0, min(0.05, deadline - time.monotonic()))):
                    if time.monotonic() >= deadline:
                        raise TimeoutError(f"outbox or bulk jobs still open after {timeout:g} s")
                    continue
                self._dry.clear()
                with self._lock:
                    bulk_idle, runs = self._bulk_busy == 0, self._bulk_runs
                with self.app.app_context():
                    left = _open_jobs()
                with self._lock:
                    # An outbox job is pending or running until the write that ends it, so `left` sees it. A bulk
                    # job stops being pending when claimed, before its outbox jobs exist: the count holds only
                    # if the bulk thread was idle before and after it and ran nothing in between.
                    settled = bulk_idle and self._bulk_busy == 0 and self._bulk_runs == runs
                if not left and settled:
                    return stats
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{left} outbox or bulk job(s) still open after {timeout:g} s")
        finally:
            stop.set()
            _join(threads)

    def _start(self, once: bool, stop: threading.Event, stats: Stats, idle_cap: float | None = None,
               ) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._loop, args=(f"{self.name}/{i}", once, stop, stats, idle_cap),
                                    name=f"outbox-worker-{i}", daemon=True) for i in range(self.concurrency)]
        threads.append(threading.Thread(target=self._bulk_loop, args=(once, stop, stats, idle_cap),
                                        name="bulk-worker", daemon=True))
        for thread in threads:
            thread.start()
        return threads

    def _busy_for(self, delta: int) -> None:
        with self._lock:
            self._busy += delta

    def _bulk_busy_for(self, delta: int, ran: bool = False) -> None:
        with self._lock:
            self._bulk_busy += delta
            self._bulk_runs += ran

    def _loop(self, worker: str, once: bool, stop: threading.Event, stats: Stats, idle_cap: float | None) -> None:
        """One delivery thread. Idle, it waits poll_interval; with `once` or an idle_cap (drain) it looks again
        after 20 ms, doubling to 250 ms (or the cap), since another thread's job may free a tenant's next one."""
        products = Products()
        idle = 0.02
        next_lease_check = 0.0
        outcome: str | None = None
        with self.app.app_context():
            try:
                while not stop.is_set():
                    self._busy_for(+1)
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
                        self._busy_for(-1)
                    if outcome is not None:
                        stats.add(outcome)
                        idle = 0.02
                        continue
                    self._dry.set()
                    if once:
                        with self._lock:
                            if self._busy == 0:
                                return
                        stop.wait(idle)
                        idle = min(idle * 2, 0.25)
                    elif idle_cap is not None:
                        stop.wait(idle)
                        idle = min(idle * 2, idle_cap)
                    else:
                        stop.wait(self.poll_interval)
            finally:
                products.close()
                db.session.remove()

    def _bulk_loop(self, once: bool, stop: threading.Event, stats: Stats, idle_cap: float | None) -> None:
        """Run pending bulk jobs one at a time; with `once`, until none is pending."""
        with self.app.app_context():
            try:
                while not stop.is_set():
                    self._bulk_busy_for(+1)
                    ran = False
                    try:
                        ran = bulk_jobs.run_next()
                    except Exception:  # the loop must survive; the job page shows the job as stopped
                        log.exception("bulk worker: unexpected error")
                        db.session.rollback()
                    finally:
                        self._bulk_busy_for(-1, ran)
                    if ran:
                        stats.add("bulk")
                    elif once:
                        return
                    else:
                        stop.wait(self.poll_interval if idle_cap is None else idle_cap)
            finally:
                db.session.remove()


def _pool_room(pool: sa.pool.Pool) -> int | None:
    """How many connections the pool hands out at once, or None when it has no limit of its own."""
    if not isinstance(pool, sa.pool.QueuePool):
        return None
    overflow = getattr(pool, "_max_overflow", 0)  # QueuePool's max_overflow (-1: none); no public accessor
    return None if overflow < 0 else pool.size() + overflow


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)  # short joins keep the main thread responsive to signals


def _open_jobs() -> int:
    """How many outbox jobs are pending or running, and bulk jobs waiting for a worker."""
    count = db.session.execute(sa.select(sa.func.count()).select_from(OutboxJob)
                               .where(OutboxJob.status.in_(("pending", "running")))).scalar_one()
    bulk_waiting = bulk_jobs.claim_waiting()
    db.session.rollback()
    return count + bulk_waiting
