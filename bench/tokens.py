"""Token service throughput (issue 6): token issue and validation on gunicorn, each as a ratio to its ceiling measured
in the same run.

One run: a fresh database (SQLite in a temporary folder, or a throwaway PostgreSQL database); gunicorn on 127.0.0.1
serving the portal and a bare Flask page (bench/bare_app.py); an API client (`flask create-api-client`) and two
tenants registered through POST /v1/tenant (ORACLE with the connection check skipped, so no identity provider is
needed): one HS256, one RS256 with a 2048-bit key, each with a long random client secret. Then, in alternating
rounds so that background load weighs on every figure alike:

- GET /bare/ (the yardstick for what gunicorn, the network stack and the client cost);
- POST /oauth/token, client_credentials, HTTP Basic, for the HS256 tenant, then for the RS256 tenant;
- POST /v1/token/validate with RS256 tokens issued at the start (X-API-AppId / X-API-Key);
- in this process, with the server idle: PyJWT signing RS256 with a parsed 2048-bit key, one core.

The load comes from wrk (Debian package `wrk`; Lua scripts for the POST bodies), the cheapest client there is, so
that as much of the 2 shared cores as possible goes to the server; without wrk, Python processes with keep-alive
http.client connections. The client's CPU use is printed next to every figure.

    .venv/bin/python bench/tokens.py [--quick] [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Goals (issue 17), of the server's CPU time per request (bench/_wrk.py): bare ÷ HS256 issue >= 0.6, bare ÷ RS256
validate >= 0.6, RS256 issue <= one RSA signature (PyJWT here, CPU time) + 1.5 bare requests. The throughput ratios of
issue 6 (HS256 ÷ bare, RS256 issue ÷ cores × raw signing, validate ÷ bare) are printed beside them for comparison.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import shutil
import sys
import time
import uuid

from _common import (
    FORM,
    ApiKey,
    Client,
    Figure,
    Measurement,
    Stage,
    add_common_options,
    api_json,
    basic_auth,
    issue_token,
    load_average,
    machine_line,
    main_with_limits,
    oracle_tenant,
    step,
    token_form,
    write_json,
)
from _wrk import TABLE_HEADER, TABLE_NOTE, Sample, Target, Totals, cpu_ratio, rate_ratio, run_wrk, table_row

GOAL = 0.6
RS_ISSUE_BARE = 1.5  # RS256 issue may cost one RSA signature plus this many bare requests of server CPU
TARGETS = ("bare", "issue HS256", "issue RS256", "validate RS256")
TOKEN_POOL = 32  # distinct RS256 tokens the validate load cycles through


# --- clients ------------------------------------------------------------------------------------------------------


def _python_worker(args: tuple[Target, int, float, float]) -> tuple[int, int, list[float], float]:
    """One client process: one keep-alive connection, requests back to back until the deadline."""
    target, port, start_at, seconds = args
    client = Client(port)
    ok = errors = 0
    latencies: list[float] = []
    i = 0
    time.sleep(max(0.0, start_at - time.time()))
    cpu = time.process_time()
    deadline = time.perf_counter() + seconds
    while (now := time.perf_counter()) < deadline:
        body = target.bodies[i % len(target.bodies)].encode() if target.bodies else None
        i += 1
        try:
            status, _ = client.request(target.method, target.path, body, target.headers, cookies=False)
        except OSError:
            errors += 1
            continue
        latencies.append(time.perf_counter() - now)
        if status == 200:
            ok += 1
        else:
            errors += 1
    client.close()
    return ok, errors, latencies, time.process_time() - cpu


def run_python(target: Target, port: int, seconds: float, connections: int, pool) -> Sample:
    start_at = time.time() + 0.3  # every process starts together
    results = pool.map(_python_worker, [(target, port, start_at, seconds)] * connections)
    merged = Measurement(target.name)
    for ok, errors, latencies, _cpu in results:
        merged.ok += ok
        merged.errors += errors
        merged.latencies.extend(latencies)
    return Sample(ok=merged.ok, errors=merged.errors, seconds=seconds, client_cpu=sum(r[3] for r in results),
                  p50=merged.percentile(50), p99=merged.percentile(99))


# --- the raw ceiling ------------------------------------------------------------------------------------------------


class RawSigner:
    """PyJWT signing RS256 with an already parsed 2048-bit key, in this process, on one core: the ceiling of
    RS256 token issue per core. Claims like the portal's, so the JSON and base64 work is comparable."""

    def __init__(self) -> None:
        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.jwt = jwt
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = int(time.time())
        self.claims = {"iss": "http://127.0.0.1/t/bench-rs256", "sub": "bench-rs256-client", "aud": "bench",
                       "iat": now, "nbf": now, "exp": now + 3600, "TENANTID": "bench-rs256",
                       "user_name": "bench-rs256-client", "authorities": ["ROLE_CLIENT"]}

    def rate(self, seconds: float) -> tuple[float, float]:
        """Signatures per second of wall time, and CPU seconds per signature (this process's own CPU time)."""
        count = 0
        began, cpu = time.perf_counter(), time.process_time()
        deadline = began + seconds
        while time.perf_counter() < deadline:
            self.jwt.encode({**self.claims, "jti": uuid.uuid4().hex}, self.key, algorithm="RS256",
                            headers={"kid": "bench"})
            count += 1
        return count / (time.perf_counter() - began), (time.process_time() - cpu) / count


