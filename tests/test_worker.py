"""The outbox worker's machinery: claims in order per tenant, leases and take-over, fencing of a late worker,
backoff with jitter and Retry-After, giving up, retry now, and concurrent claimers (FOR UPDATE SKIP LOCKED on
PostgreSQL, the single guarded UPDATE on SQLite). Delivery to the simulated products is in test_sync.py."""
from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.clients.errors import Cause, UpstreamError
from portal.extensions import db as _db
from portal.models import AuditEvent, OutboxJob, SyncState
from portal.models.base import utcnow
from portal.services.context import Actor
from portal.services.errors import Conflict
from portal.services.outbox import reads, store, worker
from portal.services.outbox.policy import Settings
from portal.services.outbox.products import DeliveryError, LeaseLost
from portal.services.outbox.store import backoff, claim, claim_statements, complete, fail, renew
from portal.services.tenants import service as tenants

ACTOR = Actor(name="tester")
CFG = Settings(max_attempts=3, backoff_base=10.0, backoff_cap=100.0, retry_after_cap=600.0, lease_seconds=30.0)


def body(tenant_id: str, **extra) -> dict:
    return {"tenantId": tenant_id, "displayName": f"Tenant {tenant_id}", "tenantDomain": f"{tenant_id}.example.com",
            "clientId": "c", "clientSecret": "s", "identityProviderType": "LDAP",
            "owner": {"username": "owner", "email": f"owner@{tenant_id}.example.com", "firstName": "Olga",
                      "lastName": "Owner", "provisioningMethod": "inline-password", "password": "Owner#Pass123"},
            "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1",
                           "directoryServiceDomainName": "example.com",
                           "directoryServiceRootDistinguishedName": "dc=example,dc=com"}, **extra}


def register(tenant_id: str, **extra):
    return tenants.register_tenant(body(tenant_id, **extra), ACTOR, skip_check=True).tenant


def jobs() -> list[tuple[str, str, str]]:
    return [(tid, op, status) for tid, op, status in _db.session.execute(
        sa.text("SELECT t.tenant_id, j.op, j.status FROM outbox_job j JOIN tenant t ON t.id = j.tenant_id "
                "ORDER BY j.id")).all()]


def states(tenant_key: str) -> dict[str, str]:
    return {p: s.status for p, s in reads.states_for_keys([tenant_key]).get(tenant_key, {}).items()}


def error(product: str = "is", *, retryable: bool = True, retry_after: float | None = None) -> dict:
    return {product: DeliveryError(product, "IS 7 answered 503: Service Unavailable (trace id t-1)",
                                   retryable=retryable, code="HTTP-503", trace_id="t-1", status=503,
                                   retry_after=retry_after)}


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app


# --- enqueue: the job commits with the change ----------------------------------------------------------------


def test_each_tenant_change_writes_its_job_in_the_same_transaction(ctx):
    register("alpha")
    assert jobs() == [("alpha", "create", "pending")]
    assert states("alpha") == {"is": "pending", "apim": "pending"}

    with pytest.raises(Conflict):  # refused change: no job either
        register("alpha")
    tenants.update_tenant("alpha", body("alpha", displayName="Renamed"), ACTOR, skip_check=True)
    assert len(jobs()) == 1  # the display name is the registry's own: nothing to propagate

    changed = body("alpha")
    changed["owner"] = {**changed["owner"], "email": "new-owner@alpha.example.com", "password": ""}
    tenants.update_tenant("alpha", changed, ACTOR, skip_check=True)
    tenants.set_tenant_active("alpha", False, ACTOR)
    tenants.set_tenant_active("alpha", False, ACTOR)  # no change, no job
    tenants.set_tenant_active("alpha", True, ACTOR)
    assert [op for _, op, _ in jobs()] == ["create", "update_owner", "deactivate", "activate"]

    payloads = [j.payload for j in _db.session.execute(sa.select(OutboxJob).order_by(OutboxJob.id)).scalars()]
    assert payloads[1]["owner"]["email"] == "new-owner@alpha.example.com"
    assert payloads[1]["passwordChanged"] is False  # a blank password kept the stored one
    assert [p["active"] for p in payloads] == [True, True, False, True]
    assert all("Owner#Pass123" not in str(p) for p in payloads)  # the password stays in the tenant's column


