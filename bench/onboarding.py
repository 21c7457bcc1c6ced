"""Onboarding throughput: 1,000 tenants delivered end to end to IS 7 and API Manager through the outbox, with 20 ms
of latency on every WSO2 call, by the concurrent worker and by one-after-another delivery of the same jobs.

One run: a fresh database (SQLite in a temporary folder, or a throwaway PostgreSQL database), migrated; both WSO2
simulators started as their own processes (as real products would be: they do not share the portal's interpreter)
on 127.0.0.1 with the latency; the portal's trust and connections stored; 1,000 tenants registered through the
ordinary service call, which queues 1,000 outbox jobs. Then:

1. the worker with --concurrency threads drains the jobs (timed);
2. the simulators are restarted empty, the same jobs are queued again, and a one-thread worker drains them (timed).

Every job must end `done` in both runs, and both products must hold every tenant exactly once.

    .venv/bin/python bench/onboarding.py [--quick | --tenants 1000] [--concurrency 32] [--latency 0.02] [--mode off]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Goal (issue 5): at least 8 times faster than one after another, with no failed job.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from _common import ROOT, Figure, PostgresScratch, free_port, write_json

sys.path.insert(0, str(ROOT))  # the portal and the simulators (tests/) import from the checkout

GOAL = 8.0
PROCESS_GOAL = 1.7  # two worker processes on PostgreSQL against one (issue 17)
PASSWORD = "Bench#Pass123"
IS_USER, IS_PASSWORD = "portal", "is-Portal#pass1"
APIM_USER, APIM_PASSWORD = "portal", "apim-Portal#pass1"
LISTENER = ("is-listener", "listener#pass1")  # IS 7's listener signs in to API Manager (mode is_to_apim)
SHARING = ("apim-sharing", "sharing#pass1")  # API Manager signs in to IS 7 (mode apim_to_is)


class Simulators:
    """Both simulators as child processes on fixed ports and fixed certificates, so they can restart empty."""

    def __init__(self, folder: Path, latency: float, mode: str) -> None:
        from simulators.pki import is7_pki

        self.folder, self.latency, self.mode = folder, latency, mode
        self.pki = is7_pki()
        self.pki.server.write(folder, "server")
        (folder / "server-ca.pem").write_text(self.pki.server_ca.cert_pem)
        (folder / "client-ca.pem").write_text(self.pki.client_ca.cert_pem)
        self.is_port, self.apim_port = free_port(), free_port()
        self.processes: list[subprocess.Popen] = []
        self.starts = 0
        self.counts: list[Path] = []  # the delivery counts each simulator process writes when it stops

    @property
    def is_url(self) -> str:
        return f"https://127.0.0.1:{self.is_port}"

    @property
    def apim_url(self) -> str:
        return f"https://127.0.0.1:{self.apim_port}"

    def start(self) -> None:
        python, f = sys.executable, self.folder
        common = ["--cert", str(f / "server.pem"), "--key", str(f / "server-key.pem"), "--latency", str(self.latency)]
        serve = [python, str(Path(__file__).resolve()), "--serve"]
        is_cmd = [*serve, "is7", "--port", str(self.is_port), "--client-ca",
                  str(f / "client-ca.pem"), "--basic-user", f"{IS_USER}:{IS_PASSWORD}",
                  "--basic-user", ":".join(SHARING), *common]
        apim_cmd = [*serve, "apim", "--port", str(self.apim_port),
                    "--user", f"{APIM_USER}:{APIM_PASSWORD}", "--user", ":".join(LISTENER), *common]
        if self.mode == "is_to_apim":
            is_cmd += ["--notify-endpoint", f"{self.apim_url}/internal/data/v1/notify",
                       "--notify-credentials", ":".join(LISTENER), "--notify-ca", str(f / "server-ca.pem")]
        elif self.mode == "apim_to_is":
            apim_cmd += ["--is-base-url", self.is_url, "--is-credentials", ":".join(SHARING),
                         "--is-ca", str(f / "server-ca.pem")]
        self.starts += 1
        for product, cmd in (("is7", is_cmd), ("apim", apim_cmd)):
            out = f / f"deliveries-{product}-{self.starts}.json"
            self.counts.append(out)
            self.processes.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                                   stderr=(f / "simulators.log").open("a"), start_new_session=True,
                                                   env={**os.environ, DELIVERIES_ENV: str(out)}))
        for port in (self.is_port, self.apim_port):
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"a simulator did not start on port {port}; see simulators.log") from None
                    time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def restart(self, latency: float | None = None) -> dict[str, dict[str, int]]:
        """Stop (returning what each simulator counted), then start empty, optionally with another latency."""
        counted = self.stop_and_count()
        if latency is not None:
            self.latency = latency
        self.start()
        return counted

    def stop_and_count(self) -> dict[str, dict[str, int]]:
        """Stop both; per product: tenant creations received, and tenants created more than once."""
        self.stop()
        counted = {}
        for path in self.counts:
            product = path.stem.split("-")[1]
            counted[product] = json.loads(path.read_text()) if path.exists() else {"creations": -1, "twice": -1}
        self.counts.clear()
        return counted


@contextmanager
def database(url: str | None, folder: Path) -> Iterator[str]:
    if not url:
        yield f"sqlite:///{folder / 'portal.sqlite3'}"
        return
    scratch = PostgresScratch(url)
    try:
        yield scratch.url
    finally:
        scratch.drop()


def prepare(app, sims: Simulators, tenants_count: int, mode: str) -> None:
    import flask_migrate

    from portal.services.certificates import service as certificates
    from portal.services.context import Actor
    from portal.services.sharing import connections, service as sharing
    from portal.services.tenants import service as tenants

    actor = Actor(name="bench")
    with app.app_context():
        flask_migrate.upgrade()
        certificates.upload_certificate("ca", sims.pki.server_ca.cert_pem.encode(), actor)
        common = {"auth": "basic", "trust_roles": ["ca"], "connect_timeout": "5", "read_timeout": "30"}
        connections.save("is", {"base_url": sims.is_url, "username": IS_USER, "password": IS_PASSWORD, **common},
                         actor, check=False)
        connections.save("apim", {"base_url": sims.apim_url, "username": APIM_USER, "password": APIM_PASSWORD,
                                  **common}, actor, check=False)
        settings = {"is_to_apim": {"apim_username": LISTENER[0], "apim_password": LISTENER[1]},
                    "apim_to_is": {"identity_server_base_url": sims.is_url, "is_username": SHARING[0],
                                   "is_password": SHARING[1], "auto_configure_key_manager": "y"}}.get(mode, {})
        sharing.set_direction(mode, settings, actor, confirm=True, check=False)
        for i in range(tenants_count):
            tenants.register_tenant({
                "tenantId": f"bench{i:05d}", "tenantDomain": f"bench{i:05d}.example.com", "clientId": "c",
                "clientSecret": "s", "identityProviderType": "LDAP",
                "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1",
                               "directoryServiceDomainName": "example.com",
                               "directoryServiceRootDistinguishedName": "dc=example,dc=com"},
                "owner": {"username": "admin", "email": f"admin@bench{i:05d}.example.com", "firstName": "Bench",
                          "lastName": "Admin", "provisioningMethod": "inline-password", "password": PASSWORD},
            }, actor, skip_check=True)


def requeue(app) -> None:
    """The same jobs, due again, as if just registered."""
    from portal.extensions import db
    from portal.models import OutboxJob, SyncState
    from portal.models.base import utcnow

    with app.app_context():
        now = utcnow()
        db.session.execute(sa.update(OutboxJob).values(
            status="pending", attempts=0, steps={}, next_attempt_at=now, lease_until=None, claim_token=None,
            claimed_by=None, last_error=None, done_at=None, updated_at=now))
        db.session.execute(sa.update(SyncState).values(status="pending", error=None, next_attempt_at=None))
        db.session.commit()


def deliver(app, concurrency: int, timeout: float) -> tuple[float, dict[str, int]]:
    from portal.extensions import db
    from portal.models import OutboxJob
    from portal.services.outbox.worker import Worker

    worker = Worker(app, concurrency=concurrency, poll_interval=0.05)
    started = time.perf_counter()
    worker.drain(timeout=timeout)
    elapsed = time.perf_counter() - started
    with app.app_context():
        counts = dict(db.session.execute(sa.select(OutboxJob.status, sa.func.count()).group_by(OutboxJob.status))
                      .all())
    return elapsed, counts


def verify(app, sims: Simulators, expected: int) -> str:
    """Both products hold every tenant (read back through the portal's own clients)."""
    from portal.services.sharing import connections

    with app.app_context():
        is_client, apim_client = connections.is_client(), connections.apim_client()
        try:
            in_is = {t.domain for t in is_client.iter_all_tenants()}
            in_apim = {t.domain for t in apim_client.iter_all_tenants()}
        finally:
            is_client.close()
            apim_client.close()
    wanted = {f"bench{i:05d}.example.com" for i in range(expected)}
    missing = len(wanted - in_is) + len(wanted - in_apim)
    return "both products hold every tenant" if not missing else f"{missing} tenant(s) MISSING in a product"


def serve(product: str, argv: list[str]) -> int:
    """Run one simulator as a child process of the benchmark (its connections set TCP_NODELAY, as Tomcat's do).
    When it stops, it writes what it received to the file named by BENCH_DELIVERIES: the tenant creations (IS 7:
    POST .../tenants; API Manager: SOAP addTenant, or a CREATE event from IS's listener), and how many tenants were
    created more than once (a job delivered twice)."""
    import importlib

    from simulators import https

    module = importlib.import_module(f"simulators.{product}")
    serve_forever = https.run_until_interrupted

    def run_and_count(simulator) -> int:
        try:
            return serve_forever(simulator)
        finally:
            write_deliveries(simulator)

    module.run_until_interrupted = run_and_count
    return module.main(argv)


DELIVERIES_ENV = "BENCH_DELIVERIES"
DOMAIN_RE = re.compile(rb"bench\d{5}\.example\.com")


def write_deliveries(simulator) -> None:
    target = os.environ.get(DELIVERIES_ENV)
    if not target:
        return
    per_domain: dict[bytes, int] = {}
    for entry in list(simulator.state.log):
        creation = (entry.method == "POST" and entry.path.endswith("/tenants")) or \
            getattr(entry, "operation", None) == "addTenant" or \
            (entry.path.endswith("/notify") and b"CREATE" in entry.body)
        ok = isinstance(entry.status, int) and 200 <= entry.status < 300
        match = DOMAIN_RE.search(entry.body) if creation and ok else None
        if match:
            per_domain[match.group()] = per_domain.get(match.group(), 0) + 1
    Path(target).write_text(json.dumps({"creations": sum(per_domain.values()),
                                        "twice": sum(1 for n in per_domain.values() if n > 1)}))


def worker_process(argv: list[str]) -> int:
    """`onboarding.py --drain URL FOLDER CONCURRENCY TIMEOUT`: one outbox worker process draining the queue."""
    url, folder, concurrency, timeout = argv[0], argv[1], int(argv[2]), float(argv[3])
    from portal import create_app
    from portal.services.outbox.worker import Worker

    app = create_app(app_config(url, Path(folder), concurrency))
    worker = Worker(app, concurrency=concurrency, poll_interval=0.05)
    print("ready", flush=True)  # start-up (imports, the app) is not delivery time: wait for the parent's go
    sys.stdin.readline()
    stats = worker.drain(timeout=timeout)
    print(json.dumps({"done": stats.done, "failed": stats.failed, "lost": stats.lost}), flush=True)
    return 0


def app_config(url: str, folder: Path, concurrency: int) -> dict:
    """The portal's configuration for a worker of `concurrency` threads (which sizes its database pool)."""
    return {"SQLALCHEMY_DATABASE_URI": url, "WORKER_CONCURRENCY": concurrency,
            "INSTANCE_PATH": str(folder / "instance"), "LOG_LEVEL": "ERROR", "SYNC_VERIFY_SECONDS": 10.0,
            "SYNC_POLL_INTERVAL": 0.02,
            "SECRET_KEY": "bench-onboarding-" + "x" * 40}


def processes(url: str, folder: Path, count: int, concurrency: int, timeout: float) -> tuple[float, float]:
    """`count` worker processes on the same queue, released together once all have started up: (seconds from then
    until every one has drained it, the CPU seconds they used in all, start-up included)."""
    before = os.times()
    command = [sys.executable, str(Path(__file__).resolve()), "--drain", url, str(folder), str(concurrency),
               str(timeout)]
    children = [subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for _ in range(count)]
    for child in children:  # every process started up; then all begin at once, and the clock with them
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("a worker process did not start; see its output above")
    started = time.perf_counter()
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        out, _ = child.communicate(timeout=timeout + 60)
        if child.returncode != 0:
            raise RuntimeError(f"a worker process failed ({child.returncode}): {out}")
    elapsed, after = time.perf_counter() - started, os.times()
    return elapsed, (after.children_user + after.children_system) - (before.children_user + before.children_system)


def job_counts(app) -> dict[str, int]:
    from portal.extensions import db
    from portal.models import OutboxJob

    with app.app_context():
        return dict(db.session.execute(sa.select(OutboxJob.status, sa.func.count()).group_by(OutboxJob.status)).all())


def run_mode(args, mode: str, url: str | None) -> dict:
    """One sharing direction: register, deliver concurrently, then the same jobs one after another; on PostgreSQL
    (and mode off) also one worker process against two at --process-latency per call."""
    from portal import create_app

    folder = Path(tempfile.mkdtemp(prefix="portal-bench-onboarding-"))
    sims = Simulators(folder, args.latency, mode)
    result: dict = {"mode": mode}
    try:
        with database(url, folder) as db_url:
            app = create_app(app_config(db_url, folder, args.concurrency))
            sims.start()
            started = time.perf_counter()
            prepare(app, sims, args.tenants, mode)
            print(f"\n--- mode {mode}: {'PostgreSQL' if url else 'SQLite'}; {args.latency * 1000:g} ms per WSO2 call; "
                  f"{os.cpu_count()} CPUs; registered {args.tenants} tenants in {time.perf_counter() - started:.1f} s",
                  flush=True)
            concurrent, counts = deliver(app, args.concurrency, args.time_limit)
            check = verify(app, sims, args.tenants)
            seen = sims.restart()
            print(f"concurrent ({args.concurrency} threads): {concurrent:8.2f} s  {args.tenants / concurrent:7.1f} "
                  f"tenants/s  jobs {counts}; {check}; at the simulators {seen}", flush=True)
            requeue(app)
            sequential, seq_counts = deliver(app, 1, args.time_limit)
            seq_check = verify(app, sims, args.tenants)
            seq_seen = sims.restart(args.process_latency)
            print(f"one after another:        {sequential:8.2f} s  {args.tenants / sequential:7.1f} tenants/s  "
                  f"jobs {seq_counts}; {seq_check}; at the simulators {seq_seen}", flush=True)
            clean = set(counts) == {"done"} and set(seq_counts) == {"done"} and "MISSING" not in check + seq_check
            twice = sum(c["twice"] for c in (*seen.values(), *seq_seen.values()))
            result.update(concurrent=concurrent, sequential=sequential, ratio=sequential / concurrent,
                          clean=clean and twice == 0, twice=twice)
            if url and mode == "off" and args.processes:
                result.update(two_processes(args, app, sims, db_url, folder))
    finally:
        sims.stop()
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return result


def two_processes(args, app, sims: Simulators, db_url: str, folder: Path) -> dict:
    """The same jobs with one worker process, then with two, at --process-latency per WSO2 call (PostgreSQL:
    FOR UPDATE SKIP LOCKED claims, so the two never take the same job), for each --process-concurrency."""
    runs = []
    for threads in args.process_concurrency:
        times, twice, clean = {}, 0, True
        for count in (1, 2):
            requeue(app)
            times[count], cpu = processes(db_url, folder, count, threads, args.time_limit)
            check = verify(app, sims, args.tenants)
            counts = job_counts(app)
            seen = sims.restart()
            twice += sum(c["twice"] for c in seen.values())
            clean = clean and set(counts) == {"done"} and "MISSING" not in check
            print(f"{count} worker process{'es' if count > 1 else ''} ({threads} threads each, "
                  f"{args.process_latency * 1000:g} ms per call): {times[count]:8.2f} s, worker CPU {cpu:.1f} s "
                  f"({cpu / times[count] / (os.cpu_count() or 1):.0%} of the machine)  jobs {counts}; {check}; "
                  f"at the simulators {seen}", flush=True)
        runs.append({"threads": threads, "one_process": times[1], "two_processes": times[2],
                     "process_ratio": times[1] / times[2], "process_clean": clean and twice == 0,
                     "process_twice": twice})
    return {"process_runs": runs}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        return serve(argv[1], argv[2:])
    if argv[:1] == ["--drain"]:
        return worker_process(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, help="tenants to register and deliver (default: 1000; --quick: 200)")
    parser.add_argument("--quick", action="store_true", help="for make bench: --tenants 200, mode off only")
    parser.add_argument("--concurrency", type=int, default=32, help="threads of the concurrent worker")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added to every WSO2 answer")
    parser.add_argument("--modes", nargs="+", choices=("off", "is_to_apim", "apim_to_is"),
                        help="sharing directions to measure (off: the portal writes both products; default: all "
                             "three; --quick: off)")
    parser.add_argument("--processes", action=argparse.BooleanOptionalAction, default=True,
                        help="on PostgreSQL, also one worker process against two (default: on)")
    parser.add_argument("--process-latency", type=float, default=0.1, help="seconds per WSO2 call for the "
                                                                           "process comparison (default: 0.1)")
    parser.add_argument("--process-concurrency", type=int, nargs="+", default=[8, 16],
                        help="threads per worker process there, one comparison each (default: 8 16)")
    parser.add_argument("--database-url", help="a PostgreSQL server URL; a throwaway database is made on it")
    parser.add_argument("--time-limit", type=float, default=1800, help="seconds each delivery may take at most")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the goal is missed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE (for run_all.py)")
    args = parser.parse_args(argv)
    if args.tenants is None:
        args.tenants = 200 if args.quick else 1000
    if args.modes is None:
        args.modes = ["off"] if args.quick else ["off", "is_to_apim", "apim_to_is"]

    results = [run_mode(args, mode, args.database_url) for mode in args.modes]
    figures = []
    print()
    for r in results:
        met = r["ratio"] >= GOAL and r["clean"]
        print(f"mode {r['mode']}: speed-up {r['ratio']:.1f}x (goal >= {GOAL:g}x); tenants created twice: {r['twice']}: "
              f"{'met' if met else 'MISSED'}")
        figures.append(Figure(f"onboarding speed-up, {args.tenants:,} tenants, sharing {r['mode']} (sequential ÷ "
                              "concurrent)", r["ratio"], f">= {GOAL:g}x", met, "x", fmt=".1f"))
        for p in r.get("process_runs", []):
            met = p["process_ratio"] >= PROCESS_GOAL and p["process_clean"]
            print(f"two worker processes ÷ one, {p['threads']} threads each: {p['process_ratio']:.2f}x (goal >= "
                  f"{PROCESS_GOAL:g}x); created twice: {p['process_twice']}: {'met' if met else 'MISSED'}")
            figures.append(Figure(f"two worker processes ÷ one, {p['threads']} threads each, {args.tenants:,} "
                                  f"tenants, {args.process_latency * 1000:g} ms per call", p["process_ratio"],
                                  f">= {PROCESS_GOAL:g}x", met, "x", fmt=".2f"))
    write_json(args.json, "onboarding", figures, results=results)
    return 1 if args.strict and not all(f.met for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
