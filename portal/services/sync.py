"""Durable propagation of tenant changes to IS 7 and API Manager (the transactional outbox, security.md §6).

- `enqueue` is called by services.tenants inside the tenant change's own transaction: the change and its job commit
  together or not at all, so no change is lost between the registry and the products.
- A worker (services.worker) `claim`s due jobs: `UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED)` on
  PostgreSQL, so workers side by side never take the same job; on SQLite, whose writers are serialised anyway, the
  same UPDATE guarded by `status = 'pending'` is the single, atomic claim. A job waits while an earlier job of the same
  tenant is open (pending, running or failed): a deactivation never overtakes the creation it follows.
- A claim is a lease. A worker that dies leaves a `running` job whose lease runs out; the next claim takes it over.
  Each claim has a fresh token, and reports carry it: a late report from the worker that lost the lease is ignored.
- `deliver` is idempotent, since a job can run more than once (at-least-once): look up before create, a duplicate
  that matches counts as done, the lifecycle is set only when it differs. With sharing off the portal writes both
  products; with a direction on it writes the source, waits for the other product to catch up, and repairs it if it
  did not (IS's listener never retries an HTTP error; API Manager rolls its own change back when IS refuses it).
- Delivery is level-triggered: a job acts on the tenant's CURRENT row when it runs (domain, name, status, owner,
  passwords), never on the payload, which only records what the change was (no secrets). So fixing the tenant (adding
  the missing owner) fixes its failed job on the next retry. The op says what kind of change it was: an owner update
  rewrites the owner, a decommission deactivates and deletes (services.decommission); the rest align the tenant.
- Failures retry with capped exponential backoff and jitter, never sooner than a `Retry-After`; after the last
  attempt, or on an error retrying cannot fix, the job is `failed` ("waiting for a person") until someone presses
  "retry now" or discards it. An error names its fix (FIX_HINTS): the pages link to where it is done.
- `SyncState` (tenant x product) is what the pages show: pending, running, synced, or failed with the WSO2 error,
  the fix and the next attempt.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from flask import current_app

from portal.clients.api_manager import ApiManagerClient, ApimTenantSpec
from portal.clients.errors import Cause, PermissionDenied, UpstreamError
from portal.clients.identity_server import IdentityServerClient, TenantOwnerSpec
from portal.extensions import db
from portal.models import OutboxJob, ProductConnection, SyncState, Tenant
from portal.models.base import utcnow
from portal.models.outbox import FIX_HINTS, JOB_OPS, SYNC_PRODUCTS
from portal.services import audit
from portal.services.context import Actor
from portal.services.errors import Conflict, NotFound

log = logging.getLogger(__name__)

PRODUCT_NAMES = {"is": "IS 7", "apim": "API Manager"}
# An open job holds back the tenant's later jobs. "discarded" is not open: a dropped job no longer blocks anything.
OPEN_JOB_STATES = ("pending", "running", "failed")
RETRYABLE_STATUSES = frozenset({408, 425, 429}) | frozenset(range(500, 600))
# No answer at all is retried (the product may be down, restarting, or behind a flaky proxy), except when the
# cause is certain to need a person: trust, names, keys and certificates do not fix themselves.
FINAL_CAUSES = frozenset({Cause.BAD_CREDENTIALS, Cause.KEY_MISMATCH, Cause.SERVER_NOT_TRUSTED,
                          Cause.SERVER_NAME_MISMATCH, Cause.CLIENT_CA_UNKNOWN, Cause.CLIENT_CERTIFICATE_REJECTED})
DIRECTIONS = {"apim_to_is": ("apim", "is"), "is_to_apim": ("is", "apim")}  # (source, target)


# --- Settings ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Delivery tuning, from SYNC_* config keys (the defaults suit real WSO2 servers; tests shorten them)."""

    max_attempts: int = 8
    backoff_base: float = 2.0  # seconds before the 2nd attempt; doubles each time
    backoff_cap: float = 600.0
    retry_after_cap: float = 3600.0  # a Retry-After beyond this is read as this
    lease_seconds: float = 120.0  # a job held longer by a silent worker is taken over
    verify_seconds: float = 20.0  # how long the other product gets to catch up when sharing is on
    poll_interval: float = 0.25

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        return cls(max_attempts=int(config.get("SYNC_MAX_ATTEMPTS", cls.max_attempts)),
                   backoff_base=float(config.get("SYNC_BACKOFF_BASE", cls.backoff_base)),
                   backoff_cap=float(config.get("SYNC_BACKOFF_CAP", cls.backoff_cap)),
                   retry_after_cap=float(config.get("SYNC_RETRY_AFTER_CAP", cls.retry_after_cap)),
                   lease_seconds=float(config.get("SYNC_LEASE_SECONDS", cls.lease_seconds)),
                   verify_seconds=float(config.get("SYNC_VERIFY_SECONDS", cls.verify_seconds)),
                   poll_interval=float(config.get("SYNC_POLL_INTERVAL", cls.poll_interval)))


