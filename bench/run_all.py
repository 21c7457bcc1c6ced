"""Every benchmark in bench/, on SQLite and on PostgreSQL, one after another, then one table of their figures and
goals (`make bench`).

Each script runs as its own process with `--json FILE` (and `--quick` unless `--full`), once on SQLite and once with
`--database-url` on PostgreSQL (a throwaway database each time, made and dropped by the script), its own output shown
as it goes; the table at the end lists each figure under the command that produced it, so any line can be re-run
alone. While a PostgreSQL run goes, /tmp/portal-pg.lock is held (flock), as the test suite's PostgreSQL runs hold it.

    .venv/bin/python bench/run_all.py [--full] [--only tokens load] [--databases sqlite postgresql]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres] [--strict]
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# In the order they run: the quick ones first, so a broken set-up shows early.
BENCHMARKS = ("tenant_list", "onboarding", "tokens", "load", "login_flood")
DATABASES = ("sqlite", "postgresql")
PG_URL = os.environ.get("PORTAL_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_LOCK = "/tmp/portal-pg.lock"  # the test suite's PostgreSQL runs take it too (docs: flock /tmp/portal-pg.lock)


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run_one(name: str, database: str, args: argparse.Namespace,
            folder: Path) -> tuple[list[str], int, dict | None, float]:
    out = folder / f"{name}-{database}.json"
    command = [sys.executable, str(BENCH / f"{name}.py")]
    if not args.full:
        command.append("--quick")
    if database == "postgresql":
        command += ["--database-url", args.database_url]
    print(f"\n=== {name} on {database}: {' '.join(shlex.quote(a) for a in [shown(Path(command[1])), *command[2:]])}",
          flush=True)
    began = time.monotonic()
    with open(PG_LOCK, "a") as lock:  # noqa: SIM117 - the lock is held only around PostgreSQL runs
        if database == "postgresql":
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            done = subprocess.run([*command, "--json", str(out)], cwd=ROOT)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    elapsed = time.monotonic() - began
    result = json.loads(out.read_text()) if out.exists() else None
    return command, done.returncode, result, elapsed


def table(rows: list[tuple[str, list[str], int, dict | None, float]]) -> tuple[list[str], bool]:
    """The summary lines, and whether every goal was met by every benchmark."""
    width = max([len(f["name"]) for *_, r, _ in rows if r for f in r["figures"]] + [40]) + 2
    header = f"{'figure':<{width}} | {'value':>9} | {'goal':<16} | result"
    lines = [header, "-" * len(header)]
    all_met = True
    for name, command, code, result, elapsed in rows:
        shown_command = " ".join(shlex.quote(a) for a in [shown(Path(command[0])), shown(Path(command[1])),
                                                          *command[2:]])
        lines.append(f"$ {shown_command}    ({name}, {elapsed:.0f} s)")
        if result is None:
            lines.append(f"  {'no figures: the run stopped (exit ' + str(code) + '); see its output above':<{width}}")
            all_met = False
            continue
        for figure in result["figures"]:
            value = f"{figure['value']:{figure.get('fmt', '.3f')}}{figure.get('unit', '')}"
            goal = figure["goal"] or "(none)"
            verdict = "-" if not figure["goal"] else ("met" if figure["met"] else "MISSED")
            if figure["goal"] and not figure["met"]:
                all_met = False
            lines.append(f"  {figure['name']:<{width - 2}} | {value:>9} | {goal:<16} | {verdict}")
    return lines, all_met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="each benchmark at its full length (default: --quick)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    parser.add_argument("--databases", nargs="+", choices=DATABASES, default=list(DATABASES),
                        help="run every benchmark on these (default: both)")
    parser.add_argument("--database-url", default=PG_URL, help="the PostgreSQL server the PostgreSQL runs make their "
                                                               f"throwaway databases on (default: {PG_URL}, or "
                                                               "PORTAL_BENCH_PG_URL)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed or a benchmark stopped")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    chosen = [name for name in BENCHMARKS if not args.only or name in args.only]
    rows = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="portal-bench-all-") as folder:
        for name in chosen:
            for database in args.databases:
                command, code, result, elapsed = run_one(name, database, args, Path(folder))
                rows.append((f"{name}, {database}", command, code, result, elapsed))
    lines, all_met = table(rows)
    print(f"\n=== bench/ summary ({time.monotonic() - began:.0f} s; ratios from one machine, same run per line; "
          f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; bench/README.md says how to read "
          "them)\n")
    print("\n".join(lines))
    return 1 if args.strict and not all_met else 0


if __name__ == "__main__":
    sys.exit(main())