# --- set-up ---------------------------------------------------------------------------------------------------------


def targets(port: int, stage: Stage, run_seconds: float) -> tuple[dict[str, Target], ApiKey]:
    """Register the tenants, check one issue and one validation by hand, and describe the four loads."""
    api = stage.api_key("bench-tokens")
    found = {"bare": Target("bare", "GET", "/bare/")}
    rs_basic = ""
    for algorithm in ("HS256", "RS256"):
        tenant_id, secret = f"bench-{algorithm.lower()}", secrets.token_urlsafe(48)
        body = {**oracle_tenant(tenant_id, algorithm, secret), "rsaKeySize": 2048}
        api_json(port, "POST", "/v1/tenant", body, api.headers, expect=(201,))
        authorization = basic_auth(body["clientId"], secret)
        issue_token(port, tenant_id, authorization)
        found[f"issue {algorithm}"] = Target(f"issue {algorithm}", "POST", "/oauth/token",
                                             {**FORM, "Authorization": authorization}, [token_form(tenant_id)])
        if algorithm == "RS256":
            rs_basic = authorization
    tokens = [issue_token(port, "bench-rs256", rs_basic) for _ in range(TOKEN_POOL)]
    lifetime = min(t.get("expires_in", 0) for t in tokens)
    if lifetime < run_seconds + 60:
        raise RuntimeError(f"tokens live {lifetime} s, less than the run ({run_seconds:.0f} s): the validate load "
                           "would measure expired tokens; use fewer --rounds or --seconds")
    bodies = [json.dumps({"token": t["access_token"]}) for t in tokens]
    verdict = api_json(port, "POST", "/v1/token/validate", json.loads(bodies[0]), api.headers)
    if verdict.get("valid") is not True:
        raise RuntimeError(f"POST /v1/token/validate refused a fresh RS256 token: {verdict}")
    found["validate RS256"] = Target("validate RS256", "POST", "/v1/token/validate",
                                     {"Content-Type": "application/json", **api.headers}, bodies)
    return found, api


# --- the run --------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, help="seconds per target per round (default: 3; --quick: 2)")
    parser.add_argument("--rounds", type=int, help="rounds over the four targets and the raw signing "
                                                   "(default: 5; --quick: 3)")
    parser.add_argument("--quick", action="store_true", help="shorter, for make bench (--seconds 2 --rounds 3)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections (default: 16, "
                                                                    "as wrk -c16)")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator: wrk, Python processes, or wrk when installed (default: auto)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default: 2)")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class (default: sync)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (default: 1)")
    parser.add_argument("--pin-client", metavar="CPUS", help="run wrk under taskset -c CPUS (the ratios do not "
                                                             "depend on it; wall-clock rates may)")
    add_common_options(parser, time_limit=900)
    args = parser.parse_args(argv)
    preset = (2.0, 3) if args.quick else (3.0, 5)
    for name, value in zip(("seconds", "rounds"), preset, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
    elif args.client == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk), or use --client python")
    if args.rounds < 1 or args.seconds < 1 or args.connections < 1:
        parser.error("--rounds, --connections must be positive and --seconds at least 1")
    return args


def run(args: argparse.Namespace) -> int:
    args.load_at_start = load_average()
    pool = multiprocessing.get_context("spawn").Pool(args.connections) if args.client == "python" else None
    try:
        with Stage(args.database_url, args.keep, prefix="portal-bench-tokens-") as stage:
            port = stage.start(workers=args.workers, worker_class=args.worker_class, threads=args.threads)
            step("registering an HS256 and an RS256 (2048-bit) tenant; one token issued and validated by hand")
            loads, api = targets(port, stage, args.rounds * (len(TARGETS) * args.seconds + 1) + len(TARGETS))
            signer = RawSigner()
            signer.rate(0.5)  # warm-up: imports, first-call costs
            step(f"warming up: 1 s on each target ({args.client}, {args.connections} connections)")
            for target in loads.values():
                measure(target, port, 1, args, stage, pool)
            step(f"measuring: {args.rounds} rounds of {args.seconds:g} s per target, then 1 s of raw signing")
            totals = {name: Totals() for name in TARGETS}
            raw: list[tuple[float, float]] = []
            for _ in range(args.rounds):
                for name in TARGETS:
                    totals[name].samples.append(measure(loads[name], port, args.seconds, args, stage, pool))
                raw.append(signer.rate(1.0))
            body = json.loads(loads["validate RS256"].bodies[-1])
            verdict = api_json(port, "POST", "/v1/token/validate", body, api.headers)
            if verdict.get("valid") is not True:
                raise RuntimeError(f"after the load, a token the load validated is refused: {verdict}")
            figures = goal_figures(totals, raw)
            report(args, stage, totals, raw, figures)
            write_json(args.json, "tokens", figures, server=stage.server_command, database=stage.database,
                       client=args.client, connections=args.connections, cores=os.cpu_count(),
                       load_average=[args.load_at_start, load_average()],
                       raw_rs256_sign_per_core=sum(r for r, _ in raw) / len(raw),
                       rates={name: t.rate for name, t in totals.items()},
                       cpu_ms_per_request={name: t.cpu_per_request * 1000 for name, t in totals.items()},
                       errors={name: t.errors for name, t in totals.items()})
            return 1 if args.strict and not all(f.met for f in figures) else 0
    finally:
        if pool is not None:
            pool.terminate()