def settings() -> Settings:
    return Settings.from_config(current_app.config)


# --- Propagation and owners ----------------------------------------------------------------------------------


def propagation_on() -> bool:
    """Will the registry's tenants be written to IS 7 / API Manager? Yes as soon as one product connection is
    configured: the worker then delivers every queued change. The one definition every caller uses."""
    return db.session.execute(sa.select(ProductConnection.product).limit(1)).first() is not None


OWNER_REQUIRED = ("An owner is required: a product connection is configured, so this tenant is written to IS 7, "
                  "and IS 7 creates every tenant with its owner (the tenant administrator). Enter the owner's {what}.")
INVITE_REFUSED = ("API Manager → IS 7 sharing is on: API Manager creates the IS 7 owner with the password it was "
                  "given (inline-password), so an invitation email can never be sent. Choose inline-password and "
                  "set the owner's password, or switch the sharing direction.")


@dataclass(frozen=True)
class OwnerRules:
    """What registration and edits must ask of the owner now (messages, or None when there is no such rule)."""

    required: str | None = None  # a message with {what}: "user name" / "email"
    invite_refused: str | None = None


def owner_rules() -> OwnerRules:
    """The owner rules for the current connections and sharing direction (one place; tenants and bulk use it)."""
    if not propagation_on():
        return OwnerRules()
    return OwnerRules(required=OWNER_REQUIRED,
                      invite_refused=INVITE_REFUSED if current_direction() == "apim_to_is" else None)


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
    for product in SYNC_PRODUCTS:
        if product not in rows:
            rows[product] = SyncState(tenant_id=tenant_id, product=product, status="pending", attempts=0,
                                      updated_at=utcnow())
            db.session.add(rows[product])
    return rows


RUNNING_REFUSED = "A worker is delivering {what} now: wait for this attempt to end, then try again."


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


# --- One job: read, retry, discard ----------------------------------------------------------------------------

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
        return "apim" if (self.job.last_error or "").startswith(PRODUCT_NAMES["apim"]) else "is"


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


def retry_job(job_id: int, actor: Actor) -> JobView:
    """Make one failed or waiting job due now, with a fresh set of attempts; audited. A running job is refused."""
    view = get_job(job_id)
    job = view.job
    if job.status == "running":
        raise Conflict(RUNNING_REFUSED.format(what=f"job {job.id}"))
    if job.status not in ("failed", "pending"):
        raise Conflict(f"Job {job.id} is {job.status}: only a failed or waiting job can be retried.")
    now = utcnow()
    before = job.status
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
    view = get_job(job_id)
    job = view.job
    if job.status == "running":
        raise Conflict(RUNNING_REFUSED.format(what=f"job {job.id}"))
    if job.status not in ("failed", "pending"):
        raise Conflict(f"Job {job.id} is {job.status}: only a failed or waiting job can be discarded.")
    now = utcnow()
    before = job.status
    job.status, job.lease_until, job.updated_at = "discarded", None, now
    if job.op == "decommission":
        from portal.services import decommission

        decommission.cancel(job.tenant_id, actor, now)
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
            state.error = (f"The {job.op} change was discarded by {actor.name}; {PRODUCT_NAMES[product]} may differ "
                           "from the registry.")
            state.error_code = state.trace_id = None
        state.next_attempt_at, state.updated_at = None, now
    audit.record(actor, "sync.job_discard", "tenant", view.tenant_id,
                 {"job": {"before": None, "after": job.id}, "op": job.op,
                  "status": {"before": before, "after": "discarded"}})
    db.session.commit()
    return view


