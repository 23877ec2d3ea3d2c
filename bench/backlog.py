"""Benchmark: a holiday backlog and an idle pass, against the sandbox with real limits.

    python bench/backlog.py [--requests 300] [--latency-ms 50] [--seed 7]

Everything runs on 127.0.0.1: the sandbox in this process (per-call latency, DingTalk's
20 calls/s per API, XBB's 3 writes/s and 1,000 calls/min enforced), ``fzr sync`` as a
real subprocess with a fresh state file. Prints wall time, calls per endpoint, metered
DingTalk calls, peak memory, and the lower bound implied by the rate limits and the
minimum number of calls, with the ratio wall / bound.

The bound: a pass has four stages that depend on each other per request (list → read
the instance → CRM lookup/write/read-back → comment). For each stage, the minimum
number of calls divided by the service's rate (or that many sequential round trips,
whichever is longer); the stages are summed because fzr runs them one after another.
The perfectly overlapped bound (the slowest single API alone) is printed beside it.
"""

from __future__ import annotations

import argparse
import compileall
import math
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fzrcli.sandbox import Sandbox  # noqa: E402

DINGTALK_QPS = 20.0
XBB_WRITES_PER_S = 3.0
XBB_CALLS_PER_S = 1000 / 60
LIST_PAGE = 20
CRM_PAGE = 100
OWNERS = [f"01{n:014d}" for n in range(1, 21)]
CLAIMERS = [f"02{n:014d}" for n in range(1, 31)]
BOT = "fzr-bench-bot"


def build_scenario(requests: int, latency_ms: int, seed: int) -> tuple[dict, dict]:
    rng = random.Random(seed)
    users = {uid: f"员工{i}" for i, uid in enumerate(OWNERS + CLAIMERS)}
    users[BOT] = "fzr"
    customers, instances, groups, names = [], [], set(), 0
    for n in range(requests):
        count = rng.randint(1, 8)
        owner = rng.choice(OWNERS)
        claimer = rng.choice(CLAIMERS)
        chosen = []
        for _ in range(count):
            names += 1
            name = f"示例客户{names:05d}有限公司"
            customers.append(
                {"dataId": 200000 + names, "name": name, "owners": [claimer]}
            )
            chosen.append(name)
        groups.add(owner)
        instances.append(
            {
                "id": f"bench-{n:04d}",
                "created": f"-{1200 - n * 3}m",
                "finished": f"-{1199 - n * 3}m",
                "status": "COMPLETED",
                "result": "agree",
                "originator": owner,
                "customers": "\n".join(chosen),
                "new_owners": [owner],
                "current_owners": [claimer],
            }
        )
    scenario = {
        "users": users,
        "dingtalk": {"comment_user_id": BOT, "instances": instances},
        "xbb": {"customers": customers},
        "limits": {"latency_ms": latency_ms, "enforce_rate_limits": True},
    }
    minimum = {"requests": requests, "names": names, "write_groups": len(groups)}
    return scenario, minimum


