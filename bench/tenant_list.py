"""The tenant list and a signed-in empty page at 100 and at 100,000 tenants, each against a bare Flask page: the
server's CPU time per request (the goals), throughput and latency.

One run: a fresh database (SQLite in a temporary folder, or a throwaway PostgreSQL database), migrated, with an
administrator and 100 demo tenants; gunicorn on 127.0.0.1 serving the portal and a bare Flask page (bench/bare_app.py);
one browser session signed in through the form, whose cookies wrk (bench/_wrk.py) then sends on every request; the
pages measured in alternating rounds; then the database is filled up to 100,000 tenants and they are measured again.
Everything is local, bounded in time, and cleaned up at the end.

    .venv/bin/python bench/tenant_list.py [--quick] [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Goals (issue 17), of CPU per request: bare ÷ list (50 rows, signed in) >= 0.25 at each count, bare ÷ signed-in
empty page >= 0.5; and (issue 3) the list's ratio at 100,000 tenants within 10% of the one at 100. The throughput
ratio list ÷ bare of earlier rounds (goal then 0.35) is printed beside them for comparison.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time

from _common import (
    Client,
    Figure,
    Stage,
    add_common_options,
    flask,
    load_average,
    machine_line,
    main_with_limits,
    step,
    write_json,
)
from _wrk import (
    TABLE_HEADER,
    TABLE_NOTE,
    Target,
    Totals,
    cookie_header,
    cpu_ratio,
    measure,
    need_wrk,
    rate_ratio,
    table_row,
)

GOAL_LIST = 0.25
GOAL_EMPTY = 0.5
GOAL_DRIFT = 0.10
EMPTY_PATH = "/bench/empty"  # bench/bare_app.py: an empty answer to any signed-in role


def measure_rounds(stage: Stage, targets: list[Target], args: argparse.Namespace) -> dict[str, Totals]:
    """The targets in alternating rounds, so a change in background load weighs on all alike."""
    for target in targets:
        measure(stage, target, 1, args.clients, args.pin_client)  # warm-up
    totals = {t.name: Totals() for t in targets}
    per_round = max(1, round(args.duration / args.rounds))
    for _ in range(args.rounds):
        for target in targets:
            totals[target.name].samples.append(measure(stage, target, per_round, args.clients, args.pin_client))
    return totals


# --- the run ------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, nargs="+", default=[100, 100_000], metavar="N",
                        help="tenant counts to measure at, ascending (default: 100 100000)")
    parser.add_argument("--list-path", default="/tenants/", help="the page measured against the bare one "
                                                                  "(default: /tenants/; e.g. /tenants/?q=demo-05)")
    parser.add_argument("--duration", type=float, help="seconds per page per tenant count (default: 10; --quick: 6)")
    parser.add_argument("--rounds", type=int, help="alternating rounds the duration is split into "
                                                   "(default: 5; --quick: 3)")
    parser.add_argument("--quick", action="store_true", help="shorter measurements, for make bench "
                                                             "(--duration 6 --rounds 3)")
    parser.add_argument("--clients", type=int, default=8, help="wrk connections (default: 8)")
    parser.add_argument("--pin-client", metavar="CPUS", help="run wrk under taskset -c CPUS (the ratios do not "
                                                             "depend on it; wall-clock rates may)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default: 2)")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class (default: gthread)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker (default: 4)")
    add_common_options(parser, time_limit=900)
    args = parser.parse_args(argv)
    preset = (6.0, 3) if args.quick else (10.0, 5)
    for name, value in zip(("duration", "rounds"), preset, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.tenants != sorted(args.tenants) or args.tenants[0] < 1:
        parser.error("--tenants must be positive and ascending")
    if args.rounds < 1 or args.duration <= 0 or args.clients < 1:
        parser.error("--rounds, --duration and --clients must be positive")
    return args


def signed_in_targets(stage: Stage, args: argparse.Namespace) -> list[Target]:
    """Sign in once through the form, like a browser; wrk then sends that session's cookies."""
    client = Client(stage.port)
    try:
        client.sign_in(stage.password, args.list_path)
        cookies = cookie_header(client.cookies)
    finally:
        client.close()
    return [Target("list", "GET", args.list_path, cookies), Target("signed-in empty", "GET", EMPTY_PATH, cookies),
            Target("bare", "GET", "/bare/")]