# --- Reading, for the pages ------------------------------------------------------------------------------------


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

    @property
    def label(self) -> str:
        return PRODUCT_NAMES[self.product]

    @property
    def badge(self) -> str:
        """The badge's CSS state class."""
        return BADGES.get(self.status, "")

    @property
    def retrying(self) -> bool:
        return self.status == "failed" and self.next_attempt_at is not None

    @property
    def needs_person(self) -> bool:
        """Failed with no next attempt: waiting cannot fix it."""
        return self.status == "failed" and self.next_attempt_at is None

    @property
    def title(self) -> str:
        return describe(self)


BADGES = {"synced": "state-ok", "failed": "state-off", "pending": "state-warn", "running": "state-warn"}


def describe(state: StateView) -> str:
    """One sentence for a badge's tooltip and the tenant page."""
    name = PRODUCT_NAMES[state.product]
    if state.status == "synced":
        return f"{name} holds the registry's tenant."
    if state.status == "running":
        return f"A worker is delivering the change to {name} now."
    if state.status == "pending":
        return f"The change waits for a worker (or for an earlier change of this tenant) to reach {name}."
    text = state.error or f"{name}: failed."
    if state.next_attempt_at is not None:
        return f"{text} Attempt {state.attempts}; next attempt at {state.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC."
    fix = f" Waiting for a person: {FIX_TEXT[state.fix]}, then" if state.fix in FIX_TEXT else " Waiting for a person:"
    return f"{text} Gave up after {state.attempts} attempt(s).{fix} use Retry now."


# What each fix hint asks of a person (the pages add the link to where it is done).
FIX_TEXT = {
    "owner": "add the tenant's owner (user name and email) on its edit page",
    "connection": "check the product connection (address, trust, credentials)",
    "permission": "give the portal's user in the product the permission the call needs",
    "mappings": "let the portal's client certificate and user pass IS 7's certificate mappings",
    "sharing": "check the sharing settings of both products",
    "reconcile": "resolve the difference on the reconcile page",
}
assert set(FIX_TEXT) == set(FIX_HINTS)


def _view(state: SyncState) -> StateView:
    return StateView(state.product, state.status, state.error, state.error_code, state.trace_id, state.attempts,
                     state.next_attempt_at, state.synced_at, state.fix)


def states_for_keys(tenant_keys: Iterable[str]) -> dict[str, dict[str, StateView]]:
    """tenant_key -> product -> state, for a page of tenants: one query."""
    keys = list(tenant_keys)
    if not keys:
        return {}
    rows = db.session.execute(
        sa.select(Tenant.tenant_key, SyncState.product, SyncState.status, SyncState.error, SyncState.error_code,
                  SyncState.trace_id, SyncState.attempts, SyncState.next_attempt_at, SyncState.synced_at,
                  SyncState.fix)
        .join(SyncState, SyncState.tenant_id == Tenant.id).where(Tenant.tenant_key.in_(keys))).all()
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


# --- Delivery ---------------------------------------------------------------------------------------------


class LeaseLost(Exception):
    """Another worker took the job over (our lease expired): stop touching it."""