def test_a_password_change_is_flagged_for_the_owner_update(ctx):
    register("beta")
    changed = body("beta")
    changed["owner"] = {**changed["owner"], "password": "Another#Pass456"}
    tenants.update_tenant("beta", changed, ACTOR, skip_check=True)
    job = _db.session.execute(sa.select(OutboxJob).where(OutboxJob.op == "update_owner")).scalar_one()
    assert job.payload["passwordChanged"] is True and "Another#Pass456" not in str(job.payload)


# --- claims ----------------------------------------------------------------------------------------------------


def test_jobs_of_one_tenant_run_in_order_and_never_overtake(ctx):
    register("alpha")
    tenants.set_tenant_active("alpha", False, ACTOR)
    register("beta")
    first = claim("w1", CFG)
    assert (first.op, first.payload["domain"]) == ("create", "alpha.example.com")
    assert states("alpha") == {"is": "running", "apim": "running"}
    second = claim("w2", CFG)  # alpha's deactivation waits for its creation: beta's job comes next
    assert (second.op, second.payload["domain"]) == ("create", "beta.example.com")
    assert claim("w3", CFG) is None
    assert complete(first)
    third = claim("w3", CFG)
    assert (third.op, third.payload["domain"]) == ("deactivate", "alpha.example.com")
    assert states("alpha") == {"is": "running", "apim": "running"}
    assert complete(third) and complete(second)
    assert states("alpha") == {"is": "synced", "apim": "synced"}
    assert claim("w1", CFG) is None


def test_a_failed_job_holds_back_later_ones_until_retry_now(ctx):
    register("alpha")
    tenants.set_tenant_active("alpha", False, ACTOR)
    taken = claim("w1", CFG)
    taken.steps["apim"] = "done"
    assert fail(taken, error("is", retryable=False), CFG)
    assert jobs() == [("alpha", "create", "failed"), ("alpha", "deactivate", "pending")]
    state = reads.states_for_keys(["alpha"])["alpha"]
    assert state["is"].status == "failed" and state["is"].next_attempt_at is None  # gave up: needs a person
    assert "503" in state["is"].error and state["is"].trace_id == "t-1"
    assert state["apim"].status == "pending"  # its part is done, but the deactivation still waits
    assert claim("w1", CFG) is None  # the deactivation must not overtake the failed creation

    assert store.retry_now("alpha", ACTOR) == 2
    assert _db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "sync.retry")).scalar_one()
    again = claim("w1", CFG)
    assert again.op == "create" and again.attempts == 1 and again.steps == {"apim": "done"}  # a fresh set


