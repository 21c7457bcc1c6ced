"""Bulk onboarding: a CSV or JSON Lines file of registration bodies, validated (dry run) or applied.

Every row goes through the same code as a single registration: tenant_spec.parse for the field rules and
tenants.register_tenant to store it, so a row fails in bulk exactly as it would through the form or the API.
Applying is idempotent: a tenant that is already registered with identical settings is skipped, one that differs
is reported as a conflict and left alone, and each created tenant commits on its own, so a run that stops half-way
leaves a consistent registry and running the same file again completes the rest. Reading the file into rows is
bulk_files'.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import selectinload, undefer

from portal.extensions import db
from portal.idp import registry
from portal.models import BulkJob, Tenant
from portal.models.base import utcnow
from portal.services.admin import audit
from portal.services.context import Actor
from portal.services.errors import Conflict, NotFound, ValidationError
from portal.services.tenants import service as tenants, spec as tenant_spec
from portal.services.tenants.bulk_files import FileProblem, Row, parse_file
from portal.services.tenants.spec import TenantSpec
from portal.services.tokens import signing_keys

log = logging.getLogger(__name__)

CHUNK = 200  # rows classified per round of duplicate look-ups
PROGRESS_EVERY = 25  # rows between progress writes while a job runs...
PROGRESS_SECONDS = 1.0  # ...or this much time, whichever comes first
STALE_AFTER_SECONDS = 120  # a running job silent this long has lost its process
PAGE_PROBLEMS = 500  # problems listed on the job page; the CSV report has every row

# Report outcomes. A dry run says what applying would do: "new" rows would be created.
NEW, CREATED, SKIPPED, CONFLICT, FAILED = "new", "created", "skipped", "conflict", "failed"
PROBLEMS = (CONFLICT, FAILED)
CONFLICT_MESSAGE = ("Differs from the registered tenant. Bulk onboarding never changes an existing tenant: edit it "
                    "on its page or with PUT /v1/tenant/{tenantId}.")


# --- comparing a row with a registered tenant ---------------------------------------------------------------


def differences(spec: TenantSpec, tenant: Tenant) -> list[str]:
    """The API field paths where a parsed row differs from the stored tenant; [] means identical.

    Non-secret fields are those of tenants.to_api; secrets are compared with the stored (decrypted) values and
    only named, never shown. A row without a signingKey asked for a generated key, so the key is not compared."""
    found: list[str] = []

    def check(path: str, mine: Any, stored: Any) -> None:
        if mine != stored:
            found.append(path)

    check("tenantId", spec.tenant_id, tenant.tenant_id)
    check("displayName", spec.display_name, tenant.display_name)
    check("tenantDomain", spec.domain, tenant.domain)
    check("clientId", spec.client_id, tenant.client_id)
    check("clientSecret", spec.client_secret, tenant.client_secret)
    check("identityProviderType", spec.idp_type, tenant.idp_type)
    check("supportAlgorithm", spec.algorithm, tenant.support_algorithm)
    if spec.owner is None or tenant.owner_username is None:
        check("owner", spec.owner is None, tenant.owner_username is None)
    else:
        check("owner.username", spec.owner.username, tenant.owner_username)
        check("owner.email", spec.owner.email, tenant.owner_email)
        check("owner.firstName", spec.owner.first_name, tenant.owner_first_name)
        check("owner.lastName", spec.owner.last_name, tenant.owner_last_name)
        check("owner.provisioningMethod", spec.owner.provisioning, tenant.owner_provisioning)
        if spec.owner.password is not None:
            check("owner.password", spec.owner.password, tenant.owner_password)
    if spec.idp_type == tenant.idp_type:
        family = registry.get(spec.idp_type)
        mine, stored = family.flat_settings(spec.idp_settings), family.flat_settings(tenant.idp_settings or {})
        for path in sorted(set(mine) | set(stored)):
            check(path, mine.get(path), stored.get(path))
        if family.secret_path:
            check(family.secret_path, spec.idp_secret, tenant.idp_secret)
    if spec.signing_key and not _same_key(spec, tenant):
        found.append("signingKey")
    return found


def _same_key(spec: TenantSpec, tenant: Tenant) -> bool:
    key = tenant.active_key
    if key is None or key.algorithm != spec.algorithm:
        return False
    if signing_keys.is_rsa(spec.algorithm):  # the stored PEM is re-encoded as PKCS#8: compare the public key
        try:
            return signing_keys.rsa_key(spec.algorithm, spec.signing_key).kid == key.kid
        except signing_keys.KeyProblem:
            return False
    return spec.signing_key == key.secret


# --- classifying rows -----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    row: Row
    outcome: str
    errors: dict[str, str] = field(default_factory=dict)

    def entry(self) -> dict[str, Any]:
        tenant_id = self.row.body.get("tenantId")
        return {"row": self.row.number, "tenantId": tenant_id[:64] if isinstance(tenant_id, str) else None,
                "outcome": self.outcome, "errors": self.errors}


def _classify(rows: list[Row]) -> Iterator[Outcome]:
    """What applying each row would do, in file order: "new" (to register), "skipped" (an identical tenant
    exists), "conflict" (the id exists with other settings) or "failed" (invalid, a duplicate within the file, or a
    domain another tenant holds). Each chunk is judged completely before it is handed out: the caller's commits
    would otherwise expire the tenants loaded for comparison."""
    rules = tenants.rules()
    claimed = _Claims()
    for start in range(0, len(rows), CHUNK):
        parsed: list[tuple[Row, TenantSpec | None, dict[str, str]]] = []
        for row in rows[start:start + CHUNK]:
            try:
                parsed.append((row, tenant_spec.parse(row.body, rules), {}))
            except ValidationError as exc:
                parsed.append((row, None, dict(exc.errors)))
        specs = [spec for _, spec, _ in parsed if spec is not None]
        existing, domain_owner = _lookup(specs)
        outcomes = []
        for row, spec, errors in parsed:
            if spec is None:
                outcomes.append(Outcome(row, FAILED, errors))
            else:
                outcomes.append(_judge(row, spec, existing.get(spec.tenant_id.lower()), domain_owner, claimed))
        yield from outcomes


@dataclass
class _Claims:
    """Which row of the file first named each tenant id (ignoring case) and each domain."""

    ids: dict[str, int] = field(default_factory=dict)
    domains: dict[str, int] = field(default_factory=dict)


def _lookup(specs: list[TenantSpec]) -> tuple[dict[str, Tenant], dict[str, str]]:
    """The registered tenants with these ids (keys loaded for comparison), and who holds these domains."""
    if not specs:
        return {}, {}
    keys = [spec.tenant_id.lower() for spec in specs]
    existing = {t.tenant_key: t for t in db.session.execute(
        sa.select(Tenant).where(Tenant.tenant_key.in_(keys)).options(selectinload(Tenant.keys))).scalars()}
    domain_owner = dict(db.session.execute(
        sa.select(Tenant.domain, Tenant.tenant_id).where(Tenant.domain.in_([spec.domain for spec in specs]))).all())
    return existing, domain_owner


def _judge(row: Row, spec: TenantSpec, tenant: Tenant | None, domain_owner: dict[str, str],
           claimed: _Claims) -> Outcome:
    key = spec.tenant_id.lower()
    if key in claimed.ids:
        return Outcome(row, FAILED, {"tenantId": f"The same tenantId as row {claimed.ids[key]} of this file (ids "
                                                 "are compared ignoring case)."})
    if tenant is not None:
        claimed.ids[key] = row.number
        claimed.domains.setdefault(spec.domain, row.number)
        changed = differences(spec, tenant)
        return Outcome(row, CONFLICT, {path: CONFLICT_MESSAGE for path in changed}) if changed else \
            Outcome(row, SKIPPED)
    if spec.domain in domain_owner:
        return Outcome(row, FAILED, {"tenantDomain": f"The domain {spec.domain} is already used by tenant "
                                                     f"{domain_owner[spec.domain]}."})
    if spec.domain in claimed.domains:
        return Outcome(row, FAILED, {"tenantDomain": f"The same domain as row {claimed.domains[spec.domain]} of "
                                                     "this file."})
    claimed.ids[key], claimed.domains[spec.domain] = row.number, row.number
    return Outcome(row, NEW)


def _apply(rows: list[Row], actor: Actor, check_connections: bool) -> Iterator[Outcome]:
    """Register the new rows one by one; register_tenant commits each with its audit entry."""
    for outcome in _classify(rows):
        if outcome.outcome != NEW:
            yield outcome
            continue
        body = outcome.row.body
        skip_check = not check_connections or body.get("skipConnectionCheck") is True
        try:
            tenants.register_tenant(body, actor, skip_check=skip_check)
        except (ValidationError, Conflict) as exc:  # CheckFailed is a ValidationError
            db.session.rollback()
            yield Outcome(outcome.row, FAILED, dict(exc.errors))
        else:
            yield Outcome(outcome.row, CREATED)


# --- jobs -----------------------------------------------------------------------------------------------------


def list_jobs(limit: int = 50) -> list[BulkJob]:
    return list(db.session.execute(sa.select(BulkJob).order_by(BulkJob.id.desc()).limit(limit)).scalars())


def get_job(job_id: int) -> BulkJob:
    job = db.session.get(BulkJob, job_id)
    if job is None:
        raise NotFound(f"No bulk job #{job_id}.")
    return job


def create_job(filename: str, data: bytes, actor: Actor, *, dry_run: bool, check_connections: bool) -> BulkJob:
    """Read the file (FileProblem when it cannot be), store it encrypted as a job for the worker to run."""
    config = current_app.config
    if len(data) > config["BULK_MAX_BYTES"]:
        raise FileProblem([f"The file is larger than {_size(config['BULK_MAX_BYTES'])}."])
    parsed = parse_file(filename, data, config["BULK_MAX_ROWS"])
    rows = [{"row": r.number, "body": r.body} for r in parsed.rows]
    return _start(actor, filename=filename[:255] or "upload", file_format=parsed.file_format, rows=rows,
                  dry_run=dry_run, check_connections=check_connections, source_job_id=None)


def apply_job(job_id: int, actor: Actor) -> BulkJob:
    """Apply the rows of a finished dry run (or resume an apply that stopped) as a new job."""
    source = get_job(job_id)
    resumable = not source.dry_run and (source.status == "failed" or stale(source))
    if not ((source.dry_run and source.status == "done") or resumable):
        raise ValidationError({"": "Only a finished dry run, or an apply that stopped, can be applied."})
    rows = json.loads(source.rows)
    return _start(actor, filename=source.filename, file_format=source.file_format, rows=rows, dry_run=False,
                  check_connections=source.check_connections, source_job_id=source.id)


def _start(actor: Actor, *, rows: list[dict], **fields: Any) -> BulkJob:
    job = BulkJob(rows=json.dumps(rows), total=len(rows), created_by=actor.name[:64], report=[], **fields)
    db.session.add(job)
    db.session.flush()
    audit.record(actor, "bulk.start", "bulk_job", job.id, {
        "filename": job.filename, "dryRun": job.dry_run, "rows": job.total,
        "checkConnections": job.check_connections, "fromJob": job.source_job_id})
    db.session.commit()
    if current_app.config["BULK_RUN_INLINE"]:  # tests: in the request; otherwise the worker claims it
        run_job(job.id, actor)
        db.session.refresh(job)
    return job


@dataclass
class _Counts:
    processed: int = 0
    created: int = 0
    skipped: int = 0
    conflicts: int = 0
    failed: int = 0

    def add(self, outcome: str) -> None:
        self.processed += 1
        if outcome in (NEW, CREATED):
            self.created += 1
        elif outcome == SKIPPED:
            self.skipped += 1
        elif outcome == CONFLICT:
            self.conflicts += 1
        else:
            self.failed += 1

    def values(self) -> dict[str, int]:
        return {"processed": self.processed, "created": self.created, "skipped": self.skipped,
                "conflicts": self.conflicts, "failed": self.failed}


def run_job(job_id: int, actor: Actor) -> None:
    """Work through a job's rows. Counters are written every few rows (with plain UPDATEs, so the big encrypted
    rows column is never reloaded), the report at the end. An unexpected error stops the job and says so."""
    job = db.session.execute(sa.select(BulkJob).where(BulkJob.id == job_id).options(undefer(BulkJob.rows))
                             ).scalar_one()
    rows = [Row(r["row"], r["body"]) for r in json.loads(job.rows)]
    dry_run, check_connections = job.dry_run, job.check_connections
    _update(job_id, status="running")
    counts, report = _Counts(), []
    last_write = time.monotonic()
    outcomes: Iterable[Outcome] = _classify(rows) if dry_run else _apply(rows, actor, check_connections)
    status, error = "done", None
    try:
        for outcome in outcomes:
            report.append(outcome.entry())
            counts.add(outcome.outcome)
            if counts.processed % PROGRESS_EVERY == 0 or time.monotonic() - last_write >= PROGRESS_SECONDS:
                _update(job_id, **counts.values())
                last_write = time.monotonic()
    except Exception:  # noqa: BLE001 - the job records that it stopped; the traceback goes to the log
        db.session.rollback()
        log.exception("Bulk job %s stopped at row %s of %s", job_id, counts.processed + 1, len(rows))
        status = "failed"
        error = (f"Stopped after {counts.processed} of {len(rows)} rows by an internal error (logged). Tenants "
                 "created so far are registered; apply the file again to finish: identical tenants are skipped.")
    finished = utcnow()
    values: dict[str, Any] = {**counts.values(), "status": status, "error": error, "report": report,
                              "finished_at": finished}
    if status == "done" and not dry_run:
        values["rows"] = "[]"  # applied: the secrets now live only in the tenants themselves
    db.session.execute(sa.update(BulkJob).where(BulkJob.id == job_id).values(updated_at=finished, **values))
    audit.record(actor, "bulk.finish", "bulk_job", job_id, {"status": status, "dryRun": dry_run,
                                                             **counts.values()})
    db.session.commit()


def _update(job_id: int, **values: Any) -> None:
    db.session.execute(sa.update(BulkJob).where(BulkJob.id == job_id).values(updated_at=utcnow(), **values))
    db.session.commit()


# --- reading jobs ---------------------------------------------------------------------------------------------


def stale(job: BulkJob) -> bool:
    """Running or pending but silent for minutes: the worker that ran it has gone (restart, crash), or none runs."""
    return job.status in ("pending", "running") and (utcnow() - job.updated_at).total_seconds() > STALE_AFTER_SECONDS


def progress(job: BulkJob) -> dict[str, Any]:
    """The counters the job page polls; no row content, so nothing from the file."""
    return {"id": job.id, "status": job.status, "dryRun": job.dry_run, "total": job.total,
            "processed": job.processed, "created": job.created, "skipped": job.skipped,
            "conflicts": job.conflicts, "failed": job.failed, "done": job.status in ("done", "failed"),
            "stale": stale(job), "error": job.error}


def problems(job: BulkJob, limit: int = PAGE_PROBLEMS) -> tuple[list[dict[str, Any]], int]:
    """The first `limit` failed or conflicting rows of the report, and how many there are in all."""
    found = [entry for entry in job.report or [] if entry["outcome"] in PROBLEMS]
    return found[:limit], len(found)


def report_csv(job: BulkJob) -> str:
    """The whole report, one line per row and field error, for a spreadsheet. Cells that a spreadsheet would
    run as a formula are quoted with a leading apostrophe."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "tenantId", "outcome", "field", "message"])
    for entry in job.report or []:
        errors = entry["errors"] or {"": ""}
        for path, message in errors.items():
            writer.writerow([entry["row"], _cell(entry["tenantId"] or ""), entry["outcome"], _cell(path),
                             _cell(message)])
    return out.getvalue()


def _cell(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.3g} MiB"
    return f"{n / 1024:.3g} KiB" if n >= 1024 else f"{n} bytes"


def max_upload_text() -> str:
    """For the form's help text and the oversize message."""
    config = current_app.config
    return f"up to {config['BULK_MAX_ROWS']:,} rows and {_size(config['BULK_MAX_BYTES'])}"

