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

Goals (issue 6), each >= 0.6: HS256 issue rate ÷ bare page rate; RS256 issue rate ÷ (cores × raw PyJWT RS256 sign
rate); RS256 validate rate ÷ bare page rate.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    FORM,
    HOST,
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

GOAL = 0.6
TARGETS = ("bare", "issue HS256", "issue RS256", "validate RS256")
TOKEN_POOL = 32  # distinct RS256 tokens the validate load cycles through


@dataclass
class Target:
    """One request the load repeats: method, path, headers and the bodies it cycles through."""
    name: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    bodies: list[str] = field(default_factory=list)


@dataclass
class Sample:
    """One timed load on one target: served requests, errors, latency, and the CPU the client and server used."""
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    p50: float = 0.0
    p99: float = 0.0

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


@dataclass
class Totals:
    """Samples of one target over the rounds; latency percentiles weighted by each round's requests."""
    samples: list[Sample] = field(default_factory=list)

    def total(self, attribute: str) -> float:
        return sum(getattr(s, attribute) for s in self.samples)

    @property
    def rate(self) -> float:
        seconds = self.total("seconds")
        return self.total("ok") / seconds if seconds else 0.0

    def share(self, attribute: str) -> float:
        seconds = self.total("seconds")
        return self.total(attribute) / seconds if seconds else 0.0

    def weighted(self, attribute: str) -> float:
        served = self.total("ok")
        return sum(getattr(s, attribute) * s.ok for s in self.samples) / served if served else 0.0


# --- clients ------------------------------------------------------------------------------------------------------


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of printable ASCII is a valid Lua string literal


WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK-JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\\n', summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_script(target: Target) -> str:
    lines = [f"wrk.method = {lua_string(target.method)}"]
    for name, value in target.headers.items():
        lines.append(f"wrk.headers[{lua_string(name)}] = {lua_string(value)}")
    if len(target.bodies) == 1:
        lines.append(f"wrk.body = {lua_string(target.bodies[0])}")
    elif target.bodies:  # one request string per body, made once; request() hands them out in turn
        lines.append("local bodies = {" + ", ".join(lua_string(b) for b in target.bodies) + "}")
        lines.append("local prepared, i = {}, 0")
        lines.append("init = function(args) for n, b in ipairs(bodies) do "
                     f"prepared[n] = wrk.format(nil, {lua_string(target.path)}, nil, b) end end")
        lines.append("request = function() i = i % #prepared + 1; return prepared[i] end")
    return "\n".join(lines) + "\n" + WRK_DONE


def run_wrk(target: Target, port: int, seconds: float, connections: int, folder: Path) -> Sample:
    script = folder / f"{target.name.replace(' ', '_')}.lua"
    script.write_text(wrk_script(target))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script),
               f"http://{HOST}:{port}{target.path}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK-JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("WRK-JSON "))
    # connection errors are "connect/read/write/timeout"; status counts answers other than 2xx/3xx
    errors = data["connect"] + data["read"] + data["write"] + data["timeout"] + data["status"]
    return Sample(ok=data["requests"] - data["status"], errors=errors, seconds=data["duration_us"] / 1e6,
                  client_cpu=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
                  p50=data["p50_us"] / 1e6, p99=data["p99_us"] / 1e6)


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

    def rate(self, seconds: float) -> float:
        count = 0
        began = time.perf_counter()
        deadline = began + seconds
        while time.perf_counter() < deadline:
            self.jwt.encode({**self.claims, "jti": uuid.uuid4().hex}, self.key, algorithm="RS256",
                            headers={"kid": "bench"})
            count += 1
        return count / (time.perf_counter() - began)


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
            raw: list[float] = []
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
                       raw_rs256_sign_per_core=sum(raw) / len(raw),
                       rates={name: t.rate for name, t in totals.items()},
                       errors={name: int(t.total("errors")) for name, t in totals.items()})
            return 1 if args.strict and not all(f.met for f in figures) else 0
    finally:
        if pool is not None:
            pool.terminate()


