"""Tenant list throughput at 100 and at 100,000 tenants, each as a ratio to a bare Flask page.

One run: a fresh database (SQLite in a temporary folder, or a throwaway PostgreSQL database), migrated, with an
administrator and 100 demo tenants; gunicorn on 127.0.0.1 serving the portal and a bare Flask page (bench/bare_app.py);
signed-in clients hammer /tenants/ and then /bare/ for a fixed time each; then the database is filled up to 100,000
tenants and both are measured again. Everything is local, bounded in time, and cleaned up at the end.

    .venv/bin/python bench/tenant_list.py [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Goals (issue 3): list ÷ bare >= 0.35, and the ratio at 100,000 tenants within 10% of the ratio at 100.
"""
from __future__ import annotations

import argparse
import http.client
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
HOST = "127.0.0.1"
ADMIN = "bench-admin"
TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
GOAL_RATIO = 0.35
GOAL_DRIFT = 0.10


# --- HTTP client -------------------------------------------------------------------------------------------------


class Client:
    """One keep-alive connection with its own cookies: a signed-in browser tab, minus the browser. http.client
    rather than requests: a lighter client leaves more of the machine to the server being measured."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # reconnects on the next request
            raise
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        if response.will_close:
            self.conn.close()
        return response.status, data

    def sign_in(self, password: str, check_path: str) -> None:
        status, page = self.request("GET", "/login")
        match = TOKEN_RE.search(page.decode())
        if status != 200 or not match:
            raise RuntimeError(f"GET /login answered {status} without a CSRF token")
        form = urllib.parse.urlencode({"username": ADMIN, "password": password, "csrf_token": match.group(1)})
        status, _ = self.request("POST", "/login", form.encode(),
                                 {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 302:
            raise RuntimeError(f"sign-in answered {status}, expected a redirect")
        status, _ = self.request("GET", check_path)
        if status != 200:
            raise RuntimeError(f"GET {check_path} after sign-in answered {status}; see the server log above")

    def close(self) -> None:
        self.conn.close()


@dataclass
class Measurement:
    path: str
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    client_cpu: float = 0.0  # CPU seconds this process spent, to see whether the client was the bottleneck

    def merge(self, other: Measurement) -> None:
        self.ok += other.ok
        self.errors += other.errors
        self.seconds += other.seconds
        self.latencies.extend(other.latencies)
        self.client_cpu += other.client_cpu

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100)[int(p) - 1]


def hammer(clients: list[Client], path: str, seconds: float) -> Measurement:
    """Every client requests `path` back to back for `seconds`; only 200s count as served."""
    result = Measurement(path)
    lock = threading.Lock()
    start_gate = threading.Barrier(len(clients) + 1)
    deadline = 0.0

    def work(client: Client) -> None:
        ok, errors, latencies = 0, 0, []
        start_gate.wait()
        while (now := time.perf_counter()) < deadline:
            try:
                status, _ = client.request("GET", path)
            except (OSError, http.client.HTTPException):
                errors += 1
                continue
            latencies.append(time.perf_counter() - now)
            if status == 200:
                ok += 1
            else:
                errors += 1
        with lock:
            result.ok += ok
            result.errors += errors
            result.latencies.extend(latencies)

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    cpu = time.process_time()
    began = time.perf_counter()
    deadline = began + seconds
    start_gate.wait()
    for t in threads:
        t.join(seconds + 60)
    result.seconds = time.perf_counter() - began
    result.client_cpu = time.process_time() - cpu
    return result


def measure(clients: list[Client], args: argparse.Namespace) -> tuple[Measurement, Measurement]:
    """The list and the bare page in alternating rounds, so a change in background load (another process on the
    machine) weighs on both figures alike instead of on whichever page happened to run at the time."""
    hammer(clients, args.list_path, args.warmup / 2)
    hammer(clients, "/bare/", args.warmup / 2)
    listing, bare = Measurement(args.list_path), Measurement("/bare/")
    for _ in range(args.rounds):
        listing.merge(hammer(clients, args.list_path, args.duration / args.rounds))
        bare.merge(hammer(clients, "/bare/", args.duration / args.rounds))
    return listing, bare


# --- the server under test ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def flask(env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 600) -> str:
    command = [sys.executable, "-m", "flask", "--app", "portal", *args]
    done = subprocess.run(command, cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip()


def wait_until_up(port: int, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("gunicorn exited during start-up; see its log above")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer on port {port} within {timeout:.0f} s")


def stop(server: subprocess.Popen | None) -> None:
    """SIGTERM to gunicorn's process group (the arbiter and its workers), SIGKILL if it lingers."""
    if server is None or server.poll() is not None:
        return
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(5)
    except ProcessLookupError:
        pass


