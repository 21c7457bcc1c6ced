"""Where a benchmark target's server CPU goes *under gunicorn*: py-spy samples the workers while wrk drives the target,
so the profile holds the HTTP server, the WSGI stack and the portal exactly as the CPU-per-request figures measure
them (profile_target.py's cProfile runs in process through the test client and inflates many-small-call code).

    .venv/bin/python bench/spy_target.py empty [--seconds 15] [--database-url postgresql://...] [--top 30]
    .venv/bin/python bench/spy_target.py list|bare|issue-hs256|issue-rs256|validate-rs256

Prints own-time (samples where the function is on top of the stack) per package and per function, plus the CPU ms
per request from gunicorn's /proc counters over the same window. Needs py-spy (`pip install py-spy`; on PyPI as a
static binary) and permission to ptrace the workers (root, or ptrace_scope 0).
"""
from __future__ import annotations

import argparse
import collections
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import profile_target
from _common import Client, Stage, api_json, basic_auth, issue_token, oracle_tenant, token_form
from _wrk import Target, cookie_header, need_wrk, run_wrk
from tenant_list import EMPTY_PATH

TARGETS = ("list", "empty", "bare", "issue-hs256", "issue-rs256", "validate-rs256")


def target_for(stage: Stage, name: str) -> Target:
    """The one request the load repeats, set up as the benchmark sets it up."""
    if name in ("list", "empty"):
        client = Client(stage.port)
        try:
            client.sign_in(stage.password, "/tenants/")
            cookies = cookie_header(client.cookies)
        finally:
            client.close()
        return Target(name, "GET", "/tenants/" if name == "list" else EMPTY_PATH, cookies)
    if name == "bare":
        return Target(name, "GET", "/bare/")
    api = stage.api_key("spy")
    algorithm = "HS256" if name == "issue-hs256" else "RS256"
    tenant, secret = f"spy-{algorithm.lower()}", secrets.token_urlsafe(48)
    body = {**oracle_tenant(tenant, algorithm, secret), "rsaKeySize": 2048}
    api_json(stage.port, "POST", "/v1/tenant", body, api.headers)
    issue = Target(name, "POST", "/oauth/token", {"Authorization": basic_auth(body["clientId"], secret),
                                                  "Content-Type": "application/x-www-form-urlencoded"},
                   [token_form(tenant)])
    if name.startswith("issue"):
        return issue
    token = issue_token(stage.port, tenant, issue.headers["Authorization"])["access_token"]
    return Target(name, "POST", "/v1/token/validate", {"Content-Type": "application/json", **api.headers},
                  [json.dumps({"token": token})])


def package_of(frame: str) -> str:
    """'function (sqlalchemy/engine/base.py:12)' → its package (sqlalchemy, portal.services, ...). py-spy names files
    relative to the sys.path entry they came from; an absolute path is handled as profile_target.py does."""
    path = frame.rsplit("(", 1)[-1].rstrip(")").rsplit(":", 1)[0]
    if path.startswith("/"):
        return profile_target.package_of(path)
    parts = Path(path).parts
    if parts and parts[0] == "portal":
        return ".".join(parts[:2]).removesuffix(".py")
    if path.endswith(".html"):
        return "templates (Jinja)"
    return parts[0] if len(parts) > 1 and parts[0] != "concurrent" else "python (stdlib)"


def summarise(raw: Path, top: int) -> None:
    """Own time per package and per function, and time under each function (inclusive), from py-spy's collapsed
    stacks ('a;b;c count')."""
    by_package: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    whole = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        leaf = frames[-1]
        n = int(count)
        whole += n
        by_package[package_of(leaf)] += n
        by_function[leaf] += n
        for frame in set(frames):
            inclusive[frame] += n
    print(f"own time by package ({whole} samples):")
    for name, n in by_package.most_common(16):
        print(f"  {name:<28} {n / whole:6.1%}")
    print(f"\nown time by function (top {top}):")
    for name, n in by_function.most_common(top):
        print(f"  {n / whole:6.1%}  {name}")
    print(f"\ntime under each function, callees included (top {top}):")
    for name, n in inclusive.most_common(top):
        print(f"  {n / whole:6.1%}  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=TARGETS)
    parser.add_argument("--seconds", type=float, default=15.0, help="load and sampling time (default: 15)")
    parser.add_argument("--tenants", type=int, default=100, help="demo tenants seeded first (default: 100)")
    parser.add_argument("--database-url", help="a PostgreSQL server URL (default: SQLite in a temporary folder)")
    parser.add_argument("--clients", type=int, default=8, help="wrk connections (default: 8)")
    parser.add_argument("--top", type=int, default=40, help="functions shown (default: 40)")
    parser.add_argument("--keep", metavar="FILE", help="also keep py-spy's collapsed stacks in FILE")
    args = parser.parse_args()
    need_wrk()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        parser.error("py-spy is not installed: .venv/bin/pip install py-spy")
    with Stage(args.database_url, prefix="portal-spy-") as stage, tempfile.TemporaryDirectory() as folder:
        if args.tenants:
            stage.flask("seed-demo", "--tenants", str(args.tenants))
        stage.start(workers=1, worker_class="gthread", threads=4)
        target = target_for(stage, args.target)
        run_wrk(target, stage.port, 3, args.clients, Path(folder))  # warm-up
        raw = Path(args.keep or Path(folder) / "stacks.txt")
        worker = stage.worker_pids()[0]
        spying = subprocess.Popen([spy, "record", "--pid", str(worker), "--rate", "250", "--format", "raw",
                                   "--duration", str(int(args.seconds) + 2), "--output", str(raw), "--nonblocking",
                                   "--gil"],  # only the thread holding the GIL: CPU, not threads waiting for it
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1)
        cpu = stage.server_cpu()
        sample = run_wrk(target, stage.port, args.seconds, args.clients, Path(folder))
        used = stage.server_cpu() - cpu
        spying.wait(timeout=args.seconds + 60)
        print(f"{args.target} on {stage.database}, 1 gthread worker × 4 threads, wrk -c{args.clients}: "
              f"{sample.ok} answers, {sample.errors} errors, {used / max(1, sample.ok + sample.errors) * 1000:.3f} ms "
              "server CPU per request (py-spy's sampling included)\n")
        if not raw.exists():
            print(spying.stderr.read().decode(), file=sys.stderr)
            return 1
        summarise(raw, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
