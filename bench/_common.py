"""What the gunicorn benchmarks share: a throwaway portal installation, gunicorn serving it next to the bare page,
signed-in keep-alive clients, timed load, and the machine-readable summary `bench/run_all.py` collects.

Each benchmark script imports this module from its own folder (`python bench/x.py` puts bench/ on sys.path).
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
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
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
HOST = "127.0.0.1"
ADMIN = "bench-admin"
# Flask-WTF's hidden_tag() writes name, type, value; base.html's sign-out form writes name, value.
CSRF_RE = re.compile(r'name="csrf_token"[^>]*?value="([^"]+)"')
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def step(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def command_line() -> str:
    """The command that produced a figure, as the person would type it again."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    python = Path(sys.executable)
    python_shown = python.relative_to(ROOT) if python.is_relative_to(ROOT) else python
    return " ".join(shlex.quote(str(a)) for a in [python_shown, shown, *sys.argv[1:]])


# --- HTTP client -------------------------------------------------------------------------------------------------


class Client:
    """One keep-alive connection with its own cookies: a signed-in browser tab, minus the browser. http.client
    rather than requests: a lighter client leaves more of the machine to the server being measured.

    A connection idle for more than MAX_IDLE seconds is replaced before the next request, as browsers retire idle
    sockets: gunicorn closes keep-alive connections after 2 s idle (its --keep-alive), and a request sent as the
    server closes would fail for no fault of the server (between two phases of a benchmark, say)."""

    MAX_IDLE = 1.0

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)
        self.last_used = time.monotonic()
        self.last_headers: http.client.HTTPMessage | dict[str, str] = {}  # of the last answer (Retry-After...)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, *, cookies: bool = True) -> tuple[int, bytes]:
        """One request on the kept-alive connection; `cookies=False` for a machine call (no browser session)."""
        headers = dict(headers or {})
        if cookies and self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if time.monotonic() - self.last_used > self.MAX_IDLE:
            self.conn.close()  # http.client opens a fresh connection for the request
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # reconnects on the next request
            raise
        finally:
            self.last_used = time.monotonic()
        for header in (response.headers.get_all("Set-Cookie") or []) if cookies else []:
            for name, morsel in SimpleCookie(header).items():
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        if response.will_close:
            self.conn.close()
        self.last_headers = response.headers
        return response.status, data

    def post_form(self, path: str, fields: dict[str, str]) -> tuple[int, bytes]:
        return self.request("POST", path, urllib.parse.urlencode(fields).encode(), FORM)

    def sign_in_form(self, password: str, page: bytes) -> dict[str, str]:
        """The sign-in form's fields, CSRF token taken from the page GET /login answered."""
        match = CSRF_RE.search(page.decode())
        if not match:
            raise RuntimeError("GET /login answered without a CSRF token")
        return {"username": ADMIN, "password": password, "csrf_token": match.group(1)}

    def sign_in(self, password: str, check_path: str) -> None:
        status, page = self.request("GET", "/login")
        if status != 200:
            raise RuntimeError(f"GET /login answered {status}")
        status, _ = self.post_form("/login", self.sign_in_form(password, page))
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

    @property
    def cpu_share(self) -> float:
        """The share of one core the client used, 0..1 per core."""
        return self.client_cpu / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100)[int(p) - 1]


class Tickets:
    """A shared request budget: `take()` says whether one more request may go out. Lets a load stop at exactly N
    requests (a memory checkpoint) as well as at a deadline."""

    def __init__(self, limit: int | None = None):
        self.limit = limit
        self.taken = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.limit is not None and self.taken >= self.limit:
                return False
            self.taken += 1
            return True


# One request made by a client: (kind, served as expected, seconds). Raising OSError/HTTPException is an error.
Action = Callable[[Any], tuple[str, bool, float]]


