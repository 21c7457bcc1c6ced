"""Mixed administrator load against gunicorn: errors, latency per kind of request, throughput as a ratio to a bare
Flask page, and the workers' memory after 5,000 and after 10,000 requests.

One run: a fresh database (SQLite in a temporary folder, or a throwaway PostgreSQL database) with an administrator
and 1,000 demo tenants; gunicorn on 127.0.0.1 serving the portal and a bare Flask page (bench/bare_app.py), set up
as for tenant_list.py; two tenants for token issue (HS256 and RS256) registered through POST /v1/tenant. Then many
clients, each a browser session of an administrator, work at once: sign in through the form (CSRF token from the
page), open the tenant list, search, open a tenant's page, register a tenant through the form, have a token issued
(POST /oauth/token, as a machine would), and sign out and in again every so often. The measured time is split into
alternating rounds of this mix and of the bare page, with the same clients. At 5,000 and at 10,000 portal requests
the clients pause and each gunicorn worker's resident memory is read from /proc.

    .venv/bin/python bench/load.py [--quick] [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Goals (issue 7): no errors; memory growth under 5% between 5,000 and 10,000 requests. The mix ÷ bare ratio is
printed for comparing runs on one machine (it has no goal: it depends on the mix).
"""
from __future__ import annotations

import argparse
import random
import secrets
import sys
import time
import urllib.parse

from _common import (
    CSRF_RE,
    FORM,
    Client,
    Figure,
    Measurement,
    Stage,
    Tickets,
    add_common_options,
    api_json,
    basic_auth,
    drive,
    issue_token,
    load_average,
    machine_line,
    main_with_limits,
    oracle_tenant,
    rss_bytes,
    step,
    timed_get,
    token_form,
    write_json,
)

GOAL_GROWTH = 0.05
MIB = 1024 * 1024

# What an administrator does, per action (a register action is two requests: the form, then the post). The
# weights are a guess at a working day: mostly reading, some searching, a few registrations and test tokens.
MIX: dict[str, int] = {"list": 30, "search": 20, "detail": 30, "register": 5, "token HS256": 12, "token RS256": 3}
SEARCH_TERMS = ("Cedar", "Falcon", "Summit", "Labs", "Retail", "demo-0004", "demo-00012", "example", "zzz-none")
# Every kind of request, with the status that means "served as expected".
EXPECTED = {"login page": 200, "sign-in": 302, "sign-in busy": 503, "sign-out": 302, "list": 200, "search": 200,
            "detail": 200, "register form": 200, "register": 302, "token HS256": 200, "token RS256": 200}
KIND_ORDER = ("sign-in", "sign-in busy", "login page", "sign-out", "list", "search", "detail", "register form",
              "register", "token HS256", "token RS256", "connection")


