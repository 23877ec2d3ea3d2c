"""Time ``fzr report`` over a large state file: wall time and peak memory.

Fills a temporary state file with requests, items and a month of runs (one
transaction, ``executemany``), then runs ``fzr report --date yesterday`` in a
subprocess, as cron would, and prints its wall time and peak RSS. Yesterday is a whole
day whatever the hour the benchmark runs. Not part of the test suite::

    .venv/bin/python bench/report_bench.py                  # 1,000,000 items, a year
    .venv/bin/python bench/report_bench.py --all-in-day     # all of them in the report
    .venv/bin/python bench/report_bench.py --format table --keep /tmp/big.sqlite3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from fzrcli.store import Store
from fzrcli.timeutil import DAY_MS, now_ms, start_of_day_ms, utc_iso

ZONE = "Asia/Shanghai"
ITEMS_PER_REQUEST = 4
OUTCOMES = [  # (status, weight) of a mature store
    ("assigned", 80),
    ("already_owner", 10),
    ("not_found", 4),
    ("ambiguous", 2),
    ("unverified", 1),
    ("failed", 1),
    ("pending", 2),
]
RUN_EVERY_MS = 300_000  # a pass every five minutes


def main() -> None:
    args = options()
    with tempfile.TemporaryDirectory(prefix="fzr-bench-") as scratch:
        db = Path(args.keep) if args.keep else Path(scratch) / "fzr.sqlite3"
        if db.exists():
            sys.exit(f"{db} exists; the benchmark fills a new state file")
        started = time.perf_counter()
        fill(db, args.items, finished_between(args))
        print(
            f"filled {db} with {args.items:,} items in "
            f"{time.perf_counter() - started:.1f} s "
            f"({db.stat().st_size / 1e6:.0f} MB)"
        )
        for _ in range(args.repeat):
            seconds, peak_mb, size = run_report(db, args.format, scratch)
            print(
                f"fzr report --date yesterday --format {args.format}: "
                f"{seconds:.2f} s wall, "
                f"peak RSS {peak_mb:.0f} MB, {size:,} bytes of output"
            )


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument(
        "--days",
        type=float,
        default=365,
        help="items finish evenly over this many days up to now",
    )
    parser.add_argument(
        "--all-in-day",
        action="store_true",
        help="every item finishes yesterday: the report covers all",
    )
    parser.add_argument("--format", default="json")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--keep", help="write the state file here (a new path) and keep it"
    )
    return parser.parse_args()


def finished_between(args: argparse.Namespace) -> tuple[int, int]:
    end = now_ms()
    if args.all_in_day:
        zone = ZoneInfo(ZONE)
        today = datetime.now(zone).date()
        yesterday = today - timedelta(days=1)
        return start_of_day_ms(yesterday, zone), start_of_day_ms(today, zone)
    return end - int(args.days * DAY_MS), end


def fill(db: Path, items: int, span: tuple[int, int]) -> None:
    store = Store(db)
    rng = random.Random(7)
    statuses, weights = zip(*OUTCOMES)
    requests = -(-items // ITEMS_PER_REQUEST)
    with store.transaction() as sql:
        sql.executemany(
            REQUEST_SQL, (request_row(n, rng, span, requests) for n in range(requests))
        )
        sql.executemany(
            ITEM_SQL,
            (item_row(n, rng, span, items, statuses, weights) for n in range(items)),
        )
        sql.executemany(RUN_SQL, run_rows(span[1]))
    store.close()


REQUEST_SQL = (
    "INSERT INTO requests (instance_id, state, business_id, originator_id, status, "
    "result, created_ms, finished_ms, first_seen_at, fetched_at, decided_at, "
    "updated_at) VALUES (?, ?, ?, ?, 'COMPLETED', 'agree', ?, ?, ?, ?, ?, ?)"
)
ITEM_SQL = (
    "INSERT INTO items (instance_id, customer, new_owner_id, status, reason, "
    "suggestion, attempts, created_at, updated_at, finished_at) "
    "VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)"
)
RUN_SQL = (
    "INSERT INTO runs (command, started_at, ended_at, exit_status, dingtalk_calls, "
    "dingtalk_metered, xbb_calls, xbb_writes, counts, message) "
    "VALUES ('sync', ?, ?, 0, ?, ?, ?, ?, '{}', '')"
)


def request_row(
    n: int, rng: random.Random, span: tuple[int, int], requests: int
) -> tuple:
    moment = moment_of(n / requests, rng, span)
    at = utc_iso(moment)
    state = "invalid" if n % 500 == 0 else "done"
    return (
        f"inst-{n:08d}",
        state,
        f"2024{n:017d}",
        f"user{n % 300:04d}",
        moment - 3_600_000,
        moment,
        at,
        at,
        at,
        at,
    )


def item_row(
    n: int, rng: random.Random, span: tuple[int, int], items: int, statuses, weights
) -> tuple:
    status = rng.choices(statuses, weights)[0]
    request = n // ITEMS_PER_REQUEST
    at = utc_iso(moment_of(n / items, rng, span))
    suggestion = None
    if status == "not_found":
        suggestion = json.dumps([f"客户{n + 1}有限公司"], ensure_ascii=False)
    elif status == "ambiguous":
        suggestion = json.dumps(
            [{"dataId": n, "name": f"客户{n}"}, {"dataId": n + 1, "name": f"客户{n}"}],
            ensure_ascii=False,
        )
    finished = None if status == "pending" else at
    return (
        f"inst-{request:08d}",
        f"客户{n}",
        f"owner{n % 150:03d}",
        status,
        f"outcome {status}",
        suggestion,
        at,
        at,
        finished,
    )


def moment_of(share: float, rng: random.Random, span: tuple[int, int]) -> int:
    """Rows are appended as time passes, as in a real store: the n-th row of the
    table is about the n-th in time, give or take a pass or two."""
    start, end = span
    moment = start + int(share * (end - start)) + rng.randint(-600_000, 600_000)
    return min(max(moment, start), end - 1)


def run_rows(end: int):
    month_ago = end - 31 * DAY_MS
    for started in range(month_ago, end, RUN_EVERY_MS):
        yield (utc_iso(started), utc_iso(started + 20_000), 3, 2, 5, 1)


def run_report(db: Path, fmt: str, scratch: str) -> tuple[float, float, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FZR_")}
    env.update(
        {
            "FZR_DB": str(db),
            "FZR_TIMEZONE": ZONE,
            "XDG_CONFIG_HOME": str(Path(scratch) / "config"),
        }
    )
    report = Path(scratch) / "report.out"
    started = time.perf_counter()
    # The output goes to a file, not into this process: a child's peak RSS starts at
    # what its parent held when it forked.
    with open(report, "wb") as out:
        command = [
            sys.executable,
            "-m",
            "fzrcli",
            "report",
            "--date",
            "yesterday",
            "--format",
            fmt,
        ]
        done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"fzr report failed ({done.returncode}): {done.stderr.decode()}")
    # ru_maxrss is the largest child so far, in KiB on Linux.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, peak / 1024, report.stat().st_size


if __name__ == "__main__":
    main()
