"""SIGKILL ``fzr sync`` anywhere and run it again until it finishes: the result is the
one a clean run gives, no write or comment happens twice, the SQLite file stays sound.

The campaign kills a real ``fzr sync`` process at three kinds of points:

- right after each database commit (``tests/killer.py`` wraps ``Store.transaction``
  in the killed process only);
- when the sandbox receives HTTP call N, before applying it;
- right after the sandbox applied call N, before fzr reads the answer.

N runs over every commit and every call a clean pass makes (68 points, about 30 s).
Kill points run a few at a time, each with its own sandbox and state file. By default
each point is killed once. ``FZR_CRASH_FULL=1`` adds every pair of commit points (the
first run killed at one, its rerun at the other; 676 pairs, several minutes)::

    FZR_CRASH_FULL=1 .venv/bin/python -m pytest tests/test_crash_safety.py -s
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from builders import ALICE, approved, running, scenario
from conftest import Fzr

from fzrcli.sandbox import Sandbox
from fzrcli.sandbox.wire import dropped

KILLER = Path(__file__).with_name("killer.py")
FULL = os.environ.get("FZR_CRASH_FULL") == "1"
WORKERS = 4
MAX_RECOVERY_RUNS = 5
SHANGHAI, BEIJING = "上海示例科技有限公司", "北京示范贸易有限公司"


def campaign_scenario() -> dict:
    """Every step of a pass in few calls: two writes, a repeat of one of them (two
    requests for the same owner), lookups that find nothing or too much, a refusal,
    an invalid form, a running request, and four comments."""
    return scenario(
        approved("i-1", f"{SHANGHAI}\n{BEIJING}"),
        approved("i-2", SHANGHAI, created="-100m"),
        approved("i-3", "无名公司\n深圳同名电子有限公司", created="-80m"),
        approved("i-4", SHANGHAI, result="refuse", created="-70m"),
        approved("i-5", None, created="-60m"),
        running("i-6", BEIJING),
    )


@dataclass(frozen=True)
class Kill:
    how: str  # "commit", "before-call" or "after-call"
    number: int

    def __str__(self) -> str:
        return f"{self.how} {self.number}"


class CallKiller:
    """Stands in for the sandbox's dispatch: SIGKILLs the fzr process at call N,
    either before the sandbox applies it or right after."""

    def __init__(self, sandbox: Sandbox, kill: Kill):
        self.sandbox, self.kill = sandbox, kill
        self.original = sandbox.dispatch
        self.calls = 0
        self.lock = threading.Lock()
        self.process: subprocess.Popen | None = None
        self.ready = threading.Event()
        sandbox.dispatch = self

    def __call__(self, request):
        with self.lock:
            self.calls += 1
            hit = self.calls == self.kill.number
        if hit and self.kill.how == "before-call":
            self._kill()
            return dropped()
        reply = self.original(request)
        if hit:
            self._kill()
        return reply

    def _kill(self) -> None:
        self.ready.wait(10)
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def remove(self) -> None:
        del self.sandbox.dispatch


def spawn(fzr, *argv: str) -> subprocess.Popen:
    """A real Python process with fzr's environment, like ``Fzr.process``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FZR_")}
    env.update(fzr.env)
    return subprocess.Popen(
        [sys.executable, *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_killed(fzr, kill: Kill) -> bool:
    """One ``fzr sync`` process meant to die at ``kill``; True if it did."""
    if kill.how == "commit":
        process = spawn(fzr, str(KILLER), str(kill.number), "sync")
    else:
        killer = CallKiller(fzr.sandbox, kill)
        killer.process = process = spawn(fzr, "-m", "fzrcli", "sync")
        killer.ready.set()
    try:
        process.communicate(timeout=60)
    finally:
        if kill.how != "commit":
            killer.remove()
    return process.returncode == -signal.SIGKILL


# -- what a finished state looks like ------------------------------------------------


def finished(fzr) -> bool:
    unfinished = fzr.query(
        "SELECT 1 FROM requests WHERE state IN ('seen', 'active') "
        "OR comment_state IN ('due', 'sending') UNION ALL "
        "SELECT 1 FROM items WHERE status IN ('pending', 'writing')"
    )
    return not unfinished


def recover(fzr) -> list[int]:
    """Run ``fzr sync`` until the work is finished; the exit codes of the runs."""
    codes = []
    while len(codes) < MAX_RECOVERY_RUNS:
        process = spawn(fzr, "-m", "fzrcli", "sync")
        process.communicate(timeout=60)
        codes.append(process.returncode)
        if process.returncode == 0 and finished(fzr):
            break
    return codes


def applied(sandbox) -> Counter:
    return Counter(
        (data_id, user)
        for d in sandbox.distributions
        for data_id in d["dataIdList"]
        for user in d["userIds"]
    )


def outcome(fzr) -> dict:
    """The end state, with "assigned" and "already owner" merged for requests that
    repeat one (customer, owner): which of them writes depends on the fetch order."""
    rows = fzr.query("SELECT instance_id, customer, new_owner_id, status FROM items")
    keys = Counter((r["customer"], r["new_owner_id"]) for r in rows)
    items = {}
    for r in rows:
        status = r["status"]
        if keys[(r["customer"], r["new_owner_id"])] > 1 and status in (
            "assigned",
            "already_owner",
        ):
            status = "owner"
        items[(r["instance_id"], r["customer"], r["new_owner_id"])] = status
    requests = {
        r["instance_id"]: (r["state"], r["comment_state"])
        for r in fzr.query("SELECT * FROM requests")
    }
    return {"items": items, "requests": requests}


def comment_counts(sandbox, instance_ids) -> dict[str, int]:
    return {i: len(sandbox.comments(i)) for i in instance_ids}


def problems_after(fzr, clean: dict) -> list[str]:
    """Every invariant that does not hold after the kill and the reruns."""
    sandbox, found = fzr.sandbox, []
    if outcome(fzr) != clean["outcome"]:
        found.append(f"outcome {outcome(fzr)} != clean {clean['outcome']}")
    writes = applied(sandbox)
    if any(n > 1 for n in writes.values()) or set(writes) != clean["writes"]:
        found.append(f"distributions {dict(writes)} != clean {clean['writes']}")
    assigned = Counter(
        (r["data_id"], r["new_owner_id"])
        for r in fzr.query(
            "SELECT data_id, new_owner_id FROM items WHERE status = 'assigned'"
        )
    )
    if assigned != writes:
        found.append(f"assigned items {dict(assigned)} != distributions {dict(writes)}")
    comments = comment_counts(sandbox, clean["comments"])
    if comments != clean["comments"]:
        found.append(f"comments {comments} != clean {clean['comments']}")
    check = fzr.query("PRAGMA integrity_check")[0][0]
    if check != "ok":
        found.append(f"integrity_check: {check}")
    return found


# -- the campaign --------------------------------------------------------------------


class Campaign:
    """A clean run to compare with, then kill points tried a few at a time."""

    def __init__(self, root: Path):
        self.root = root
        self.lock = threading.Lock()
        self.homes = 0
        self.tried: Counter = Counter()
        self.died: Counter = Counter()
        self.seconds = 0.0
        self.clean = self._clean_run()

    def fresh(self):
        with self.lock:
            self.homes += 1
            home = self.root / f"home{self.homes}"
        sandbox = Sandbox(campaign_scenario()).start()
        return sandbox, Fzr(sandbox, home)

    def _clean_run(self) -> dict:
        sandbox, fzr = self.fresh()
        try:
            process = spawn(fzr, str(KILLER), "0", "sync")
            _, stderr = process.communicate(timeout=60)
            assert process.returncode == 0, stderr
            assert finished(fzr), "a clean pass leaves work unfinished"
            assert set(applied(sandbox).values()) == {1}, sandbox.distributions
            ids = [r["instance_id"] for r in fzr.query("SELECT * FROM requests")]
            return {
                "outcome": outcome(fzr),
                "writes": set(applied(sandbox)),
                "comments": comment_counts(sandbox, ids),
                "commit": int(stderr.rsplit("killer: commits=", 1)[1]),
                "call": len(sandbox.calls),
            }
        finally:
            sandbox.stop()

    def points(self, how: str) -> list[Kill]:
        count = self.clean["commit" if how == "commit" else "call"]
        return [Kill(how, n) for n in range(1, count + 1)]

    def sweep(self, plans: list[tuple[Kill, ...]]) -> list[str]:
        """Try every plan (kills for successive runs, each on a fresh sandbox and state
        file), then rerun to the end; the invariants that failed."""
        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            found = [f for failures in pool.map(self._try, plans) for f in failures]
        self.seconds += time.monotonic() - began
        return found

    def _try(self, plan: tuple[Kill, ...]) -> list[str]:
        sandbox, fzr = self.fresh()
        try:
            died = [run_killed(fzr, kill) for kill in plan]
            kind = " then ".join(kill.how for kill in plan)
            with self.lock:
                self.tried[kind] += 1
                self.died[kind] += all(died)
            codes = recover(fzr)
            found = problems_after(fzr, self.clean)
            if codes[-1] != 0 or not finished(fzr):
                found.append(f"unfinished after {len(codes)} reruns (exits {codes})")
        finally:
            sandbox.stop()
        where = " then ".join(str(kill) for kill in plan)
        return [f"killed at {where}: {problem}" for problem in found]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    campaign = Campaign(tmp_path_factory.mktemp("campaign"))
    yield campaign
    print(
        f"\ncrash campaign: {sum(campaign.tried.values())} kill plans "
        f"({dict(campaign.tried)}; the process died in {dict(campaign.died)}), "
        f"{campaign.seconds:.0f} s"
    )


@pytest.mark.parametrize("how", ["commit", "before-call", "after-call"])
def test_sigkill_at_every_point_then_rerun_gives_the_clean_result_once(campaign, how):
    kills = campaign.points(how)

    failures = campaign.sweep([(kill,) for kill in kills])

    assert failures == []
    assert campaign.died[how] == len(kills)


@pytest.mark.skipif(not FULL, reason="FZR_CRASH_FULL=1 tries every pair of commits")
def test_sigkill_again_during_the_rerun_still_gives_the_clean_result(campaign):
    commits = campaign.points("commit")
    pairs = [(first, second) for first in commits for second in commits]

    assert campaign.sweep(pairs) == []


# -- the same write asked twice -------------------------------------------------------


@pytest.mark.parametrize(
    "groups_known", [False, True], ids=["probing-one-at-a-time", "groups-of-many"]
)
def test_two_requests_for_the_same_owner_and_customer_write_once(
    make_sandbox, make_fzr, groups_known
):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)
    if groups_known:  # a first write showed that distribution appends owners
        sandbox.add_instance(**approved("i-0", BEIJING, created="-3h"))
        assert fzr("sync").code == 0
    sandbox.add_instance(**approved("i-1", SHANGHAI))
    sandbox.add_instance(**approved("i-2", SHANGHAI, created="-90m"))

    run = fzr("sync", "--since", "1d")

    assert run.code == 0, run.stderr
    repeated = {k: v for k, v in fzr.items().items() if k[0] != "i-0"}
    assert sorted(repeated.values()) == ["already_owner", "assigned"]
    assert applied(sandbox)[(101, ALICE)] == 1
    assert len(sandbox.comments("i-1")) == len(sandbox.comments("i-2")) == 1


def test_repeat_whose_first_write_was_refused_waits_for_the_next_pass(
    make_sandbox, make_fzr
):
    sandbox = make_sandbox(
        scenario(approved("i-1", SHANGHAI), approved("i-2", SHANGHAI, created="-90m"))
    )
    sandbox.add_fault(
        {
            "service": "xbb",
            "api": "customer.distribution",
            "kind": "xbb_error",
            "code": 100001,
            "msg": "表单数据不存在或已删除",
        }
    )
    fzr = make_fzr(sandbox)

    first = fzr("sync")

    assert first.code == 1
    assert "1 item(s) wait for the next pass" in first.stderr
    assert sorted(fzr.items().values()) == ["failed", "pending"]
    again = fzr("sync")
    assert again.code == 0, again.stderr
    assert sorted(fzr.items().values()) == ["assigned", "failed"]
    assert applied(sandbox)[(101, ALICE)] == 1


# -- overlapping passes --------------------------------------------------------------


def wait_all(processes: list[subprocess.Popen], began: float) -> list[float]:
    """Wait for every process; the seconds each one took."""
    took: dict[int, float] = {}
    while len(took) < len(processes):
        for n, process in enumerate(processes):
            if n not in took and process.poll() is not None:
                took[n] = time.monotonic() - began
        time.sleep(0.01)
    return [took[n] for n in range(len(processes))]


@pytest.mark.parametrize(
    "earlier_pass", [False, True], ids=["first-run", "state-file-exists"]
)
def test_two_overlapping_passes_never_write_the_same_item(
    make_sandbox, make_fzr, earlier_pass
):
    sandbox = make_sandbox(campaign_scenario(), limits={"latency_ms": 150})
    fzr = make_fzr(sandbox)
    if earlier_pass:
        assert fzr("sync", "--dry-run").code == 0  # leaves every item pending

    began = time.monotonic()
    processes = [fzr.process("sync"), fzr.process("sync")]
    took = wait_all(processes, began)

    outputs = [process.communicate() for process in processes]
    codes = [process.returncode for process in processes]
    assert sorted(codes) == [0, 3], outputs
    loser = codes.index(3)
    assert "another fzr pass is running" in outputs[loser][1]
    assert "Traceback" not in outputs[loser][1] + outputs[1 - loser][1]
    assert outputs[loser][0] == ""
    assert took[loser] < min(5.0, took[1 - loser])  # promptly, before the work ends
    assert len(fzr.query("SELECT * FROM runs")) == 1 + earlier_pass
    assert sorted(applied(sandbox).values()) == [1, 1]
    assert all(
        n == 1 for n in comment_counts(sandbox, ["i-1", "i-2", "i-3", "i-5"]).values()
    )


def test_calls_of_a_killed_pass_still_count_in_the_month(make_sandbox, make_fzr):
    instances = [approved(f"i-{n}", "上海示例科技有限公司") for n in range(40)]
    data = scenario(*instances, limits={"latency_ms": 40})
    sandbox = make_sandbox(data)
    fzr = make_fzr(sandbox)
    process = fzr.process("sync")
    deadline = time.monotonic() + 30
    while sandbox.count(api="comments.add") < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()

    recorded = fzr.query("SELECT SUM(dingtalk_metered) AS n FROM runs")[0]["n"]

    assert recorded >= sandbox.count(api="instances.get") > 0