class DeliveryError(Exception):
    """One product refused or could not be reached. `retryable` says whether waiting can help."""

    def __init__(self, product: str, message: str, *, retryable: bool, code: str | None = None,
                 trace_id: str | None = None, status: int | None = None, retry_after: float | None = None,
                 fix: str | None = None) -> None:
        super().__init__(message)
        if fix is not None and fix not in FIX_HINTS:
            raise ValueError(f"unknown fix hint {fix!r}")
        self.product = product
        self.message = message
        self.retryable = retryable
        self.code = code
        self.trace_id = trace_id
        self.status = status
        self.retry_after = retry_after
        self.fix = fix

    @classmethod
    def from_upstream(cls, product: str, exc: UpstreamError, *, certificate: bool = False) -> DeliveryError:
        """Retry what waiting can fix: no answer (down, reset, timeout), 408/425/429 and 5xx. A 500 that the
        product explains with its own code (IS's TM-65002 for a bad email) will not change, but API Manager's SOAP
        faults and IS's listener errors also come as 500s, and the issue's rule is that a change arrives when the
        fault clears: so 5xx retries until the attempts run out. A 4xx is final until someone retries."""
        status = exc.status
        retryable = (exc.cause not in FINAL_CAUSES) if status is None else status in RETRYABLE_STATUSES
        message = str(exc)
        fix = None
        if status == 403:  # the user lacks the resource's permission (IS 7: identity.xml.j2's resource table)
            fix = "permission"
            message += " " + (exc.hint if isinstance(exc, PermissionDenied) else
                              f"The portal's {PRODUCT_NAMES[product]} user lacks a permission this call needs.")
        elif status == 401:  # with a client certificate, IS's certificate handler decides alone
            fix = "mappings" if certificate else "connection"
        elif status is None and not retryable:
            fix = "connection"
        return cls(product, message, retryable=retryable, code=exc.code, trace_id=exc.trace_id, status=status,
                   retry_after=exc.retry_after, fix=fix)