def test_backoff_doubles_with_jitter_up_to_the_cap_and_honours_retry_after():
    rng = random.Random(7)
    for attempt, ceiling in ((1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (9, 100)):
        delays = [backoff(attempt, CFG, rng=rng) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 4  # jittered, so failed workers do not return together
    assert backoff(1, CFG, retry_after=300, rng=rng) == 300  # never sooner than the server asked
    assert backoff(1, CFG, retry_after=10_000, rng=rng) == 600  # an absurd Retry-After is capped
    assert 5 <= backoff(1, CFG, retry_after=1, rng=rng) <= 10


def test_retries_wait_for_their_time_then_give_up_after_the_last_attempt(ctx):
    register("alpha")
    now = utcnow()
    taken = claim("w1", CFG, now=now)
    assert fail(taken, error(retry_after=120), CFG, now=now)
    job = _db.session.execute(sa.select(OutboxJob)).scalar_one()
    assert job.status == "pending" and job.next_attempt_at >= now + timedelta(seconds=120)
    state = reads.states_for_keys(["alpha"])["alpha"]["is"]
    assert state.status == "failed" and state.next_attempt_at == job.next_attempt_at and state.attempts == 1
    assert claim("w1", CFG, now=now + timedelta(seconds=119)) is None  # not before Retry-After
    later = now + timedelta(seconds=121)
    for attempt in (2, 3):
        taken = claim("w1", CFG, now=later)
        assert taken.attempts == attempt
        assert fail(taken, error(), CFG, now=later)
        later += timedelta(seconds=1000)
    _db.session.expire_all()
    job = _db.session.execute(sa.select(OutboxJob)).scalar_one()
    assert job.status == "failed" and "IS 7: IS 7 answered 503" in job.last_error
    assert reads.states_for_keys(["alpha"])["alpha"]["is"].next_attempt_at is None
    assert claim("w1", CFG, now=later + timedelta(days=1)) is None


def test_a_dead_workers_job_is_taken_over_after_its_lease_and_its_late_report_ignored(ctx):
    register("alpha")
    now = utcnow()
    dead = claim("dead-worker", CFG, now=now)
    assert claim("w2", CFG, now=now + timedelta(seconds=29)) is None  # still leased
    alive = claim("w2", CFG, now=now + timedelta(seconds=31))
    assert alive.job_id == dead.job_id and alive.attempts == 2 and alive.token != dead.token
    assert not complete(dead)  # the first worker wakes up: its report no longer counts
    assert not fail(dead, error(), CFG)
    with pytest.raises(LeaseLost):
        renew(dead, CFG)
    renew(alive, CFG)
    assert complete(alive)
    assert jobs() == [("alpha", "create", "done")]


def test_claims_use_skip_locked_on_postgresql_and_a_guarded_update_on_sqlite(ctx):
    dialect = _db.engine.dialect
    sql = str(claim_statements(dialect.name, False)[1].compile(dialect=dialect)).upper()
    if dialect.name == "postgresql":
        assert "FOR UPDATE OF CAND SKIP LOCKED" in sql
    else:
        assert dialect.name == "sqlite" and "FOR UPDATE" not in sql
    assert "WHERE OUTBOX_JOB.ID = (SELECT" in sql and "AND OUTBOX_JOB.STATUS =" in sql  # the single-claim guard


def test_concurrent_claimers_never_take_the_same_job(make_app):
    """Two workers (two apps, two connection pools) with four threads each race for 40 jobs: on PostgreSQL
    through SKIP LOCKED, on SQLite through the guarded UPDATE. Every job is claimed exactly once."""
    first, second = make_app(), make_app()
    with first.app_context():
        for i in range(40):
            register(f"t{i:02d}")
    taken: list[int] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    def claimer(app, name: str) -> None:
        try:
            with app.app_context():
                while (job := claim(name, CFG)) is not None:
                    with lock:
                        taken.append(job.job_id)
                    assert complete(job)
                _db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=claimer, args=(app, f"{label}-{i}"))
               for label, app in (("a", first), ("b", second)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    assert len(taken) == 40 and len(set(taken)) == 40
    with first.app_context():
        assert {status for _, _, status in jobs()} == {"done"}
        assert set(_db.session.execute(sa.select(SyncState.status)).scalars()) == {"synced"}


def test_the_worker_needs_at_least_one_thread(app):
    with pytest.raises(ValueError):
        worker.Worker(app, concurrency=0)


def test_the_pool_has_a_connection_for_every_worker_thread(make_app):
    """SQLAlchemy's default pool (5 + 10 overflow) made 32 worker threads queue for connections, most of them
    idle: the pool is sized from WORKER_CONCURRENCY, and a worker with more threads than the pool can serve is
    refused with what to set, by the service and by `flask worker`."""
    app = make_app(WORKER_CONCURRENCY=20)
    with app.app_context():
        assert _db.engine.pool.size() == 23  # the threads, the bulk thread, the main thread, one spare
    worker.Worker(app, concurrency=20)
    default = make_app()
    with default.app_context():
        assert _db.engine.pool.size() == 7
    worker.Worker(default, concurrency=15)  # 15 + 2 of 7 + 10 overflow
    with pytest.raises(ValueError, match=r"16 worker threads need 18 database connections.*the pool has 17.*"
                                         r"WORKER_CONCURRENCY"):
        worker.Worker(default, concurrency=16)
    result = default.test_cli_runner().invoke(args=["worker", "--once", "--concurrency", "40"])
    assert result.exit_code == 2 and "PORTAL_WORKER_CONCURRENCY" in result.output
    assert default.test_cli_runner().invoke(args=["worker", "--once"]).exit_code == 0  # 4 threads by default


def test_drain_waits_for_a_job_another_worker_holds_with_its_threads_up(ctx):
    """Jobs another worker process holds count as open: drain waits for them with the same threads (it used to
    start every thread and its product clients again each time it ran dry, which cost two benchmark processes
    more CPU than they delivered with)."""
    register("held")
    held = claim("another-process", CFG)
    seen: list[set[threading.Thread]] = []

    def other_worker() -> None:
        for _ in range(3):
            threading.Event().wait(0.15)
            seen.append({t for t in threading.enumerate() if t.name.startswith("outbox-worker")})
        with ctx.app_context():
            assert complete(held)

    finisher = threading.Thread(target=other_worker)
    finisher.start()
    stats = worker.Worker(ctx, concurrency=2, poll_interval=0.05).drain(timeout=10)
    finisher.join()
    assert stats.total == 0 and jobs() == [("held", "create", "done")]
    assert len(seen[0]) == 2 and seen[0] == seen[1] == seen[2]


def test_two_workers_deliver_every_job_exactly_once(make_app):
    """Two worker processes' worth (two apps, two pools, four threads each) drain 30 registrations against the
    simulators at once. PostgreSQL: their claims go through FOR UPDATE SKIP LOCKED; SQLite: through the single
    guarded UPDATE. Either way each job is claimed once and each tenant created once in each product."""
    from tests.sync_env import wso2

    fast = {"SYNC_BACKOFF_BASE": 0.05, "SYNC_BACKOFF_CAP": 0.2, "SYNC_POLL_INTERVAL": 0.05}
    first, second = make_app(**fast), make_app(**fast)
    with wso2(latency=0.005) as env:
        env.connect(first)
        env.share(first, "off")
        with first.app_context():
            domains = [register(f"t{i:02d}").domain for i in range(30)]
        claims: list[str] = []

        def watch(conn, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith("UPDATE OUTBOX_JOB SET STATUS"):
                claims.append(statement.upper())

        engines = []
        for app in (first, second):
            with app.app_context():
                engines.append(_db.engine)
                sa.event.listen(_db.engine, "before_cursor_execute", watch)
        try:
            workers = [worker.Worker(app, concurrency=4, name=name) for app, name in ((first, "a"), (second, "b"))]
            results: list = []
            threads = [threading.Thread(target=lambda w=w: results.append(w.drain(timeout=60))) for w in workers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(90)
        finally:
            for engine in engines:
                sa.event.remove(engine, "before_cursor_execute", watch)
        assert len(results) == 2 and sum(r.done for r in results) == 30
        assert all(r.done > 0 for r in results), results  # both took part
        for domain in domains:
            assert env.creates(domain) == {"is": 1, "apim": 1}, domain
        with first.app_context():
            rows = _db.session.execute(sa.select(OutboxJob.status, OutboxJob.attempts, OutboxJob.claimed_by)).all()
        assert {(status, attempts) for status, attempts, _ in rows} == {("done", 1)}  # never claimed twice
        assert {by.split("/")[0] for _, _, by in rows} == {"a", "b"}
        dialect = engines[0].dialect.name
        claim_sql = [s for s in claims if "(SELECT" in s]
        assert claim_sql
        if dialect == "postgresql":
            assert all("FOR UPDATE OF CAND SKIP LOCKED" in s for s in claim_sql)
        else:  # SQLite: no row locks; the guarded single UPDATE is the claim
            assert all("FOR UPDATE" not in s and "AND OUTBOX_JOB.STATUS = " in s for s in claim_sql)


@pytest.mark.parametrize("error,retryable", [
    (UpstreamError(Cause.REFUSED, "The connection to IS was refused."), True),
    (UpstreamError(Cause.CONNECTION_RESET, "IS closed the connection without an answer."), True),
    (UpstreamError(Cause.TIMEOUT, "IS did not answer within 15 s."), True),
    (UpstreamError(Cause.SERVER_NOT_TRUSTED, "The portal does not trust IS's server certificate."), False),
    (UpstreamError(Cause.HTTP_ERROR, "Busy.", status=503, retry_after=30.0), True),
    (UpstreamError(Cause.HTTP_ERROR, "Injected failure.", status=500, code="soapenv:Server"), True),
    (UpstreamError(Cause.HTTP_ERROR, "Too many.", status=429, retry_after=5.0), True),
    (UpstreamError(Cause.HTTP_ERROR, "Unable to add tenant.", status=400, code="TM-60007"), False),
    (UpstreamError(Cause.HTTP_ERROR, "Unauthorized", status=401, code="401"), False),
])
def test_what_waiting_can_fix_is_retried_and_the_rest_waits_for_a_person(error, retryable):
    delivery = DeliveryError.from_upstream("is", error)
    assert delivery.retryable is retryable
    assert delivery.retry_after == error.retry_after and delivery.code == error.code
    assert str(error) in delivery.message


@pytest.mark.parametrize(("status", "cause", "certificate", "fix"), [
    (403, Cause.HTTP_ERROR, False, "permission"),
    (401, Cause.HTTP_ERROR, True, "mappings"),  # IS 7's certificate handler refused the portal's certificate/user
    (401, Cause.HTTP_ERROR, False, "connection"),
    (None, Cause.SERVER_NOT_TRUSTED, False, "connection"),
    (None, Cause.REFUSED, False, None),  # waiting can fix it
    (503, Cause.HTTP_ERROR, False, None),
])
def test_delivery_errors_name_their_fix(status, cause, certificate, fix):
    error = UpstreamError(cause, "refused", status=status, code="X-1" if status else None)
    delivery = DeliveryError.from_upstream("is", error, certificate=certificate)
    assert delivery.fix == fix
    with pytest.raises(ValueError):
        DeliveryError("is", "x", retryable=False, fix="reboot")


def test_a_failed_job_records_the_fix_on_the_job_and_the_state(ctx):
    register("alpha")
    taken = claim("w", CFG)
    errors = {"is": DeliveryError("is", "no owner", retryable=False, fix="owner")}
    assert fail(taken, errors, CFG)
    job = _db.session.execute(sa.select(OutboxJob)).scalar_one()
    state = _db.session.execute(sa.select(SyncState).where(SyncState.product == "is")).scalar_one()
    assert (job.status, job.fix, state.status, state.fix) == ("failed", "owner", "failed", "owner")
    assert store.retry_now("alpha", ACTOR) == 1
    _db.session.expire_all()
    state = _db.session.execute(sa.select(SyncState).where(SyncState.product == "is")).scalar_one()
    assert (state.status, state.fix) == ("pending", None)
    taken = claim("w", CFG)
    assert complete(taken)
    job = _db.session.execute(sa.select(OutboxJob)).scalar_one()
    assert (job.status, job.fix) == ("done", None)
