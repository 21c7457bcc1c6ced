"""Where a benchmark target's server time goes: cProfile over N requests served in this process by the same app
bench/bare_app.py gives gunicorn (production configuration from the environment, a fresh database as in the
benchmarks), through Werkzeug's test client. The HTTP server is left out; what is left is the portal's own work.

    .venv/bin/python bench/profile_target.py list [--tenants 100] [--requests 500] [--database-url postgresql://...]
    .venv/bin/python bench/profile_target.py empty|bare|issue-hs256|issue-rs256|validate-rs256 [--sort tottime]

Prints the functions taking the most time (cumulative, then own time), and the CPU milliseconds per request.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import secrets
import sys
import time
from pathlib import Path

from _common import ADMIN, CSRF_RE, Stage, basic_auth, oracle_tenant, token_form

TARGETS = ("list", "empty", "bare", "issue-hs256", "issue-rs256", "validate-rs256")


def app_and_requests(stage: Stage, target: str):
    """The WSGI app as gunicorn serves it, a test client, and the request to repeat (method, path, kwargs)."""
    os.environ.update(stage.env)
    import bare_app  # noqa: PLC0415 - built from the environment just set

    client = bare_app.portal.test_client()
    if target in ("list", "empty"):
        page = client.get("/login").get_data(as_text=True)
        csrf = CSRF_RE.search(page).group(1)
        done = client.post("/login", data={"username": ADMIN, "password": stage.password, "csrf_token": csrf})
        assert done.status_code == 302, done.status_code
        return bare_app.application, client, ("GET", "/tenants/" if target == "list" else "/bench/empty", {})
    if target == "bare":
        from werkzeug.test import Client
        return bare_app.application, Client(bare_app.application), ("GET", "/bare/", {})
    api = stage.api_key("profile")
    algorithm = "HS256" if target == "issue-hs256" else "RS256"
    tenant, secret = f"prof-{algorithm.lower()}", secrets.token_urlsafe(48)
    body = {**oracle_tenant(tenant, algorithm, secret), "rsaKeySize": 2048}
    done = client.post("/v1/tenant", json=body, headers=api.headers)
    assert done.status_code == 201, done.get_data(as_text=True)
    issue = ("POST", "/oauth/token", {"data": token_form(tenant), "headers": {
        "Authorization": basic_auth(body["clientId"], secret),
        "Content-Type": "application/x-www-form-urlencoded"}})
    if target.startswith("issue"):
        return bare_app.application, client, issue
    token = client.open(issue[1], method="POST", **issue[2]).get_json()["access_token"]
    return bare_app.application, client, ("POST", "/v1/token/validate",
                                          {"data": json.dumps({"token": token}),
                                           "headers": {"Content-Type": "application/json", **api.headers}})


def package_of(filename: str) -> str:
    """The top-level package a profiled function lives in (portal.web, sqlalchemy, jinja2, a template...)."""
    if filename.startswith("<template>") or filename.endswith(".html"):
        return "templates (Jinja)"
    if filename == "~":
        return "built-ins (C)"
    path = Path(filename)
    parts = path.parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    if "portal" in parts:
        i = parts.index("portal")
        return ".".join(parts[i:i + 2]).removesuffix(".py")
    return "python (stdlib)" if "lib" in parts else path.name


def by_package(profile: cProfile.Profile, requests: int) -> None:
    """Own time summed per package, as a share: where the request's time goes, profiler overhead spread alike."""
    stats = pstats.Stats(profile)
    totals: dict[str, float] = {}
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        totals[package_of(filename)] = totals.get(package_of(filename), 0.0) + tottime
    whole = sum(totals.values()) or 1.0
    print(f"own time by package ({requests} requests; shares of the profiled time):")
    for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1])[:16]:
        print(f"  {name:<28} {seconds / whole:6.1%}")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=TARGETS)
    parser.add_argument("--tenants", type=int, default=100, help="demo tenants seeded first (default: 100)")
    parser.add_argument("--requests", type=int, default=500, help="requests profiled (default: 500)")
    parser.add_argument("--database-url", help="a PostgreSQL server URL (default: SQLite in a temporary folder)")
    parser.add_argument("--sort", default="cumulative", help="pstats sort key (default: cumulative)")
    parser.add_argument("--lines", type=int, default=45, help="functions shown (default: 45)")
    parser.add_argument("--dump", metavar="FILE", help="also write the raw profile to FILE (pstats format)")
    parser.add_argument("--time-only", action="store_true", help="no profiler: only the CPU ms per request")
    args = parser.parse_args()
    with Stage(args.database_url, prefix="portal-profile-") as stage:
        if args.tenants:
            stage.flask("seed-demo", "--tenants", str(args.tenants))
        _app, client, (method, path, kwargs) = app_and_requests(stage, args.target)
        for _ in range(50):  # warm-up: first-request costs, caches, compiled statements
            answer = client.open(path, method=method, **kwargs)
            assert answer.status_code == 200, (answer.status_code, answer.get_data(as_text=True)[:300])
        if args.time_only:
            cpu = time.process_time()
            for _ in range(args.requests):
                client.open(path, method=method, **kwargs)
            used = time.process_time() - cpu
            print(f"{args.target} on {stage.database}: {used / args.requests * 1000:.3f} ms CPU per request in "
                  f"this process (test client, no HTTP server), {args.requests} requests")
            return 0
        profile = cProfile.Profile()
        cpu = time.process_time()
        profile.enable()
        for _ in range(args.requests):
            client.open(path, method=method, **kwargs)
        profile.disable()
        used = time.process_time() - cpu
        print(f"{args.target} on {stage.database}: {used / args.requests * 1000:.3f} ms CPU per request under "
              f"cProfile (its overhead included), {args.requests} requests")
        by_package(profile, args.requests)
        stats = pstats.Stats(profile, stream=sys.stdout).strip_dirs()
        stats.sort_stats(args.sort).print_stats(args.lines)
        if args.sort != "tottime":
            stats.sort_stats("tottime").print_stats(25)
        if args.dump:
            profile.dump_stats(args.dump)
    return 0


if __name__ == "__main__":
    sys.exit(main())