class PostgresScratch:
    """A throwaway database on the server of `url`, dropped at the end, like the test suite's."""

    def __init__(self, url: str):
        sys.path.insert(0, str(ROOT))
        import sqlalchemy as sa

        from portal.config import normalise_database_url

        self.sa = sa
        self.server = sa.create_engine(normalise_database_url(url), isolation_level="AUTOCOMMIT")
        self.name = f"portal_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with self.server.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.name}"'))
        self.url = self.server.url.set(database=self.name).render_as_string(hide_password=False)

    def drop(self) -> None:
        with self.server.connect() as conn:
            conn.execute(self.sa.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.server.dispose()


# --- the run ------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a PostgreSQL server URL to create a throwaway database on "
                                               "(default: SQLite in a temporary folder)")
    parser.add_argument("--tenants", type=int, nargs="+", default=[100, 100_000], metavar="N",
                        help="tenant counts to measure at, ascending (default: 100 100000)")
    parser.add_argument("--list-path", default="/tenants/", help="the page measured against the bare one "
                                                                  "(default: /tenants/; e.g. /tenants/?q=demo-05)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (default: 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load first (default: 2)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating list/bare rounds the duration is split "
                                                              "into (default: 5)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent signed-in clients (default: 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default: 2)")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class (default: gthread)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker (default: 4)")
    parser.add_argument("--time-limit", type=float, default=900, help="abort the whole run after this many "
                                                                      "seconds (default: 900)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (database, logs)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a goal is missed")
    args = parser.parse_args(argv)
    if args.tenants != sorted(args.tenants) or args.tenants[0] < 1:
        parser.error("--tenants must be positive and ascending")
    if args.rounds < 1 or args.duration <= 0 or args.clients < 1:
        parser.error("--rounds, --duration and --clients must be positive")
    return args


