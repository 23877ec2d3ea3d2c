"""Benchmark each performance means by switching it off, one at a time.

    python bench/means.py [--requests 60] [--latency-ms 50]

A smaller backlog than bench/backlog.py (switching off write grouping makes a pass
write one customer at a time at XBB's 3 writes/s), the same sandbox limits. For each
variant: backlog wall time and calls, then the idle pass (median of 5).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from backlog import bench_env, build_scenario, run_fzr  # noqa: E402

from fzrcli.sandbox import Sandbox  # noqa: E402

VARIANTS = ["all", "serial", "unbatched-lookups", "ungrouped-writes", "eager-imports"]


def run_variant(means: str, requests: int, latency_ms: int) -> str:
    scenario, _ = build_scenario(requests, latency_ms, seed=7)
    folder = Path(tempfile.mkdtemp(prefix=f"fzr-means-{means}-"))
    with Sandbox(scenario) as sandbox:
        env = bench_env(sandbox, folder)
        backlog = run_fzr_variant(env, means)
        calls = {
            api: sandbox.count(api=api)
            for api in (
                "instances.get",
                "comments.add",
                "customer.list",
                "customer.distribution",
            )
        }
        sandbox.reset_calls()
        idle = statistics.median(run_fzr_variant(env, means).wall for _ in range(5))
    done = "ok" if backlog.code == 0 else f"exit {backlog.code}"
    return (
        f"{means:18} backlog {backlog.wall:6.2f} s ({done}); idle {idle:.3f} s; "
        + ", ".join(f"{k} {v}" for k, v in calls.items())
    )


def run_fzr_variant(env: dict, means: str):
    return run_fzr(env, "--variant", means)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--latency-ms", type=int, default=50)
    options = parser.parse_args()
    print(
        f"{options.requests} approved requests, latency {options.latency_ms} ms, "
        "limits enforced; one means switched off per line"
    )
    for means in VARIANTS:
        print(run_variant(means, options.requests, options.latency_ms), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