def run(args: argparse.Namespace) -> int:
    need_wrk()
    args.load_at_start = load_average()
    with Stage(args.database_url, args.keep) as stage:
        results: list[tuple[int, dict[str, Totals]]] = []
        targets: list[Target] = []
        seeded = 0
        for n, count in enumerate(args.tenants):
            step(f"seeding demo tenants up to {count:,}")
            began = time.monotonic()
            flask(stage.env, "seed-demo", "--tenants", str(count - seeded))
            step(f"  {count - seeded:,} tenants in {time.monotonic() - began:.1f} s")
            seeded = count
            if stage.server is None:
                stage.start(workers=args.workers, worker_class=args.worker_class, threads=args.threads)
                targets = signed_in_targets(stage, args)
            chosen = targets if n == 0 else [t for t in targets if t.name != "signed-in empty"]
            step(f"measuring at {count:,} tenants: {', '.join(t.name for t in chosen)}, {args.duration:g} s each "
                 f"in {args.rounds} alternating rounds (wrk -c{args.clients})")
            results.append((count, measure_rounds(stage, chosen, args)))
        figures = goal_figures(results)
        report(args, stage, results, figures)
        write_json(args.json, "tenant_list", figures, server=stage.server_command, database=stage.database,
                   load_average=[args.load_at_start, load_average()],
                   rows=[{"tenants": count, **{name: {"rate": t.rate, "cpu_ms_per_request": t.cpu_per_request * 1000,
                                                       "errors": t.errors} for name, t in totals.items()}}
                         for count, totals in results])
        return 1 if args.strict and not all(f.met for f in figures if f.goal) else 0


def goal_figures(results: list[tuple[int, dict[str, Totals]]]) -> list[Figure]:
    """Each goal as a figure; a run with errors meets none (it measured something other than the page)."""
    clean = sum(t.errors for _, totals in results for t in totals.values()) == 0
    figures = []
    ratios = []
    for count, totals in results:
        r = cpu_ratio(totals["bare"], totals["list"])
        ratios.append(r)
        figures.append(Figure(f"list CPU/req: bare ÷ list at {count:,} tenants", r, f">= {GOAL_LIST}",
                              clean and r >= GOAL_LIST))
        if "signed-in empty" in totals:
            e = cpu_ratio(totals["bare"], totals["signed-in empty"])
            figures.append(Figure("signed-in empty page CPU/req: bare ÷ empty", e, f">= {GOAL_EMPTY}",
                                  clean and e >= GOAL_EMPTY))
    if len(results) > 1 and ratios[0]:
        drift = ratios[-1] / ratios[0]
        figures.append(Figure(f"list CPU ratio at {results[-1][0]:,} ÷ at {results[0][0]:,}", drift,
                              f"within {GOAL_DRIFT:.0%} of 1", clean and abs(drift - 1) <= GOAL_DRIFT))
    for count, totals in results:
        figures.append(Figure(f"(earlier figure) list ÷ bare req/s at {count:,}",
                              rate_ratio(totals["bare"], totals["list"]), "", None))
    return figures


def report(args: argparse.Namespace, stage: Stage, results: list[tuple[int, dict[str, Totals]]],
           figures: list[Figure]) -> None:
    print()
    print("command:  " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print("server:   " + stage.server_command)
    print(f"client:   wrk -t1 -c{args.clients}, one signed-in session's cookies" +
          (f", pinned to CPUs {args.pin_client}" if args.pin_client else ""))
    print(machine_line(args.load_at_start))
    print(f"database: {stage.database}; {args.duration:g} s per page in {args.rounds} alternating rounds")
    for count, totals in results:
        print(f"\n{count:,} tenants")
        print(TABLE_HEADER)
        print("-" * len(TABLE_HEADER))
        for name, t in totals.items():
            print(table_row(name, t))
    print()
    for figure in figures:
        print(figure.line())
    print(TABLE_NOTE)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return main_with_limits(args, run)


if __name__ == "__main__":
    sys.exit(main())
