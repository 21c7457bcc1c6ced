"""Reading the outbox for the pages: one job, a tenant's sync state, the overview. States, not presentation:
the badges and sentences are the web layer's (portal/web/sync/presentation.py)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from portal.extensions import db
from portal.models import OutboxJob, SyncState, Tenant
from portal.services.errors import NotFound
from portal.services.outbox.products import PRODUCTS, label

# An open job holds back the tenant's later jobs. "discarded" is not open: a dropped job no longer blocks anything.
OPEN_JOB_STATES = ("pending", "running", "failed")
SECRET_WORDS = ("password", "secret", "key")


def public_payload(payload: dict | None) -> dict:
    """The payload as a page may show it. Payloads hold no secret by construction; this is the second lock."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ("(hidden)" if any(w in k.lower() for w in SECRET_WORDS) and k != "passwordChanged"
                        else clean(v)) for k, v in value.items()}
        return value

    return clean(dict(payload or {}))


@dataclass(frozen=True)
class JobView:
    job: OutboxJob
    tenant_id: str
    payload: dict
    newer_open: int  # later jobs of the tenant still open (they wait for this one)

    @property
    def waiting_for_person(self) -> bool:
        return self.job.status == "failed"

    @property
    def can_retry(self) -> bool:
        return self.job.status in ("failed", "pending")

    @property
    def can_discard(self) -> bool:
        return self.job.status in ("failed", "pending")

    @property
    def fix_product(self) -> str:
        """The product the last error came from (its text starts with the product's name)."""
        return error_product(self.job.last_error)


def error_product(last_error: str | None) -> str:
    """The product a job's last error came from: its text starts with the product's label (IS 7 when unsure)."""
    text = last_error or ""
    return next((key for key, product in PRODUCTS.items() if text.startswith(product.label)), next(iter(PRODUCTS)))


def get_job(job_id: int) -> JobView:
    row = db.session.execute(sa.select(OutboxJob, Tenant.tenant_id).join(Tenant, Tenant.id == OutboxJob.tenant_id)
                             .where(OutboxJob.id == job_id)).first()
    if row is None:
        raise NotFound(f"No outbox job {job_id}.")
    job, tenant_id = row
    newer = db.session.execute(sa.select(sa.func.count()).select_from(OutboxJob).where(
        OutboxJob.tenant_id == job.tenant_id, OutboxJob.id > job.id, OutboxJob.status.in_(OPEN_JOB_STATES))
    ).scalar_one()
    return JobView(job, tenant_id, public_payload(job.payload), newer)


@dataclass(frozen=True)
class StateView:
    product: str
    status: str
    error: str | None = None
    error_code: str | None = None
    trace_id: str | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    synced_at: datetime | None = None
    fix: str | None = None  # one of FIX_HINTS
    updated_at: datetime | None = None  # when this product's state last changed (the step's time)

    @property
    def label(self) -> str:
        return label(self.product)

    @property
    def retrying(self) -> bool:
        return self.status == "failed" and self.next_attempt_at is not None

    @property
    def needs_person(self) -> bool:
        """Failed with no next attempt: waiting cannot fix it."""
        return self.status == "failed" and self.next_attempt_at is None


def _view(state: SyncState) -> StateView:
    return StateView(state.product, state.status, state.error, state.error_code, state.trace_id, state.attempts,
                     state.next_attempt_at, state.synced_at, state.fix, state.updated_at)


# Built once, the keys bound per call (an expanding parameter): building the statement with 50 literal keys cost
# more than running it, on every list page (issue 17).
_STATES_FOR_KEYS = (
    sa.select(Tenant.tenant_key, SyncState.product, SyncState.status, SyncState.error, SyncState.error_code,
              SyncState.trace_id, SyncState.attempts, SyncState.next_attempt_at, SyncState.synced_at,
              SyncState.fix, SyncState.updated_at)
    .join(SyncState, SyncState.tenant_id == Tenant.id)
    .where(Tenant.tenant_key.in_(sa.bindparam("keys", expanding=True))))


def states_for_keys(tenant_keys: Iterable[str]) -> dict[str, dict[str, StateView]]:
    """tenant_key -> product -> state, for a page of tenants: one query."""
    keys = list(tenant_keys)
    if not keys:
        return {}
    rows = db.session.execute(_STATES_FOR_KEYS, {"keys": keys}).all()
    found: dict[str, dict[str, StateView]] = {}
    for row in rows:
        found.setdefault(row.tenant_key, {})[row.product] = StateView(*row[1:])
    return found


@dataclass(frozen=True)
class TenantSync:
    states: dict[str, StateView]
    jobs: list[OutboxJob]
    open_jobs: int
    running: bool  # a worker holds one of its jobs now: Retry is not offered

    @property
    def retryable(self) -> bool:
        return bool(self.open_jobs) and not self.running

    @property
    def settled(self) -> bool:
        """Nothing will change without a person: no job pending (retrying included) or running; failed ones wait
        for a person. The newest jobs are enough to tell: a job waits behind an older open one, never before it."""
        return not any(job.status in ("pending", "running") for job in self.jobs)


def tenant_sync_of(tenant_id: str, *, limit: int = 10) -> tuple[Tenant, TenantSync]:
    """A tenant (by its id, any case) and its sync state; NotFound when there is no such tenant."""
    tenant = db.session.execute(sa.select(Tenant).where(Tenant.tenant_key == str(tenant_id).lower()[:64])
                                ).scalar_one_or_none()
    if tenant is None:
        raise NotFound(f"No tenant with id {tenant_id!r}.")
    return tenant, tenant_sync(tenant, limit=limit)


def tenant_sync(tenant: Tenant, *, limit: int = 10) -> TenantSync:
    states = {s.product: _view(s) for s in db.session.execute(
        sa.select(SyncState).where(SyncState.tenant_id == tenant.id)).scalars()}
    jobs = list(db.session.execute(sa.select(OutboxJob).where(OutboxJob.tenant_id == tenant.id)
                                   .order_by(OutboxJob.id.desc()).limit(limit)).scalars())
    counts = dict(db.session.execute(sa.select(OutboxJob.status, sa.func.count()).where(
        OutboxJob.tenant_id == tenant.id, OutboxJob.status.in_(OPEN_JOB_STATES)).group_by(OutboxJob.status)).all())
    return TenantSync(states, jobs, sum(counts.values()), bool(counts.get("running")))


@dataclass(frozen=True)
class Overview:
    counts: dict[str, int]
    failed: list[tuple[OutboxJob, str]]  # (job, tenant id): waiting for a person
    waiting: list[tuple[OutboxJob, str]]  # pending jobs with an error: retrying
    running: list[tuple[OutboxJob, str]] = field(default_factory=list)  # leased now: no retry offered

    @property
    def settled(self) -> bool:
        """No job pending or running: the page has nothing to wait for."""
        return not (self.counts.get("pending") or self.counts.get("running"))


def overview(limit: int = 50) -> Overview:
    counts = {status: n for status, n in db.session.execute(
        sa.select(OutboxJob.status, sa.func.count()).group_by(OutboxJob.status)).all()}

    def listed(*conditions) -> list[tuple[OutboxJob, str]]:
        return [(job, tid) for job, tid in db.session.execute(
            sa.select(OutboxJob, Tenant.tenant_id).join(Tenant, Tenant.id == OutboxJob.tenant_id)
            .where(*conditions).order_by(OutboxJob.id).limit(limit)).all()]

    return Overview(counts, listed(OutboxJob.status == "failed"),
                    listed(OutboxJob.status == "pending", OutboxJob.last_error.is_not(None)),
                    listed(OutboxJob.status == "running"))