class Administrator:
    """One administrator's browser session on one keep-alive connection, acting out the mix one request at a time.
    Two-request actions (sign in, register) leave their second half pending, so a pause between requests (a memory
    checkpoint, a bare round) never breaks an action."""

    def __init__(self, number: int, port: int, password: str, demo_tenants: int,
                 token_tenants: dict[str, tuple[str, str]], session_actions: int, kinds: dict[str, int]):
        self.number, self.password = number, password
        self.http = Client(port)
        self.rng = random.Random(number)
        self.demo_tenants = demo_tenants
        self.token_tenants = token_tenants  # kind -> (tenant id, Basic header value)
        self.session_actions = session_actions
        self.kinds, self.weights = list(kinds), list(kinds.values())
        self.actions_left = 0
        self.pending: list[str] = ["login page"]
        self.csrf = ""  # from a page of this session: the sign-out form (and its token) is on every page
        self.registered = 0
        self.last_page = b""
        self.wait_until = 0.0  # after a busy sign-in: the person waits Retry-After seconds before trying again

    def __call__(self, _client: object = None) -> tuple[str, bool, float]:
        if (pause := self.wait_until - time.monotonic()) > 0:
            time.sleep(pause)
        if self.pending:
            kind = self.pending.pop(0)
        elif self.actions_left <= 0:
            kind = "sign-out" if self.csrf else "list"  # the sign-out form's token comes from a page
        else:
            kind = self.rng.choices(self.kinds, self.weights)[0]
            self.actions_left -= 1
            if kind == "register":
                kind = "register form"
        began = time.perf_counter()
        status, body, ok = getattr(self, "_" + kind.replace(" ", "_").replace("-", "_"))()
        latency = time.perf_counter() - began
        if kind == "sign-in" and status == 503:
            kind = "sign-in busy"  # issue 13's hashing slots were all taken: a refusal by design, said with Retry-After
        return kind, ok and status == EXPECTED[kind], latency

    # --- one method per kind: (status, body, the body is as expected) -------------------------------------------

    def _page(self, path: str) -> tuple[int, bytes, bool]:
        status, body = self.http.request("GET", path)
        if not self.csrf and status == 200 and (match := CSRF_RE.search(body.decode())):
            self.csrf = match.group(1)
        return status, body, True

    def _login_page(self) -> tuple[int, bytes, bool]:
        status, body = self.http.request("GET", "/login")
        self.last_page = body
        self.pending.append("sign-in")
        return status, body, True

    def _sign_in(self) -> tuple[int, bytes, bool]:
        status, body = self.http.post_form("/login", self.http.sign_in_form(self.password, self.last_page))
        self.actions_left, self.csrf = self.session_actions, ""
        if status == 503:  # the portal is busy hashing other sign-ins: wait as told, then sign in again
            self.wait_until = time.monotonic() + float(self.http.last_headers.get("Retry-After", "1"))
            self.pending = ["login page"]
            return status, body, b"try again in" in body
        return status, body, True

    def _sign_out(self) -> tuple[int, bytes, bool]:
        status, body = self.http.post_form("/logout", {"csrf_token": self.csrf})
        self.pending.append("login page")
        return status, body, True

    def _list(self) -> tuple[int, bytes, bool]:
        return self._page("/tenants/")

    def _search(self) -> tuple[int, bytes, bool]:
        return self._page("/tenants/?" + urllib.parse.urlencode({"q": self.rng.choice(SEARCH_TERMS)}))

    def _detail(self) -> tuple[int, bytes, bool]:
        return self._page(f"/tenants/demo-{self.rng.randint(1, self.demo_tenants):06d}")

    def _register_form(self) -> tuple[int, bytes, bool]:
        status, body = self.http.request("GET", "/tenants/new")
        match = CSRF_RE.search(body.decode()) if status == 200 else None
        if match:
            self.csrf = match.group(1)
            self.pending.append("register")
        return status, body, match is not None

    def _register(self) -> tuple[int, bytes, bool]:
        self.registered += 1
        tenant_id = f"load-{self.number}-{self.registered}-{secrets.token_hex(3)}"
        fields = {
            "csrf_token": self.csrf, "tenantId": tenant_id, "displayName": f"Load {self.number} {self.registered}",
            "tenantDomain": "", "ownerUsername": "", "ownerEmail": "", "ownerFirstName": "", "ownerLastName": "",
            "ownerProvisioningMethod": "invite-via-email", "ownerPassword": "",
            "clientId": f"{tenant_id}-client", "clientSecret": secrets.token_urlsafe(32),
            "identityProviderType": "ORACLE", "supportAlgorithm": "HS256", "signingKey": "", "rsaKeySize": "2048",
            "dataSourceURL": "jdbc:oracle:thin:@//db.load.invalid:1521/ORCL", "dataSourceUserName": "load",
            "dataSourcePassword": secrets.token_urlsafe(12), "skip_check": "y", "save": "Register tenant",
        }
        status, body = self.http.post_form("/tenants/new", fields)
        # 302 to the new tenant's page; a 200 would be the form again with field errors
        return status, body, True

    def _token(self, kind: str) -> tuple[int, bytes, bool]:
        tenant_id, basic = self.token_tenants[kind]
        status, data = self.http.request("POST", "/oauth/token", token_form(tenant_id).encode(),
                                         {**FORM, "Authorization": basic}, cookies=False)
        return status, data, b'"access_token"' in data

    def _token_HS256(self) -> tuple[int, bytes, bool]:  # noqa: N802 - named after the kind
        return self._token("token HS256")

    def _token_RS256(self) -> tuple[int, bytes, bool]:  # noqa: N802
        return self._token("token RS256")


class Tally:
    """Per-kind results over several phases, with the phases' total time and client CPU."""

    def __init__(self) -> None:
        self.kinds: dict[str, Measurement] = {}
        self.seconds = 0.0
        self.client_cpu = 0.0
        self.server_cpu = 0.0  # gunicorn's CPU seconds in the timed rounds, when measured

    def add(self, part: dict[str, Measurement], timed: bool = True) -> None:
        if part and timed:
            first = next(iter(part.values()))
            self.seconds += first.seconds
            self.client_cpu += first.client_cpu
        for kind, m in part.items():
            mine = self.kinds.setdefault(kind, Measurement(kind))
            mine.ok += m.ok
            mine.errors += m.errors
            mine.latencies.extend(m.latencies)

    @property
    def ok(self) -> int:
        return sum(m.ok for m in self.kinds.values())

    @property
    def errors(self) -> int:
        return sum(m.errors for m in self.kinds.values())

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def cpu_share(self) -> float:
        return self.client_cpu / self.seconds if self.seconds else 0.0

    def all_latencies(self) -> Measurement:
        merged = Measurement("all")
        for m in self.kinds.values():
            merged.latencies.extend(m.latencies)
        return merged