def environment(folder: Path, database_url: str) -> dict[str, str]:
    """The inherited environment without any PORTAL_* or DATABASE_URL of the caller, plus the bench's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_") and k != "DATABASE_URL"}
    env.update({
        "PORTAL_INSTANCE_PATH": str(folder / "instance"),
        "DATABASE_URL": database_url,
        "PORTAL_SECRET_KEY": secrets.token_urlsafe(48),
        "PORTAL_RATELIMIT_ENABLED": "false",  # eight clients sign in from one address
        "PORTAL_LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    })
    return env


def run(args: argparse.Namespace) -> int:
    folder = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    scratch = None
    server = None
    clients: list[Client] = []
    log_path = folder / "gunicorn.log"
    try:
        if args.database_url:
            scratch = PostgresScratch(args.database_url)
            database_url = scratch.url
        else:
            database_url = "sqlite:///" + str(folder / "bench.sqlite3")
        env = environment(folder, database_url)
        password = secrets.token_urlsafe(18)
        step("migrating a fresh database")
        flask(env, "db", "upgrade")
        flask(env, "create-admin", "--username", ADMIN, "--role", "admin", stdin=password + "\n")

        port = free_port()
        gunicorn = [sys.executable, "-m", "gunicorn", "--chdir", str(ROOT), "--pythonpath", str(BENCH),
                    "--workers", str(args.workers), "--worker-class", args.worker_class,
                    "--threads", str(args.threads), "--bind", f"{HOST}:{port}", "--log-level", "warning",
                    "--timeout", "60", "bare_app:application"]
        results: list[tuple[int, Measurement, Measurement]] = []
        seeded = 0
        for count in args.tenants:
            step(f"seeding demo tenants up to {count:,}")
            began = time.monotonic()
            flask(env, "seed-demo", "--tenants", str(count - seeded))
            step(f"  {count - seeded:,} tenants in {time.monotonic() - began:.1f} s")
            seeded = count
            if server is None:
                step(f"starting gunicorn on {HOST}:{port}")
                log = open(log_path, "w")  # noqa: SIM115 - closed with the process
                server = subprocess.Popen(gunicorn, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
                wait_until_up(port, server)
                step(f"signing in {args.clients} clients")
                clients = [Client(port) for _ in range(args.clients)]
                for client in clients:
                    client.sign_in(password, args.list_path)
            step(f"measuring at {count:,} tenants: warm-up {args.warmup:g} s, then {args.duration:g} s per page "
                 f"in {args.rounds} alternating rounds")
            results.append((count, *measure(clients, args)))
        report(args, gunicorn, results)
        return 1 if args.strict and not goals_met(results) else 0
    finally:
        for client in clients:
            client.close()
        stop(server)
        if server is not None and server.returncode not in (0, -signal.SIGTERM) and log_path.exists():
            sys.stderr.write(log_path.read_text()[-4000:])
        if scratch is not None:
            scratch.drop()
        if args.keep:
            step(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def step(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def ratio(listing: Measurement, bare: Measurement) -> float:
    return listing.rate / bare.rate if bare.rate else 0.0


def goals_met(results: list[tuple[int, Measurement, Measurement]]) -> bool:
    ratios = [ratio(listing, bare) for _, listing, bare in results]
    errors = sum(m.errors for _, listing, bare in results for m in (listing, bare))
    drift_ok = abs(ratios[-1] / ratios[0] - 1) <= GOAL_DRIFT if ratios[0] else False
    return errors == 0 and all(r >= GOAL_RATIO for r in ratios) and drift_ok


def report(args: argparse.Namespace, gunicorn: list[str], results: list[tuple[int, Measurement, Measurement]]) -> None:
    print()
    print("command:  " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print("server:   " + " ".join(shlex.quote(a) for a in gunicorn[2:]))
    print(f"pages:    {args.list_path} against /bare/")
    print(f"database: {'PostgreSQL' if args.database_url else 'SQLite'}; {args.clients} clients, "
          f"{args.duration:g} s per page in {args.rounds} alternating rounds; {os.cpu_count()} CPUs shared by "
          "server and client")
    print()
    header = (f"{'tenants':>9} | {'list req/s':>10} | {'bare req/s':>10} | {'list÷bare':>9} | {'errors':>6} | "
              f"{'list p50/p95 ms':>15} | {'bare p50/p95 ms':>15} | {'client CPU':>10}")
    print(header)
    print("-" * len(header))
    for count, listing, bare in results:
        errors = listing.errors + bare.errors
        cpu = max(listing.client_cpu / listing.seconds, bare.client_cpu / bare.seconds) * 100
        print(f"{count:>9,} | {listing.rate:>10.1f} | {bare.rate:>10.1f} | {ratio(listing, bare):>9.3f} | "
              f"{errors:>6} | {listing.percentile(50) * 1000:>6.1f}/{listing.percentile(95) * 1000:<8.1f} | "
              f"{bare.percentile(50) * 1000:>6.1f}/{bare.percentile(95) * 1000:<8.1f} | {cpu:>9.0f}%")
    print()
    first, last = ratio(results[0][1], results[0][2]), ratio(results[-1][1], results[-1][2])
    for count, listing, bare in results:
        r = ratio(listing, bare)
        print(f"list ÷ bare at {count:,} tenants: {r:.3f} (goal >= {GOAL_RATIO}): {'met' if r >= GOAL_RATIO else 'MISSED'}")
    if len(results) > 1 and first:
        drift = last / first
        print(f"ratio at {results[-1][0]:,} ÷ ratio at {results[0][0]:,}: {drift:.3f} (goal within "
              f"{GOAL_DRIFT:.0%} of 1): {'met' if abs(drift - 1) <= GOAL_DRIFT else 'MISSED'}")
    print("client CPU: the share of one core the measuring process used; near 100% means the client, not the "
          "server, set the pace.")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    def out_of_time(_signum, _frame):
        raise TimeoutError(f"the run took longer than --time-limit {args.time_limit:g} s; stopped")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.alarm(int(args.time_limit))
    try:
        return run(args)
    except KeyboardInterrupt:
        step("interrupted; the server and the temporary files are gone")
        return 130
    except (TimeoutError, RuntimeError) as exc:
        step(f"stopped: {exc}")
        return 2
    finally:
        signal.alarm(0)


if __name__ == "__main__":
    sys.exit(main())
