"""Run every benchmark in turn (what `make bench` calls); each prints its own figures and ratios.

    python bench/run_all.py              # default sizes, SQLite (2 min, + ~20 min of overload.py)
    python bench/run_all.py --quick      # smoke run (overload.py: ~5 min)
    python bench/run_all.py --postgres   # also ingest into PostgreSQL (127.0.0.1:5432/test)

Exit status: 0 when every benchmark ran and verified its results, else 1. Timings never fail.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke runs")
    parser.add_argument(
        "--postgres", action="store_true", help="also run ingest against PostgreSQL"
    )
    args = parser.parse_args(argv)
    extra = ["--quick"] if args.quick else []
    runs = [
        ("ingest_throughput (sqlite)", ["ingest_throughput.py", *extra]),
        ("ingest_throughput (sqlite, all 24x7)", ["ingest_throughput.py", "--24x7", *extra]),
        ("calendar_bench", ["calendar_bench.py", *extra]),
        ("armed_deadlines_rss", ["armed_deadlines_rss.py", *extra]),
        ("notify_bench", ["notify_bench.py", *extra]),
        ("gateway_bench (2 uvicorn workers)", ["gateway_bench.py", "--workers", "2", *extra]),
        ("overload (0.8-5x, then drain)", ["overload.py", *extra]),
    ]
    if args.postgres:
        runs.insert(
            1,
            (
                "ingest_throughput (postgres)",
                ["ingest_throughput.py", "--database", "postgres", *extra],
            ),
        )
    results = []
    for name, command in runs:
        start = time.perf_counter()
        code = subprocess.call(
            [sys.executable, str(HERE / command[0]), *command[1:]], cwd=HERE.parent
        )
        results.append((name, code, time.perf_counter() - start))
        print(flush=True)
    print("== summary")
    for name, code, took in results:
        print(f"   {name:<32} {'ok' if code == 0 else f'FAILED (exit {code})':<18} {took:6.1f} s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