def measure(target: Target, port: int, seconds: float, args: argparse.Namespace, stage: Stage, pool) -> Sample:
    server_before = stage.server_cpu()
    if args.client == "wrk":
        sample = run_wrk(target, port, seconds, args.connections, stage.folder, args.pin_client)
    else:
        sample = run_python(target, port, seconds, args.connections, pool)
    sample.server_cpu = stage.server_cpu() - server_before
    return sample


def goal_figures(totals: dict[str, Totals], raw: list[tuple[float, float]]) -> list[Figure]:
    """Goals of CPU per request (issue 17); the throughput ratios of issue 6 follow without a goal."""
    cores = os.cpu_count() or 1
    bare = totals["bare"]
    rate_per_core = sum(r for r, _ in raw) / len(raw)
    sign_cpu = sum(c for _, c in raw) / len(raw)
    clean = sum(t.errors for t in totals.values()) == 0

    def figure(name: str, value: float) -> Figure:
        return Figure(name, value, f">= {GOAL}", clean and value >= GOAL)

    rs_budget = sign_cpu + RS_ISSUE_BARE * bare.cpu_per_request
    rs_share = totals["issue RS256"].cpu_per_request / rs_budget if rs_budget else 0.0
    return [
        figure("HS256 issue CPU/req: bare ÷ issue", cpu_ratio(bare, totals["issue HS256"])),
        figure("RS256 validate CPU/req: bare ÷ validate", cpu_ratio(bare, totals["validate RS256"])),
        Figure(f"RS256 issue CPU/req ÷ (one RSA sign + {RS_ISSUE_BARE:g} bare)", rs_share, "<= 1.0",
               clean and 0 < rs_share <= 1.0),
        Figure("(earlier figure) HS256 issue ÷ bare req/s", rate_ratio(bare, totals["issue HS256"]), "", None),
        Figure(f"(earlier figure) RS256 issue ÷ ({cores} cores × raw sign/s)",
               totals["issue RS256"].rate / (cores * rate_per_core), "", None),
        Figure("(earlier figure) RS256 validate ÷ bare req/s", rate_ratio(bare, totals["validate RS256"]), "", None),
    ]


def report(args: argparse.Namespace, stage: Stage, totals: dict[str, Totals], raw: list[tuple[float, float]],
           figures: list[Figure]) -> None:
    cores = os.cpu_count() or 1
    per_core = sum(r for r, _ in raw) / len(raw)
    sign_ms = sum(c for _, c in raw) / len(raw) * 1000
    client = (f"wrk -t1 -c{args.connections} with a Lua script per target" if args.client == "wrk"
              else f"{args.connections} Python processes, one keep-alive http.client connection each")
    print()
    print("command:  " + " ".join([sys.executable, *sys.argv]))
    print("server:   " + stage.server_command)
    print(f"          {args.worker_class} workers: token issue and validation are CPU-bound, so threads add nothing "
          "under the GIL (security.md §5: sync -w 2 served the most token requests per second here)")
    print(f"client:   {client}" + (f", pinned to CPUs {args.pin_client}" if args.pin_client else ""))
    print(machine_line(args.load_at_start))
    print(f"timing:   {args.rounds} rounds of {args.seconds:g} s per target, alternating; database {stage.database}")
    print()
    print(TABLE_HEADER)
    print("-" * len(TABLE_HEADER))
    for name in TARGETS:
        print(table_row(name, totals[name]))
    print(f"{'raw RS256 sign':<22} | {per_core:>8.1f} | {'':>6} | {'':>7} | {'':>7} | {sign_ms:>10.3f} |  (PyJWT in "
          f"this process, one core; × {cores} cores = {per_core * cores:.0f}/s)")
    print()
    for figure in figures:
        print(figure.line())
    print(TABLE_NOTE)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return main_with_limits(args, run)


if __name__ == "__main__":
    sys.exit(main())