def drive(clients: list[Any], action: Action, seconds: float,
          tickets: Tickets | None = None) -> dict[str, Measurement]:
    """Every client performs `action` back to back for `seconds` (or until `tickets` run out); per kind, how many
    were served as expected, the errors and the latencies. Connection failures count under the kind "connection"."""
    results: dict[str, Measurement] = {}
    lock = threading.Lock()
    start_gate = threading.Barrier(len(clients) + 1)
    deadline = 0.0

    def work(client: Any) -> None:
        mine: dict[str, Measurement] = {}
        start_gate.wait()
        while time.perf_counter() < deadline and (tickets is None or tickets.take()):
            try:
                kind, ok, latency = action(client)
            except (OSError, http.client.HTTPException):
                mine.setdefault("connection", Measurement("connection")).errors += 1
                continue
            m = mine.setdefault(kind, Measurement(kind))
            m.latencies.append(latency)
            if ok:
                m.ok += 1
            else:
                m.errors += 1
        with lock:
            for kind, m in mine.items():
                results.setdefault(kind, Measurement(kind)).merge(m)

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    cpu = time.process_time()
    began = time.perf_counter()
    deadline = began + seconds
    start_gate.wait()
    for t in threads:
        t.join(seconds + 60)
    elapsed = time.perf_counter() - began
    used = time.process_time() - cpu
    for m in results.values():
        m.seconds, m.client_cpu = elapsed, used
    return results


def timed_get(path: str) -> Action:
    def action(client: Client) -> tuple[str, bool, float]:
        began = time.perf_counter()
        status, _ = client.request("GET", path)
        return path, status == 200, time.perf_counter() - began
    return action


def hammer(clients: list[Client], path: str, seconds: float) -> Measurement:
    """Every client requests `path` back to back for `seconds`; only 200s count as served."""
    results = drive(clients, timed_get(path), seconds)
    result = Measurement(path)
    for m in results.values():
        result.ok += m.ok
        result.errors += m.errors
        result.latencies.extend(m.latencies)
        result.seconds, result.client_cpu = m.seconds, m.client_cpu
    if not results:
        result.seconds = seconds
    return result


# --- the server under test ---------------------------------------------------------------------------------------


def load_average() -> float:
    """The 1-minute load average: above the number of cores, other processes competed for the CPU."""
    return os.getloadavg()[0]