class Run:
    """The load with memory checkpoints: mixed phases stop at exactly N portal requests, the server is left idle
    for a moment (in-flight requests have finished) and each worker's RSS is read."""

    def __init__(self, stage: Stage, admins: list[Administrator], checkpoints: list[int]):
        self.stage, self.admins = stage, admins
        self.tickets = Tickets()  # counts every portal request the clients send, warm-up included
        self.checkpoints = sorted(checkpoints)
        self.memory: list[tuple[int, dict[int, int]]] = []  # (requests, {worker pid: RSS bytes})

    def mixed(self, seconds: float, tally: Tally, timed: bool = True) -> None:
        remaining = seconds
        while remaining > 0.05:
            due = [c for c in self.checkpoints if c > self.tickets.taken]
            self.tickets.limit = due[0] if due else None
            part = drive(self.admins, lambda admin: admin(), remaining, self.tickets)
            elapsed = next(iter(part.values())).seconds if part else remaining
            tally.add(part, timed)
            remaining -= elapsed
            if due and self.tickets.taken >= due[0]:
                self.sample(due[0])

    def sample(self, requests: int) -> None:
        time.sleep(0.5)  # let the workers finish writing responses and return freed memory
        pids = self.stage.worker_pids()
        self.memory.append((requests, {pid: rss_bytes(pid) for pid in pids}))
        step(f"  {requests:,} portal requests: worker RSS "
             + ", ".join(f"{pid} {rss / MIB:.1f} MiB" for pid, rss in self.memory[-1][1].items()))

    def until_checkpoints(self, tally: Tally) -> None:
        """Mixed load, outside the timed rounds, until the last checkpoint is reached."""
        while due := [c for c in self.checkpoints if c > self.tickets.taken]:
            self.tickets.limit = due[0]
            tally.add(drive(self.admins, lambda admin: admin(), 3600, self.tickets), timed=False)
            self.sample(due[0])


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent administrators (default: 32)")
    parser.add_argument("--duration", type=float, help="seconds measured, mix and bare page together "
                                                       "(default: 60; --quick: 30)")
    parser.add_argument("--rounds", type=int, help="alternating mix/bare rounds the duration is split into "
                                                   "(default: 6; --quick: 3)")
    parser.add_argument("--warmup", type=float, help="seconds of unmeasured mix first (default: 5; --quick: 3)")
    parser.add_argument("--quick", action="store_true", help="shorter, for make bench (--duration 30 --rounds 3 "
                                                             "--warmup 3; the memory checkpoints stay)")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[5000, 10000], metavar="N",
                        help="portal requests after which worker memory is read (default: 5000 10000); the goal "
                             "compares the first two; the load goes on past the measured time until the last")
    parser.add_argument("--tenants", type=int, default=1000, help="demo tenants seeded first (default: 1000)")
    parser.add_argument("--session-actions", type=int, default=100,
                        help="actions between signing out and in again (default: 100)")
    parser.add_argument("--kinds", nargs="+", choices=list(MIX), default=list(MIX),
                        help="kinds of action in the mix (default: all)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default: 2)")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class (default: gthread)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker (default: 4)")
    add_common_options(parser, time_limit=900)
    args = parser.parse_args(argv)
    preset = (30.0, 3, 3.0) if args.quick else (60.0, 6, 5.0)
    for name, value in zip(("duration", "rounds", "warmup"), preset, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.rounds < 1 or args.duration <= 0 or args.clients < 1 or args.tenants < 1:
        parser.error("--rounds, --duration, --clients and --tenants must be positive")
    if len(args.checkpoints) < 2 or args.checkpoints != sorted(set(args.checkpoints)) or args.checkpoints[0] < 1:
        parser.error("--checkpoints: two or more positive counts, ascending")
    return args


def token_tenants(port: int, stage: Stage, kinds: list[str]) -> dict[str, tuple[str, str]]:
    """One tenant per token algorithm in the mix, registered through the API; checks that a token is issued."""
    api = stage.api_key("bench-load")
    found: dict[str, tuple[str, str]] = {}
    for kind in kinds:
        if not kind.startswith("token "):
            continue
        algorithm = kind.split()[1]
        tenant_id, secret = f"load-{algorithm.lower()}", secrets.token_urlsafe(48)
        body = oracle_tenant(tenant_id, algorithm, secret)
        api_json(port, "POST", "/v1/tenant", body, api.headers, expect=(201,))
        basic = basic_auth(body["clientId"], secret)
        issue_token(port, tenant_id, basic)
        found[kind] = (tenant_id, basic)
    return found


def run(args: argparse.Namespace) -> int:
    args.load_at_start = load_average()
    admins: list[Administrator] = []
    with Stage(args.database_url, args.keep, prefix="portal-bench-load-") as stage:
        try:
            step(f"seeding {args.tenants:,} demo tenants")
            stage.flask("seed-demo", "--tenants", str(args.tenants))
            port = stage.start(workers=args.workers, worker_class=args.worker_class, threads=args.threads)
            tokens = token_tenants(port, stage, args.kinds)
            mix = {kind: MIX[kind] for kind in args.kinds}
            admins = [Administrator(i, port, stage.password, args.tenants, tokens, args.session_actions, mix)
                      for i in range(args.clients)]
            load = Run(stage, admins, args.checkpoints)
            warm = Tally()
            step(f"warming up: {args.clients} administrators sign in and work for {args.warmup:g} s")
            load.mixed(args.warmup, warm)
            mixed, bare = Tally(), Tally()
            per_round = args.duration / 2 / args.rounds
            step(f"measuring: {args.duration:g} s in {args.rounds} alternating rounds of {per_round:g} s mix and "
                 f"{per_round:g} s bare page")
            cpu = {"mix": 0.0, "bare": 0.0}  # gunicorn's own CPU seconds in each kind of round (/proc)
            for _ in range(args.rounds):
                before = stage.server_cpu()
                load.mixed(per_round, mixed)
                middle = stage.server_cpu()
                bare.add(drive([a.http for a in admins], timed_get("/bare/"), per_round))
                cpu["mix"] += middle - before
                cpu["bare"] += stage.server_cpu() - middle
            mixed.server_cpu, bare.server_cpu = cpu["mix"], cpu["bare"]
            extra = Tally()
            if any(c > load.tickets.taken for c in args.checkpoints):
                step(f"going on with the mix until {args.checkpoints[-1]:,} portal requests (for the memory figure)")
                load.until_checkpoints(extra)
            figures = goal_figures(warm, mixed, bare, extra, load)
            report(args, stage, warm, mixed, bare, extra, load, figures)
            write_json(args.json, "load", figures, server=stage.server_command, database=stage.database,
                       clients=args.clients, mixed_rate=mixed.rate, bare_rate=bare.rate,
                       load_average=[args.load_at_start, load_average()],
                       kinds={kind: {"ok": m.ok, "errors": m.errors, "p50_ms": m.percentile(50) * 1000,
                                     "p99_ms": m.percentile(99) * 1000}
                              for kind, m in combined(mixed, extra).kinds.items()},
                       memory=[{"requests": n, "rss_bytes": rss} for n, rss in load.memory])
            return 1 if args.strict and not all(f.met for f in figures if f.goal) else 0
        finally:
            for admin in admins:
                admin.http.close()


def combined(*tallies: Tally) -> Tally:
    out = Tally()
    for tally in tallies:
        out.add(tally.kinds, timed=False)
    return out


def growth(load: Run, later: int = 1) -> dict[int, float]:
    """Per worker, the RSS growth from the first checkpoint to a later one; a worker missing at either (restarted
    or died) counts as infinite growth."""
    (_, first), (_, second) = load.memory[0], load.memory[later]
    return {pid: (second[pid] - first[pid]) / first[pid] if pid in second and first[pid] else float("inf")
            for pid in first} | {pid: float("inf") for pid in second if pid not in first}


def goal_figures(warm: Tally, mixed: Tally, bare: Tally, extra: Tally, load: Run) -> list[Figure]:
    errors = warm.errors + mixed.errors + bare.errors + extra.errors
    worst = max(growth(load).values()) if len(load.memory) >= 2 else float("inf")
    first, second = load.checkpoints[:2]
    return [
        Figure("errors in the mixed load", errors, "= 0", errors == 0, fmt=".0f"),
        Figure("sign-ins refused busy (503, Retry-After; the client waited and signed in again)", sum(
            t.kinds["sign-in busy"].ok for t in (warm, mixed, extra) if "sign-in busy" in t.kinds), "", None,
            fmt=".0f"),
        Figure(f"worker RSS growth {first:,} → {second:,} requests (worst worker)", worst * 100,
               f"< {GOAL_GROWTH:.0%}", worst < GOAL_GROWTH, "%", fmt="+.2f"),
        Figure("mix ÷ bare page throughput", mixed.rate / bare.rate if bare.rate else 0.0, "", None),
        Figure("mix CPU/req: bare ÷ mix (server CPU per request)", cpu_per_request(bare) / cpu_per_request(mixed)
               if cpu_per_request(mixed) else 0.0, "", None),
    ]


def cpu_per_request(tally: Tally) -> float:
    """Server CPU seconds per request in the timed rounds (gunicorn's arbiter and workers, /proc)."""
    answered = tally.ok + tally.errors
    return tally.server_cpu / answered if answered else 0.0


def report(args: argparse.Namespace, stage: Stage, warm: Tally, mixed: Tally, bare: Tally, extra: Tally, load: Run,
           figures: list[Figure]) -> None:
    total = sum(MIX[k] for k in args.kinds)
    print()
    print("command:  " + " ".join([sys.executable, *sys.argv]))
    print("server:   " + stage.server_command)
    print(f"database: {stage.database}, {args.tenants:,} demo tenants")
    print(machine_line(args.load_at_start))
    print(f"workload: {args.clients} administrators, one keep-alive connection each; per action "
          + ", ".join(f"{k} {MIX[k] / total:.0%}" for k in args.kinds)
          + f"; sign out and in every {args.session_actions} actions")
    print(f"timing:   {args.warmup:g} s warm-up, then {args.duration:g} s in {args.rounds} alternating rounds "
          f"(mix, bare page); {extra.ok + extra.errors:,} more mixed requests after that to reach "
          f"{args.checkpoints[-1]:,}")
    print()
    everything = combined(mixed, extra)
    header = f"{'kind':<13} | {'served':>7} | {'errors':>6} | {'p50 ms':>7} | {'p99 ms':>7}"
    print(header)
    print("-" * len(header))
    for kind in sorted(everything.kinds, key=lambda k: KIND_ORDER.index(k) if k in KIND_ORDER else 99):
        m = everything.kinds[kind]
        print(f"{kind:<13} | {m.ok:>7,} | {m.errors:>6} | {m.percentile(50) * 1000:>7.1f} | "
              f"{m.percentile(99) * 1000:>7.1f}")
    all_latencies = everything.all_latencies()
    print(f"{'all':<13} | {everything.ok:>7,} | {everything.errors:>6} | {all_latencies.percentile(50) * 1000:>7.1f} | "
          f"{all_latencies.percentile(99) * 1000:>7.1f}")
    bare_m = combined(bare).kinds.get("/bare/", Measurement("/bare/"))
    print(f"{'bare page':<13} | {bare.ok:>7,} | {bare.errors:>6} | {bare_m.percentile(50) * 1000:>7.1f} | "
          f"{bare_m.percentile(99) * 1000:>7.1f}")
    print(f"(warm-up, not in the table: {warm.ok:,} served, {warm.errors} errors)")
    print()
    print(f"throughput in the timed rounds: mix {mixed.rate:.1f} req/s, bare page {bare.rate:.1f} req/s; "
          f"client CPU {mixed.cpu_share:.0%} (mix), {bare.cpu_share:.0%} (bare) of one core; server CPU per request "
          f"{cpu_per_request(mixed) * 1000:.2f} ms (mix), {cpu_per_request(bare) * 1000:.2f} ms (bare)")
    print()
    if len(load.memory) >= 2:
        print("worker memory (RSS, read with the clients paused; requests = portal requests sent since start), "
              f"growth from {load.memory[0][0]:,}:")
        print(f"  {'worker pid':>10} | " + " | ".join(f"{f'after {n:,}':>13}" for n, _ in load.memory)
              + " | " + " | ".join(f"{f'growth {n:,}':>13}" for n, _ in load.memory[1:]))
        pids = sorted({pid for _, rss in load.memory for pid in rss})
        grown = [growth(load, i) for i in range(1, len(load.memory))]
        for pid in pids:
            cells = [f"{rss[pid] / MIB:>9.1f} MiB" if pid in rss else f"{'-':>13}" for _, rss in load.memory]
            changes = [f"{g[pid]:>+13.1%}" if g.get(pid, float("inf")) != float("inf") else f"{'restarted':>13}"
                       for g in grown]
            print(f"  {pid:>10} | " + " | ".join(cells) + " | " + " | ".join(changes))
        print()
    for figure in figures:
        print(figure.line())
    print("client CPU: the share of one core the clients (one Python process) used; near 100% means the client, "
          "not the server, set the pace.")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return main_with_limits(args, run)


if __name__ == "__main__":
    sys.exit(main())
