"""``fzr demo``: the main job end to end against the bundled sandbox, no credentials.

Everything runs on 127.0.0.1 with a temporary state file; the user's own settings and
state are never read or touched.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fzrcli import output
from fzrcli.commands import call_totals, summary_line
from fzrcli.config import DINGTALK, XBB, load_settings
from fzrcli.sandbox import Sandbox, load_scenario
from fzrcli.store import STATUS_WORDS, Store
from fzrcli.sync import run_pass
from fzrcli.timeutil import DAY_MS, now_ms
from fzrcli.transport import CallLog


def run_demo(keep: bool) -> int:
    folder = Path(tempfile.mkdtemp(prefix="fzr-demo-"))
    try:
        with Sandbox(load_scenario("demo")) as sandbox:
            env = {**sandbox.env(), "FZR_DB": str(folder / "demo.sqlite3")}
            settings = load_settings(
                frozenset({DINGTALK, XBB}), env=env, use_file=False
            )
            _show_passes(sandbox, settings)
    finally:
        if keep:
            output.say(f"\nstate file kept: {folder / 'demo.sqlite3'}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


def _show_passes(sandbox: Sandbox, settings) -> None:
    output.say(f"sandbox: DingTalk and CRM emulated at {sandbox.url}")
    store = Store(settings.db_path)
    try:
        _pass(
            store,
            settings,
            "pass 1 — first run, scans the last three days",
            since_ms=now_ms() - 3 * DAY_MS,
        )
        _show_items(store)
        _show_comments(store, sandbox)
        waiting = store.ids_in_state("open")
        _pass(store, settings, "pass 2 — nothing new (idle)")
        if waiting:
            sandbox.finish_instance(waiting[0], result="agree")
            output.say(f"\n(an approver now approves request {waiting[0]})")
        _pass(store, settings, "pass 3 — the running request was approved meanwhile")
        _show_items(store, only=waiting[:1])
        _pass(store, settings, "pass 4 — nothing new (idle)")
    finally:
        store.close()


def _pass(store: Store, settings, title: str, since_ms: int | None = None) -> None:
    calls = CallLog()
    report = run_pass(settings, store, calls, since_ms=since_ms)
    totals = call_totals(calls)
    output.say(f"\n== {title}")
    output.say(
        summary_line(report, calls)
        if not report.quiet()
        else f"sync: nothing to do; {totals['dingtalk_metered']} metered DingTalk "
        f"call(s), {totals['xbb_calls']} CRM call(s)"
    )
    for problem in report.problems:
        output.say(f"problem: {problem}")


def _show_items(store: Store, only: list[str] | None = None) -> None:
    rows = store.db.execute(
        "SELECT r.instance_id, r.business_id, r.state, r.reason, i.customer, "
        "i.new_owner_id, i.status, i.reason AS item_reason FROM requests r "
        "LEFT JOIN items i USING (instance_id) ORDER BY r.business_id, i.id"
    ).fetchall()
    table = [
        [
            row["business_id"] or row["instance_id"],
            row["state"],
            row["customer"] or "-",
            row["new_owner_id"] or "-",
            STATUS_WORDS.get(row["status"], "-"),
            row["item_reason"] or row["reason"] or "",
        ]
        for row in rows
        if only is None or row["instance_id"] in only
    ]
    output.table(
        "outcomes",
        ["request", "state", "customer", "new owner", "item", "reason"],
        table,
    )


def _show_comments(store: Store, sandbox: Sandbox) -> None:
    rows = store.db.execute(
        "SELECT instance_id, business_id FROM requests WHERE comment_state = 'sent' "
        "ORDER BY business_id"
    ).fetchall()
    for row in rows[:2]:
        for text in sandbox.comments(row["instance_id"]):
            output.say(f"\ncomment on {row['business_id']}:\n{text}")
    if len(rows) > 2:
        output.say(f"\n(and {len(rows) - 2} more comment(s))")