def machine_line(load_at_start: float) -> str:
    return (f"machine:  {os.cpu_count()} CPUs shared by server and client; load average {load_at_start:.1f} at the "
            f"start, {load_average():.1f} at the end (above {os.cpu_count()}, other processes took CPU time: "
            "expect lower, noisier figures)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


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


def children(pid: int) -> list[int]:
    """The child processes of `pid` (gunicorn's workers of its arbiter), from /proc."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:  # kernels without CONFIG_PROC_CHILDREN: scan every process's parent
        found = []
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                if re.search(rf"^PPid:\s+{pid}$", status.read_text(), re.M):
                    found.append(int(status.parent.name))
            except OSError:
                continue
        return sorted(found)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (VmRSS in /proc/<pid>/status)."""
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(match.group(1)) * 1024 if match else 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def environment(folder: Path, database_url: str) -> dict[str, str]:
    """The inherited environment without any PORTAL_* or DATABASE_URL of the caller, plus the bench's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_") and k != "DATABASE_URL"}
    env.update({
        "PORTAL_INSTANCE_PATH": str(folder / "instance"),
        "DATABASE_URL": database_url,
        "PORTAL_SECRET_KEY": secrets.token_urlsafe(48),
        "PORTAL_RATELIMIT_ENABLED": "false",  # the clients all sign in from one address
        "PORTAL_LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    })
    return env


def flask(env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 600) -> str:
    command = [sys.executable, "-m", "flask", "--app", "portal", *args]
    done = subprocess.run(command, cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip()


@dataclass
class ApiKey:
    app_id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-AppId": self.app_id, "X-API-Key": self.key}


class Stage:
    """A fresh portal installation in a temporary folder: a migrated database (SQLite there, or a throwaway
    PostgreSQL database), the production configuration from environment variables only, an administrator with a
    random password; gunicorn serving bench/bare_app.py on demand. Leaving the `with` block stops gunicorn (its
    log's tail is shown if it died), drops the database and removes the folder (unless `keep`)."""

    def __init__(self, database_url: str | None = None, keep: bool = False, prefix: str = "portal-bench-"):
        self.admin_url, self.keep, self.prefix = database_url, keep, prefix
        self.folder = Path()
        self.scratch: PostgresScratch | None = None
        self.env: dict[str, str] = {}
        self.password = secrets.token_urlsafe(18)
        self.server: subprocess.Popen | None = None
        self.gunicorn: list[str] = []
        self.port = 0

    def __enter__(self) -> Stage:
        self.folder = Path(tempfile.mkdtemp(prefix=self.prefix))
        try:
            if self.admin_url:
                self.scratch = PostgresScratch(self.admin_url)
                database_url = self.scratch.url
            else:
                database_url = "sqlite:///" + str(self.folder / "bench.sqlite3")
            self.env = environment(self.folder, database_url)
            step("migrating a fresh database")
            self.flask("db", "upgrade")
            self.flask("create-admin", "--username", ADMIN, "--role", "admin", stdin=self.password + "\n")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    @property
    def database(self) -> str:
        return "PostgreSQL" if self.admin_url else "SQLite"

    @property
    def log_path(self) -> Path:
        return self.folder / "gunicorn.log"

    def flask(self, *args: str, stdin: str | None = None, timeout: float = 600) -> str:
        return flask(self.env, *args, stdin=stdin, timeout=timeout)

    def api_key(self, name: str = "bench") -> ApiKey:
        """A /v1 API client made with `flask create-api-client`, as an operator would."""
        out = self.flask("create-api-client", "--name", name,  # the benches register, list and validate
                         "--scope", "read", "--scope", "register", "--scope", "validate")
        values = dict(re.findall(r"^(X-API-AppId|X-API-Key):\s*(\S+)$", out, re.M))
        return ApiKey(values["X-API-AppId"], values["X-API-Key"])

    def start(self, *, workers: int, worker_class: str, threads: int, extra: tuple[str, ...] = ()) -> int:
        """gunicorn on a free port serving the portal at / and the bare page at /bare/; returns the port."""
        self.port = free_port()
        self.gunicorn = [sys.executable, "-m", "gunicorn", "--chdir", str(ROOT), "--pythonpath", str(BENCH),
                         "--workers", str(workers), "--worker-class", worker_class,
                         "--threads", str(threads), "--bind", f"{HOST}:{self.port}", "--log-level", "warning",
                         "--timeout", "60", *extra, "bare_app:application"]
        step(f"starting gunicorn on {HOST}:{self.port}")
        log = open(self.log_path, "w")  # noqa: SIM115 - closed with the process
        self.server = subprocess.Popen(self.gunicorn, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        log.close()  # the child holds its own descriptor
        wait_until_up(self.port, self.server)
        return self.port

    @property
    def server_command(self) -> str:
        """The gunicorn command as shown in reports (from `gunicorn` on)."""
        return " ".join(shlex.quote(a) for a in self.gunicorn[2:])

    def worker_pids(self) -> list[int]:
        return children(self.server.pid) if self.server else []

    def server_cpu(self) -> float:
        """CPU seconds used so far by gunicorn's arbiter and workers."""
        pids = [self.server.pid, *self.worker_pids()] if self.server else []
        total = 0.0
        for pid in pids:
            try:
                total += cpu_seconds(pid)
            except OSError:
                continue
        return total

    def __exit__(self, *_exc) -> None:
        stop(self.server)
        if self.server is not None and self.server.returncode not in (0, -signal.SIGTERM) and self.log_path.exists():
            sys.stderr.write(self.log_path.read_text()[-4000:])
        if self.scratch is not None:
            self.scratch.drop()
            self.scratch = None
        if self.keep:
            step(f"kept {self.folder}")
        elif self.folder != Path():
            shutil.rmtree(self.folder, ignore_errors=True)


def api_json(port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             expect: tuple[int, ...] = (200, 201)) -> Any:
    """One JSON call on a fresh connection (set-up and checks, not measured)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        text = response.read().decode()
    finally:
        conn.close()
    if response.status not in expect:
        raise RuntimeError(f"{method} {path} answered {response.status}: {text[:800]}")
    return json.loads(text) if text else None


def basic_auth(client_id: str, secret: str) -> str:
    """The Authorization header value of client authentication at POST /oauth/token (RFC 6749 §2.3.1)."""
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def token_form(tenant_id: str) -> str:
    return urllib.parse.urlencode({"grant_type": "client_credentials", "TENANTID": tenant_id})


def issue_token(port: int, tenant_id: str, authorization: str) -> dict[str, Any]:
    """One client-credentials token, checked to be a Bearer token (set-up, not measured)."""
    client = Client(port)
    try:
        status, data = client.request("POST", "/oauth/token", token_form(tenant_id).encode(),
                                      {**FORM, "Authorization": authorization}, cookies=False)
    finally:
        client.close()
    if status != 200:
        raise RuntimeError(f"POST /oauth/token for {tenant_id} answered {status}: {data[:300]!r}"
                           + (" (the token endpoint of issue 6 is not in this checkout)" if status == 404 else ""))
    answer = json.loads(data)
    if answer.get("token_type") != "Bearer" or not answer.get("access_token"):
        raise RuntimeError(f"POST /oauth/token for {tenant_id}: unexpected answer {answer}")
    return answer


def oracle_tenant(tenant_id: str, algorithm: str, client_secret: str) -> dict[str, Any]:
    """A registration body that needs no identity provider: ORACLE, registered with the check skipped."""
    return {
        "tenantId": tenant_id, "clientId": f"{tenant_id}-client", "clientSecret": client_secret,
        "identityProviderType": "ORACLE", "supportAlgorithm": algorithm,
        "relationalSchema": {"dataSourceURL": "jdbc:oracle:thin:@//db.bench.invalid:1521/ORCL",
                             "dataSourceUserName": "bench", "dataSourcePassword": secrets.token_urlsafe(24)},
        "skipConnectionCheck": True,
    }


# --- running and reporting -----------------------------------------------------------------------------------------


def add_common_options(parser: argparse.ArgumentParser, *, time_limit: float) -> None:
    parser.add_argument("--database-url", help="a PostgreSQL server URL to create a throwaway database on "
                                               "(default: SQLite in a temporary folder)")
    parser.add_argument("--time-limit", type=float, default=time_limit, help="abort the whole run after this many "
                                                                            f"seconds (default: {time_limit:g})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (database, logs)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a goal is missed")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE (for run_all.py)")


@dataclass
class Figure:
    """One ratio with its goal, as run_all.py tabulates it."""
    name: str
    value: float
    goal: str  # e.g. ">= 0.6"; "" for a figure shown for information, with no goal
    met: bool | None
    unit: str = ""
    fmt: str = ".3f"

    @property
    def shown(self) -> str:
        return f"{self.value:{self.fmt}}{self.unit}"

    def line(self) -> str:
        if not self.goal:
            return f"{self.name}: {self.shown} (no goal; compare runs on one machine)"
        return f"{self.name}: {self.shown} (goal {self.goal}): {'met' if self.met else 'MISSED'}"


def write_json(path: str | None, benchmark: str, figures: list[Figure], **details: Any) -> None:
    if not path:
        return
    payload = {"benchmark": benchmark, "command": command_line(), "figures": [vars(f) for f in figures],
               **details}
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")


def main_with_limits(args: argparse.Namespace, run: Callable[[argparse.Namespace], int]) -> int:
    """Run with a hard time limit; Ctrl-C, SIGTERM and the limit all leave through the same clean-up."""

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