def bench_env(sandbox, folder: Path) -> dict:
    """The environment of an fzr run against ``sandbox`` with a state file in
    ``folder``; bytecode is cached as after a normal install, not compiled each run."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FZR_")},
        **sandbox.env(),
        "FZR_DB": str(folder / "bench.sqlite3"),
        "FZR_PASS_TIMEOUT": "900",
        "XDG_CONFIG_HOME": str(folder),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(str(ROOT / "fzrcli"), quiet=1)
    return env


def lower_bound(minimum: dict, latency: float) -> tuple[float, float, dict]:
    def stage(calls: int, rate: float, sequential: int = 1) -> float:
        return max(calls / rate, sequential * latency)

    n = minimum["requests"]
    pages = math.ceil(n / LIST_PAGE) + 1  # the sweep's pages and one inventory call
    lookups = math.ceil(minimum["names"] / CRM_PAGE) + 1  # names, plus the user check
    writes = minimum["write_groups"]
    crm_calls = lookups + 2 * writes  # every write is read back
    stages = {
        "list": stage(pages, DINGTALK_QPS, pages),  # pages follow each other
        "instances": stage(n, DINGTALK_QPS),
        "crm": max(stage(writes, XBB_WRITES_PER_S), stage(crm_calls, XBB_CALLS_PER_S)),
        "comments": stage(n, DINGTALK_QPS),
    }
    overlapped = max(stages.values())
    return sum(stages.values()), overlapped, stages


@dataclass
class Timed:
    wall: float
    peak_mb: float
    code: int
    stdout: str
    stderr: str


def run_fzr(env: dict, *args: str) -> Timed:
    """Run fzr as cron would; wall time and this process's own peak RSS. With
    ``--variant MEANS`` first, through bench/variant.py with that means off."""
    command = [sys.executable, "-m", "fzrcli", *args]
    if args[:1] == ("--variant",):
        command = [
            sys.executable,
            str(ROOT / "bench" / "variant.py"),
            args[1],
            "--",
            "sync",
        ]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Timed(
            wall, usage.ru_maxrss / 1024, child.returncode, out.read(), err.read()
        )


def pad_history(db_path: Path, requests: int, items_each: int = 4) -> None:
    """Add finished requests and items so the store looks like years of use."""
    db = sqlite3.connect(db_path)
    now = "2026-01-01T00:00:00Z"
    with db:
        db.executemany(
            "INSERT INTO requests (instance_id, state, first_seen_at, updated_at, "
            "decided_at) VALUES (?, 'done', ?, ?, ?)",
            ((f"old-{n}", now, now, now) for n in range(requests)),
        )
        db.executemany(
            "INSERT INTO items (instance_id, customer, new_owner_id, status, "
            "created_at, updated_at, finished_at) "
            "VALUES (?, ?, 'u', 'assigned', ?, ?, ?)",
            (
                (f"old-{n}", f"客户{n}-{k}", now, now, now)
                for n in range(requests)
                for k in range(items_each)
            ),
        )
    db.close()


def import_baseline(env: dict, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import typer, requests, rich, tenacity"],
            check=True,
            env=env,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--history",
        type=int,
        default=200_000,
        help="finished requests added before the last idle passes",
    )
    options = parser.parse_args()

    scenario, minimum = build_scenario(
        options.requests, options.latency_ms, options.seed
    )
    folder = Path(tempfile.mkdtemp(prefix="fzr-bench-"))
    with Sandbox(scenario) as sandbox:
        env = bench_env(sandbox, folder)
        print(
            f"backlog: {minimum['requests']} approved requests, {minimum['names']} "
            f"customers, {minimum['write_groups']} new owners; latency "
            f"{options.latency_ms} ms; limits enforced"
        )
        backlog = run_fzr(env, "sync")
        report_backlog(sandbox, backlog, minimum, options.latency_ms)
        baseline = import_baseline(env)
        report_idle(sandbox, env, baseline, "after the backlog")
        pad_history(folder / "bench.sqlite3", options.history)
        report_idle(
            sandbox,
            env,
            baseline,
            f"with {options.history:,} more finished requests in the store",
        )
    return 0


def report_idle(sandbox, env: dict, baseline: float, label: str) -> None:
    sandbox.reset_calls()
    runs = [run_fzr(env, "sync") for _ in range(5)]
    wall = statistics.median(r.wall for r in runs)
    print(f"\nidle pass, {label} (median of 5)")
    print(
        f"  metered DingTalk calls per pass: "
        f"{sandbox.count(service='dingtalk', metered=True) / 5:g}; output: "
        f"{runs[-1].stdout!r} / {runs[-1].stderr!r}"
    )
    print(
        f'  wall {wall:.3f} s; `python -c "import typer, requests, rich, tenacity"` '
        f"{baseline:.3f} s; ratio {wall / baseline:.2f} (target ≤ 1.5); peak memory "
        f"{max(r.peak_mb for r in runs):.0f} MB"
    )


def report_backlog(sandbox, done: Timed, minimum, latency_ms) -> None:
    wall, peak_mb = done.wall, done.peak_mb
    if done.code != 0:
        print(f"fzr sync exited {done.code}: {done.stderr.strip()[:500]}")
    print(f"  fzr: {done.stdout.strip()}")
    by_api = Counter(f"{c.service}.{c.api}" for c in sandbox.calls)
    throttled = Counter(
        f"{c.service}.{c.api}"
        for c in sandbox.calls
        if c.status in (403, 429) or getattr(c, "throttled", False)
    )
    print("\nbacklog pass")
    print(f"  wall time: {wall:.2f} s; peak memory (RSS): {peak_mb:.0f} MB")
    print(
        "  calls per endpoint: "
        + ", ".join(f"{k} {v}" for k, v in sorted(by_api.items()))
    )
    print(
        f"  metered DingTalk calls: {sandbox.count(service='dingtalk', metered=True)}"
    )
    print(f"  throttled answers (all retried): {sum(throttled.values())}")
    bound, overlapped, stages = lower_bound(minimum, latency_ms / 1000)
    print(
        "  lower bound by stage: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items())
    )
    print(
        f"  lower bound (stages in sequence): {bound:.2f} s; wall / bound = "
        f"{wall / bound:.2f} (target ≤ 1.25)"
    )
    print(
        f"  lower bound (perfect overlap): {overlapped:.2f} s; wall / bound = "
        f"{wall / overlapped:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