class DeliveryFailed(Exception):
    def __init__(self, errors: dict[str, DeliveryError]) -> None:
        super().__init__("; ".join(str(e) for e in errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class Desired:
    """The tenant as the products must have it: the registry's row as it is when the job runs."""

    domain: str
    name: str | None
    active: bool
    username: str | None
    email: str | None
    firstname: str | None
    lastname: str | None
    provisioning: str | None
    password: str | None = field(default=None, repr=False)  # the owner's, inline-password only
    apim_password: str | None = field(default=None, repr=False)  # generated for invite-via-email owners
    password_changed: bool = False

    @property
    def apim_admin_password(self) -> str | None:
        """What API Manager's addTenant gets: SOAP has no ask-password path, so an invite-via-email owner's
        generated one."""
        if (self.provisioning or "inline-password") == "inline-password":
            return self.password
        return self.apim_password


TENANT_COLUMNS = (Tenant.domain, Tenant.display_name, Tenant.active, Tenant.owner_username, Tenant.owner_email,
                  Tenant.owner_first_name, Tenant.owner_last_name, Tenant.owner_provisioning, Tenant.owner_password,
                  Tenant.apim_admin_password)


def desired_now(tenant_pk: int, payload: Mapping[str, Any]) -> Desired | None:
    """The tenant's current row (None when it is gone). From the payload only what the change was: whether the
    owner's password changed."""
    row = db.session.execute(sa.select(*TENANT_COLUMNS).where(Tenant.id == tenant_pk)).first()
    if row is None:
        return None
    return Desired(domain=row.domain, name=row.display_name, active=bool(row.active), username=row.owner_username,
                   email=row.owner_email, firstname=row.owner_first_name, lastname=row.owner_last_name,
                   provisioning=row.owner_provisioning,
                   password=row.owner_password if row.owner_provisioning != "invite-via-email" else None,
                   apim_password=row.apim_admin_password,
                   password_changed=bool(payload.get("passwordChanged")))


@dataclass
class Remote:
    """A tenant as one product has it."""

    active: bool | None
    ref: str | None = None  # IS: the tenant's UUID
    owner: str | None = None
    email: str | None = None
    firstname: str | None = None
    lastname: str | None = None
    changed: bool = False  # set by ensure() when it had to write: the product's own sync then fires


class Side(Protocol):
    """One product, in the few operations delivery needs."""

    key: str
    observes_owner: bool  # can a read tell whether the owner's email and names arrived?
    presents_certificate: bool  # does the portal call it with a client certificate (IS 7 mTLS)?

    def read(self, domain: str) -> Remote | None: ...
    def create(self, desired: Desired) -> Remote: ...
    def update_owner(self, desired: Desired, remote: Remote) -> None: ...
    def set_active(self, desired: Desired, remote: Remote) -> None: ...
    def delete(self, domain: str, remote: Remote) -> None: ...


class IsSide:
    key = "is"
    observes_owner = False  # the tenant resource lists owners by id and username only

    def __init__(self, client: IdentityServerClient) -> None:
        self.client = client
        self.presents_certificate = bool(getattr(client, "presents_certificate", False))

    def read(self, domain: str) -> Remote | None:
        tenant = self.client.get_tenant_by_domain(domain)
        if tenant is None:
            return None
        owners = tenant.owners or ()
        return Remote(active=tenant.activated, ref=tenant.id, owner=owners[0].username if owners else None)

    def create(self, desired: Desired) -> Remote:
        _need_owner(self.key, desired)
        method = desired.provisioning or "inline-password"
        owner = TenantOwnerSpec(username=desired.username, email=desired.email, firstname=desired.firstname,
                                lastname=desired.lastname, provisioning_method=method,
                                password=desired.password if method == "inline-password" else None)
        ref = self.client.create_tenant(desired.domain, owner, name=desired.name)
        return Remote(active=True, ref=ref, owner=desired.username)

    def update_owner(self, desired: Desired, remote: Remote) -> None:
        owners = self.client.get_owners(remote.ref)
        if not owners:
            raise DeliveryError(self.key, f"IS 7 lists no owner for tenant {desired.domain}.", retryable=False)
        self.client.update_owner(remote.ref, owners[0].id, email=desired.email or "",
                                 firstname=desired.firstname or "", lastname=desired.lastname or "",
                                 password=desired.password if desired.password_changed else None)

    def set_active(self, desired: Desired, remote: Remote) -> None:
        self.client.set_lifecycle(remote.ref, desired.active)
        remote.active = desired.active

    def delete(self, domain: str, remote: Remote) -> None:
        """DELETE /tenants/{id}/metadata; raises the client's typed error (TM-60016) when deletion is disabled."""
        self.client.delete_tenant_metadata(remote.ref)


class ApimSide:
    key = "apim"
    observes_owner = True  # getTenant returns the admin's email and names
    presents_certificate = False  # Basic over TLS

    def __init__(self, client: ApiManagerClient) -> None:
        self.client = client

    def read(self, domain: str) -> Remote | None:
        tenant = self.client.get_tenant(domain)
        if tenant is None:
            return None
        return Remote(active=tenant.active, ref=str(tenant.tenant_id), owner=tenant.admin, email=tenant.email,
                      firstname=tenant.firstname, lastname=tenant.lastname)

    def _spec(self, desired: Desired, *, password: str | None, active: bool) -> ApimTenantSpec:
        return ApimTenantSpec(domain=desired.domain, admin=desired.username, admin_password=password,
                              email=desired.email, firstname=desired.firstname, lastname=desired.lastname,
                              active=active)

    def create(self, desired: Desired) -> Remote:
        _need_owner(self.key, desired)
        password = desired.apim_admin_password
        if not password:
            raise DeliveryError(self.key, f"Tenant {desired.domain}'s owner has no password for API Manager (its "
                                "SOAP addTenant cannot invite): save the owner again so the portal generates one, "
                                "then retry.", retryable=False, fix="owner")
        self.client.add_tenant(self._spec(desired, password=password, active=True))
        return Remote(active=True, owner=desired.username, email=desired.email, firstname=desired.firstname,
                      lastname=desired.lastname)

    def update_owner(self, desired: Desired, remote: Remote) -> None:
        password = desired.password if desired.password_changed else None
        self.client.update_tenant(self._spec(desired, password=password, active=bool(remote.active)),
                                  tenant_id=int(remote.ref) if remote.ref else None)
        remote.email, remote.firstname, remote.lastname = desired.email, desired.firstname, desired.lastname

    def set_active(self, desired: Desired, remote: Remote) -> None:
        if desired.active:
            self.client.activate_tenant(desired.domain)
        else:
            self.client.deactivate_tenant(desired.domain)
        remote.active = desired.active

    def delete(self, domain: str, remote: Remote) -> None:
        """SOAP deleteTenant: may report success and do nothing (deletion disabled): the caller reads again."""
        self.client.delete_tenant(domain)


def _need_owner(product: str, desired: Desired) -> None:
    if not desired.username or not desired.email:
        raise DeliveryError(product, f"Tenant {desired.domain} has no owner (user name and email); "
                            f"{PRODUCT_NAMES[product]} needs one to create it. Add an owner, then retry.",
                            retryable=False, fix="owner")


@contextmanager
def calling(side: Side | str) -> Iterator[None]:
    """Turn a client's typed error into a DeliveryError naming the product (and, for a 401, whether IS 7 saw the
    portal's client certificate: then its certificate mappings refused the call)."""
    product = side if isinstance(side, str) else side.key
    try:
        yield
    except (DeliveryError, LeaseLost):
        raise
    except UpstreamError as exc:
        certificate = False if isinstance(side, str) else side.presents_certificate
        raise DeliveryError.from_upstream(product, exc, certificate=certificate) from exc




def _owner_matches(remote: Remote, desired: Desired) -> bool:
    return not remote.owner or not desired.username or remote.owner.lower() == desired.username.lower()


def ensure(side: Side, desired: Desired, *, owner_update: bool) -> Remote:
    """Make one product hold the tenant as desired, idempotently: look up; create when absent (a create refused
    because it exists meanwhile counts as done when the tenant found matches); update the owner when asked; set
    the lifecycle only when it differs. The result's `changed` says whether anything was written."""
    with calling(side):
        remote = side.read(desired.domain)
        created = False
        if remote is None:
            try:
                remote = side.create(desired)
                created = remote.changed = True
            except UpstreamError as exc:
                if exc.status is None:
                    raise  # no answer: the create may or may not have happened; the next attempt looks again
                remote = side.read(desired.domain)  # a duplicate: done if it is the same tenant (checked below)
                if remote is None:
                    raise
        if not _owner_matches(remote, desired):
            raise DeliveryError(side.key, f"{PRODUCT_NAMES[side.key]} already has tenant {desired.domain} with "
                                f"owner {remote.owner!r}, not {desired.username!r}. Resolve it on the reconcile "
                                "page.", retryable=False, fix="reconcile")
        if owner_update and not created:
            side.update_owner(desired, remote)
            remote.changed = True
        if remote.active != desired.active:
            side.set_active(desired, remote)
            remote.changed = True
    return remote


def _caught_up(side: Side, remote: Remote | None, desired: Desired, owner_update: bool) -> bool:
    if remote is None or remote.active != desired.active:
        return False
    if owner_update and side.observes_owner:
        return (remote.email, remote.firstname or None, remote.lastname or None) == (
            desired.email, desired.firstname or None, desired.lastname or None)
    return True


def _await(side: Side, desired: Desired, owner_update: bool, seconds: float, cfg: Settings,
           heartbeat: Callable[[], None]) -> Remote | None:
    """Poll the target product until it holds the change or `seconds` pass (0: look once)."""
    deadline = time.monotonic() + seconds
    while True:
        with calling(side):
            remote = side.read(desired.domain)
        if _caught_up(side, remote, desired, owner_update) or time.monotonic() >= deadline:
            return remote
        heartbeat()
        time.sleep(min(cfg.poll_interval, max(0.0, deadline - time.monotonic())))


class JobInHand(Protocol):
    op: str
    payload: dict
    steps: dict  # product -> "done", updated as delivery goes


def deliver(taken: JobInHand, sides: Mapping[str, Side], direction: str, cfg: Settings, desired: Desired, *,
            heartbeat: Callable[[], None] = lambda: None) -> None:
    """Carry one job to the products, as the tenant is now (`desired`, read when the job runs); progress is
    recorded in `taken.steps`. Raises DeliveryFailed."""
    owner_update = taken.op == "update_owner"
    errors: dict[str, DeliveryError] = {}
    if direction in DIRECTIONS:
        source_key, target_key = DIRECTIONS[direction]
        try:
            source, target = sides[source_key], sides[target_key]
            fired = False  # did our write make the source product's own sync push to the target?
            if taken.steps.get(source_key) != "done":
                fired = ensure(source, desired, owner_update=owner_update).changed
                taken.steps[source_key] = "done"
                heartbeat()
            if taken.steps.get(target_key) != "done":
                remote = _await(target, desired, owner_update, cfg.verify_seconds if fired else 0.0, cfg, heartbeat)
                if not _caught_up(target, remote, desired, owner_update):
                    ensure(target, desired, owner_update=owner_update)  # repair what the product's sync missed
                elif owner_update and (not target.observes_owner or desired.password_changed):
                    with calling(target):  # what a read cannot confirm is written again (idempotent)
                        target.update_owner(desired, remote)
                # The source may have undone its change when the target refused it (API Manager does): look again.
                ensure(source, desired, owner_update=False)
                taken.steps[target_key] = "done"
        except DeliveryError as exc:
            errors[exc.product] = exc
    else:  # sharing off: the portal writes both products itself
        for key in SYNC_PRODUCTS:
            if taken.steps.get(key) == "done":
                continue
            try:
                ensure(sides[key], desired, owner_update=owner_update)
                taken.steps[key] = "done"
            except DeliveryError as exc:
                errors[key] = exc
            heartbeat()
    if errors:
        raise DeliveryFailed(errors)


# --- One job, start to finish ----------------------------------------------------------------------------------


class Products:
    """Clients for both products, built on first use and rebuilt after `ttl` seconds so edited connection settings
    take effect. One instance per worker thread: clients are not shared between threads."""

    def __init__(self, ttl: float = 60.0, direction_ttl: float = 5.0) -> None:
        self.ttl = ttl
        self.direction_ttl = direction_ttl
        self._built: dict[str, tuple[float, IdentityServerClient | ApiManagerClient]] = {}
        self._direction: tuple[float, str] | None = None

    def direction(self) -> str:
        """The sharing direction, read again every few seconds. A job delivered under the old direction just
        after a switch still converges: both modes end with the tenant right in both products."""
        if self._direction is None or time.monotonic() - self._direction[0] > self.direction_ttl:
            self._direction = (time.monotonic(), current_direction())
        return self._direction[1]

    def side(self, product: str) -> Side:
        from portal.services import connections

        built = self._built.get(product)
        if built is None or time.monotonic() - built[0] > self.ttl:
            if built is not None:
                built[1].close()
            try:
                client = connections.is_client() if product == "is" else connections.apim_client()
            except connections.NotConfigured as exc:  # set up later, the next attempt goes through
                raise DeliveryError(product, exc.message, retryable=True, fix="connection") from None
            except UpstreamError as exc:  # the stored certificate or key cannot be loaded
                error = DeliveryError.from_upstream(product, exc)
                error.fix = error.fix or "connection"
                raise error from None
            except ValueError as exc:  # a stored value the client refuses
                raise DeliveryError(product, f"The {PRODUCT_NAMES[product]} connection is unusable: {exc}",
                                    retryable=False, fix="connection") from None
            built = (time.monotonic(), client)
            self._built[product] = built
        client = built[1]
        return IsSide(client) if isinstance(client, IdentityServerClient) else ApimSide(client)

    def close(self) -> None:
        for _, client in self._built.values():
            client.close()
        self._built.clear()


class LazySides(dict):
    """Build a product's client only when delivery reaches it, so an unconfigured product fails only its step."""

    def __init__(self, products: Products) -> None:
        super().__init__()
        self.products = products

    def __missing__(self, key: str) -> Side:
        side = self.products.side(key)
        self[key] = side
        return side


def current_direction() -> str:
    from portal.services import sharing

    return sharing.current().direction
