"""Tenant list throughput at 100 and at 100,000 tenants, each as a ratio to a bare Flask page.

One run: a fresh database (SQLite in a temporary folder, or a throwaway PostgreSQL database), migrated, with an
administrator and 100 demo tenants; gunicorn on 127.0.0.1 serving the portal and a bare Flask page (bench/bare_app.py);
signed-in clients hammer /tenants/ and then /bare/ for a fixed time each; then the database is filled up to 100,000
tenants and both are measured again. Everything is local, bounded in time, and cleaned up at the end.

    .venv/bin/python bench/tenant_list.py [--quick] [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Goals (issue 3): list ÷ bare >= 0.35, and the ratio at 100,000 tenants within 10% of the ratio at 100.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

from _common import (
    Client,
    Figure,
    Measurement,
    Stage,
    add_common_options,
    flask,
    hammer,
    main_with_limits,
    step,
    write_json,
)

GOAL_RATIO = 0.35
GOAL_DRIFT = 0.10


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


# --- the run ------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, nargs="+", default=[100, 100_000], metavar="N",
                        help="tenant counts to measure at, ascending (default: 100 100000)")
    parser.add_argument("--list-path", default="/tenants/", help="the page measured against the bare one "
                                                                  "(default: /tenants/; e.g. /tenants/?q=demo-05)")
    parser.add_argument("--duration", type=float, help="seconds per measurement (default: 10; --quick: 6)")
    parser.add_argument("--warmup", type=float, help="seconds of unmeasured load first (default: 2; --quick: 1)")
    parser.add_argument("--rounds", type=int, help="alternating list/bare rounds the duration is split "
                                                   "into (default: 5; --quick: 3)")
    parser.add_argument("--quick", action="store_true", help="shorter measurements, for make bench "
                                                             "(--duration 6 --warmup 1 --rounds 3)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent signed-in clients (default: 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default: 2)")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class (default: gthread)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker (default: 4)")
    add_common_options(parser, time_limit=900)
    args = parser.parse_args(argv)
    preset = (6.0, 1.0, 3) if args.quick else (10.0, 2.0, 5)
    for name, value in zip(("duration", "warmup", "rounds"), preset, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.tenants != sorted(args.tenants) or args.tenants[0] < 1:
        parser.error("--tenants must be positive and ascending")
    if args.rounds < 1 or args.duration <= 0 or args.clients < 1:
        parser.error("--rounds, --duration and --clients must be positive")
    return args


def run(args: argparse.Namespace) -> int:
    clients: list[Client] = []
    with Stage(args.database_url, args.keep) as stage:
        try:
            results: list[tuple[int, Measurement, Measurement]] = []
            seeded = 0
            for count in args.tenants:
                step(f"seeding demo tenants up to {count:,}")
                began = time.monotonic()
                flask(stage.env, "seed-demo", "--tenants", str(count - seeded))
                step(f"  {count - seeded:,} tenants in {time.monotonic() - began:.1f} s")
                seeded = count
                if stage.server is None:
                    port = stage.start(workers=args.workers, worker_class=args.worker_class, threads=args.threads)
                    step(f"signing in {args.clients} clients")
                    clients = [Client(port) for _ in range(args.clients)]
                    for client in clients:
                        client.sign_in(stage.password, args.list_path)
                step(f"measuring at {count:,} tenants: warm-up {args.warmup:g} s, then {args.duration:g} s per "
                     f"page in {args.rounds} alternating rounds")
                results.append((count, *measure(clients, args)))
            report(args, stage, results)
            figures = goal_figures(results)
            write_json(args.json, "tenant_list", figures, server=stage.server_command, database=stage.database,
                       rows=[{"tenants": count, "list_rate": listing.rate, "bare_rate": bare.rate,
                              "errors": listing.errors + bare.errors,
                              "client_cpu": max(listing.cpu_share, bare.cpu_share)}
                             for count, listing, bare in results])
            return 1 if args.strict and not all(f.met for f in figures) else 0
        finally:
            for client in clients:
                client.close()


def ratio(listing: Measurement, bare: Measurement) -> float:
    return listing.rate / bare.rate if bare.rate else 0.0


def goal_figures(results: list[tuple[int, Measurement, Measurement]]) -> list[Figure]:
    """Each goal as a figure; a run with errors meets none (it measured something other than the page)."""
    clean = sum(m.errors for _, listing, bare in results for m in (listing, bare)) == 0
    figures = []
    for count, listing, bare in results:
        r = ratio(listing, bare)
        figures.append(Figure(f"list ÷ bare at {count:,} tenants", r, f">= {GOAL_RATIO}",
                              clean and r >= GOAL_RATIO))
    first, last = ratio(results[0][1], results[0][2]), ratio(results[-1][1], results[-1][2])
    if len(results) > 1 and first:
        drift = last / first
        figures.append(Figure(f"ratio at {results[-1][0]:,} ÷ ratio at {results[0][0]:,}", drift,
                              f"within {GOAL_DRIFT:.0%} of 1", clean and abs(drift - 1) <= GOAL_DRIFT))
    return figures


def report(args: argparse.Namespace, stage: Stage, results: list[tuple[int, Measurement, Measurement]]) -> None:
    print()
    print("command:  " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print("server:   " + stage.server_command)
    print(f"pages:    {args.list_path} against /bare/")
    print(f"database: {stage.database}; {args.clients} clients, "
          f"{args.duration:g} s per page in {args.rounds} alternating rounds; {os.cpu_count()} CPUs shared by "
          "server and client")
    print()
    header = (f"{'tenants':>9} | {'list req/s':>10} | {'bare req/s':>10} | {'list÷bare':>9} | {'errors':>6} | "
              f"{'list p50/p95 ms':>15} | {'bare p50/p95 ms':>15} | {'client CPU':>10}")
    print(header)
    print("-" * len(header))
    for count, listing, bare in results:
        errors = listing.errors + bare.errors
        cpu = max(listing.cpu_share, bare.cpu_share) * 100
        print(f"{count:>9,} | {listing.rate:>10.1f} | {bare.rate:>10.1f} | {ratio(listing, bare):>9.3f} | "
              f"{errors:>6} | {listing.percentile(50) * 1000:>6.1f}/{listing.percentile(95) * 1000:<8.1f} | "
              f"{bare.percentile(50) * 1000:>6.1f}/{bare.percentile(95) * 1000:<8.1f} | {cpu:>9.0f}%")
    print()
    first, last = ratio(results[0][1], results[0][2]), ratio(results[-1][1], results[-1][2])
    for count, listing, bare in results:
        r = ratio(listing, bare)
        verdict = "met" if r >= GOAL_RATIO else "MISSED"
        print(f"list ÷ bare at {count:,} tenants: {r:.3f} (goal >= {GOAL_RATIO}): {verdict}")
    if len(results) > 1 and first:
        drift = last / first
        print(f"ratio at {results[-1][0]:,} ÷ ratio at {results[0][0]:,}: {drift:.3f} (goal within "
              f"{GOAL_DRIFT:.0%} of 1): {'met' if abs(drift - 1) <= GOAL_DRIFT else 'MISSED'}")
    print("client CPU: the share of one core the measuring process used; near 100% means the client, not the "
          "server, set the pace.")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return main_with_limits(args, run)


if __name__ == "__main__":
    sys.exit(main())