def measure(target: Target, port: int, seconds: float, args: argparse.Namespace, stage: Stage, pool) -> Sample:
    server_before = stage.server_cpu()
    if args.client == "wrk":
        sample = run_wrk(target, port, seconds, args.connections, stage.folder)
    else:
        sample = run_python(target, port, seconds, args.connections, pool)
    sample.server_cpu = stage.server_cpu() - server_before
    return sample


def goal_figures(totals: dict[str, Totals], raw: list[float]) -> list[Figure]:
    cores = os.cpu_count() or 1
    bare = totals["bare"].rate
    ceiling = cores * sum(raw) / len(raw)
    clean = sum(t.total("errors") for t in totals.values()) == 0

    def figure(name: str, value: float) -> Figure:
        return Figure(name, value, f">= {GOAL}", clean and value >= GOAL)

    return [
        figure("HS256 issue ÷ bare page", totals["issue HS256"].rate / bare if bare else 0.0),
        figure(f"RS256 issue ÷ ({cores} cores × raw PyJWT RS256 sign)", totals["issue RS256"].rate / ceiling),
        figure("RS256 validate ÷ bare page", totals["validate RS256"].rate / bare if bare else 0.0),
        Figure("RS256 issue ÷ bare page", totals["issue RS256"].rate / bare if bare else 0.0, "", None),
    ]


def report(args: argparse.Namespace, stage: Stage, totals: dict[str, Totals], raw: list[float],
           figures: list[Figure]) -> None:
    cores = os.cpu_count() or 1
    per_core = sum(raw) / len(raw)
    client = (f"wrk -t1 -c{args.connections} with a Lua script per target" if args.client == "wrk"
              else f"{args.connections} Python processes, one keep-alive http.client connection each")
    print()
    print("command:  " + " ".join([sys.executable, *sys.argv]))
    print("server:   " + stage.server_command)
    print(f"          {args.worker_class} workers: token issue and validation are CPU-bound, so threads add nothing "
          "under the GIL (security.md §5: sync -w 2 served the most token requests per second here)")
    print(f"client:   {client}")
    print(machine_line(args.load_at_start))
    print(f"timing:   {args.rounds} rounds of {args.seconds:g} s per target, alternating; database {stage.database}")
    print()
    header = (f"{'target':<15} | {'req/s':>8} | {'errors':>6} | {'p50 ms':>7} | {'p99 ms':>7} | {'server CPU':>10} | "
              f"{'client CPU':>10}")
    print(header)
    print("-" * len(header))
    for name in TARGETS:
        t = totals[name]
        print(f"{name:<15} | {t.rate:>8.1f} | {int(t.total('errors')):>6} | {t.weighted('p50') * 1000:>7.2f} | "
              f"{t.weighted('p99') * 1000:>7.2f} | {t.share('server_cpu'):>9.0%} | {t.share('client_cpu'):>9.0%}")
    print(f"{'raw RS256 sign':<15} | {per_core:>8.1f} | {'':>6} | {'':>7} | {'':>7} | {'':>10} | {'':>10}  "
          f"(PyJWT in this process, one core; × {cores} cores = {per_core * cores:.0f}/s)")
    print()
    for figure in figures:
        print(figure.line())
    if GOAL * per_core * cores > totals["bare"].rate:
        print(f"note: {GOAL} × {cores} cores × raw sign = {GOAL * per_core * cores:.0f}/s is more than the bare page's "
              f"{totals['bare'].rate:.0f}/s: on this machine no endpoint behind this gunicorn set-up can meet the "
              "RS256 issue goal (the request handling alone costs more than the RSA signature).")
    print("server CPU: gunicorn's arbiter and workers, in cores (200% = both cores of 2); client CPU: the load "
          "generator, in cores. A client near 100% of a core on the bare page flatters every ratio.")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return main_with_limits(args, run)


if __name__ == "__main__":
    sys.exit(main())
