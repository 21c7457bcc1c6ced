"""What the operations dashboard shows: tenants by status, sync health, what expires soon, recent changes.

Each block is read only when the caller may see it (the web layer says which, from the roles of the pages the
block links to) and costs a fixed number of aggregate queries, whatever the number of tenants, jobs or keys."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from portal.extensions import db
from portal.models import ApiClient, AuditEvent, Certificate, OutboxJob, SigningKey, SyncState, Tenant
from portal.models.base import utcnow
from portal.models.outbox import SYNC_STATES
from portal.services.admin import audit, status
from portal.services.outbox import reads
from portal.services.outbox.products import PRODUCTS, label

BLOCKS = ("tenants", "sync", "certificates", "keys", "api_clients", "recent", "instance")
EXPIRY_WINDOW = timedelta(days=30)
LISTED = 8  # rows per list; the counts say how many there are in all


@dataclass(frozen=True)
class TenantCounts:
    total: int
    active: int
    inactive: int
    unverified: int
    decommissioning: int


@dataclass(frozen=True)
class SyncHealth:
    jobs: dict[str, int]  # job status -> count, and "retrying": pending jobs whose last attempt failed
    products: dict[str, dict[str, int]]  # product -> sync state -> tenants
    labels: dict[str, str]  # product -> its name
    needs_person: list  # (job, tenant id): failed, waiting for a person (the first LISTED)
    retrying: list  # (job, tenant id): pending after an error (the first LISTED)

    @property
    def healthy(self) -> bool:
        return not (self.needs_person or self.retrying)


@dataclass(frozen=True)
class Expiring:
    """Rows expiring before `until` (or expired already), soonest first; `total` counts them all."""

    rows: list
    total: int


@dataclass
class Dashboard:
    now: datetime
    until: datetime
    tenants: TenantCounts | None = None
    sync: SyncHealth | None = None
    certificates: Expiring | None = None
    keys: Expiring | None = None
    api_clients: Expiring | None = None
    recent: list[AuditEvent] = field(default_factory=list)
    recent_links: set[tuple[str, str]] = field(default_factory=set)  # (type, id) of recent objects that still exist
    instance: status.Overview | None = None


def tenant_counts() -> TenantCounts:
    row = db.session.execute(sa.select(
        sa.func.count(),
        sa.func.count().filter(Tenant.active.is_(True)),
        sa.func.count().filter(Tenant.active.is_(False)),
        sa.func.count().filter(Tenant.check_status != "passed"),
        sa.func.count().filter(Tenant.decommission_requested_at.is_not(None)),
    ).select_from(Tenant)).one()
    return TenantCounts(*row)


def sync_health() -> SyncHealth:
    jobs = reads.overview(limit=LISTED)
    products: dict[str, dict[str, int]] = {p: dict.fromkeys(SYNC_STATES, 0) for p in PRODUCTS}
    for product, state, count in db.session.execute(
            sa.select(SyncState.product, SyncState.status, sa.func.count())
            .group_by(SyncState.product, SyncState.status)).all():
        products.setdefault(product, dict.fromkeys(SYNC_STATES, 0))[state] = count
    retrying = db.session.execute(sa.select(sa.func.count()).select_from(OutboxJob).where(
        OutboxJob.status == "pending", OutboxJob.last_error.is_not(None))).scalar_one()
    return SyncHealth({**jobs.counts, "retrying": retrying}, products, {p: label(p) for p in products},
                      jobs.failed, jobs.waiting)


def _expiring(query: sa.Select) -> Expiring:
    """One query: the first LISTED rows and, through a window count, how many there are."""
    rows = db.session.execute(query.add_columns(sa.func.count().over().label("total")).limit(LISTED)).all()
    return Expiring(rows, rows[0].total if rows else 0)


def expiring_certificates(until: datetime) -> Expiring:
    return _expiring(sa.select(Certificate.id, Certificate.label, Certificate.role, Certificate.subject_dn,
                               Certificate.not_after)
                     .where(Certificate.not_after < until).order_by(Certificate.not_after, Certificate.id))


def expiring_keys(until: datetime) -> Expiring:
    """Passive signing keys whose grace period ends soon: tokens they signed stop validating then."""
    return _expiring(sa.select(SigningKey.kid, SigningKey.algorithm, SigningKey.passive_until, Tenant.tenant_id)
                     .join(Tenant, Tenant.id == SigningKey.tenant_id)
                     .where(SigningKey.status == "passive", SigningKey.passive_until < until)
                     .order_by(SigningKey.passive_until, SigningKey.id))


def expiring_api_clients(until: datetime) -> Expiring:
    return _expiring(sa.select(ApiClient.app_id, ApiClient.name, ApiClient.expires_at)
                     .where(ApiClient.revoked_at.is_(None), ApiClient.expires_at < until)
                     .order_by(ApiClient.expires_at, ApiClient.id))


def dashboard(blocks: set[str] | frozenset[str]) -> Dashboard:
    """The blocks asked for, each read with its few queries; the others stay None (or empty)."""
    now = utcnow()
    board = Dashboard(now=now, until=now + EXPIRY_WINDOW)
    if "tenants" in blocks:
        board.tenants = tenant_counts()
    if "sync" in blocks:
        board.sync = sync_health()
    if "certificates" in blocks:
        board.certificates = expiring_certificates(board.until)
    if "keys" in blocks:
        board.keys = expiring_keys(board.until)
    if "api_clients" in blocks:
        board.api_clients = expiring_api_clients(board.until)
    if "recent" in blocks:
        board.recent = audit.recent(limit=LISTED + 2)
        board.recent_links = audit.existing_objects(board.recent)
    if "instance" in blocks:
        board.instance = status.overview()
    return board
