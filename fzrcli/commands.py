"""One function per command: load settings, open the store, run, record, print.

``cli.py`` parses options and calls these; they return the process exit code and raise
``FzrError`` for anything the operator must read (the CLI prints it, no traceback).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

from fzrcli import output
from fzrcli.config import DINGTALK, XBB, Settings, load_settings
from fzrcli.errors import FzrError, PassAborted, UsageError
from fzrcli.store import NEEDS_HUMAN, STATUS_WORDS, Store
from fzrcli.timeutil import parse_since
from fzrcli.transport import CallLog

log = logging.getLogger(__name__)


STATE_WORDS = {"active": "approved", "gone": "not found in DingTalk"}


def settings_for(*needs: str) -> Settings:
    settings = load_settings(frozenset(needs))
    output.mask_secrets(settings.secrets())
    return settings


@contextmanager
def recorded_run(store: Store, command: str, calls: CallLog) -> Iterator[dict]:
    """Record a run (start, end, calls per service, exit status) whatever happens."""
    run_id = store.start_run(command)
    outcome = {"exit": 0, "message": "", "run_id": run_id}
    try:
        yield outcome
    except FzrError as error:
        outcome["exit"], outcome["message"] = error.exit_code, str(error)
        raise
    except BaseException as error:
        outcome["exit"], outcome["message"] = 1, f"crashed: {type(error).__name__}"
        raise
    finally:
        store.finish_run(
            run_id, outcome["exit"], call_totals(calls), outcome["message"]
        )


def call_totals(calls: CallLog) -> dict:
    writes = sum(
        n
        for (svc, api), n in calls.counts.items()
        if svc == "xbb" and api == "customer.distribution"
    )
    return {
        "dingtalk_calls": calls.total("dingtalk"),
        "dingtalk_metered": calls.metered,
        "xbb_calls": calls.total("xbb"),
        "xbb_writes": writes,
        "by_api": calls.by_api(),
    }


def sync(
    since: str | None, dry_run: bool, resume_writes: bool, fetch_only: bool = False
) -> int:
    from fzrcli.sync import run_pass

    if dry_run and resume_writes and not fetch_only:
        raise UsageError("--resume-writes lifts a safety halt: not in a --dry-run")
    settings = settings_for(DINGTALK) if fetch_only else settings_for(DINGTALK, XBB)
    since_ms = _since(since, settings)
    store = Store(settings.db_path, exclusive=True)
    try:
        calls = CallLog()
        command = "fetch" if fetch_only else ("sync --dry-run" if dry_run else "sync")
        with recorded_run(store, command, calls) as outcome:
            try:
                report = run_pass(
                    settings,
                    store,
                    calls,
                    progress=lambda: store.record_run_calls(
                        outcome["run_id"], call_totals(calls)
                    ),
                    since_ms=since_ms,
                    dry_run=dry_run,
                    fetch_only=fetch_only,
                    resume=resume_writes,
                )
            except PassAborted as aborted:
                # What was done before the stop is committed: say what it was.
                _print_pass(aborted.report, calls, command, store)
                raise
            outcome["exit"] = report.exit_code
            outcome["message"] = "; ".join(report.problems)
        _print_pass(report, calls, command, store)
        if fetch_only:
            _print_pending_work(store)
        return report.exit_code
    finally:
        store.close()


def _since(text: str | None, settings: Settings) -> int | None:
    if text is None:
        return None
    try:
        return parse_since(text, settings.zone)
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None


def _print_pass(report, calls: CallLog, command: str, store: Store) -> None:
    if report is None:
        return
    if report.skipped and command != "sync":  # by hand: say why nothing happened
        output.warn(f"nothing listed: {report.skipped} (--since tries DingTalk now)")
    for problem in report.problems:
        output.warn(problem)
    if report.planned:
        output.table(
            "would write (dry run)",
            ["request", "customer", "dataId", "new owner", "owners now"],
            [
                [
                    _business_id(store, w.item.instance_id),
                    w.item.customer,
                    str(w.customer.data_id),
                    w.item.new_owner_id,
                    ", ".join(w.customer.owners),
                ]
                for w in report.planned
            ],
        )
    if report.quiet():
        return
    output.say(summary_line(report, calls, command.split()[0]))


def _business_id(store: Store, instance_id: str) -> str:
    row = store.request(instance_id)
    return (row["business_id"] if row else None) or instance_id


def summary_line(report, calls: CallLog, command: str = "sync") -> str:
    parts = []
    if report.fetched:
        decided = ", ".join(
            f"{n} {STATE_WORDS.get(state, state)}"
            for state, n in sorted(report.decided.items())
        )
        parts.append(f"{report.fetched} request(s) fetched ({decided or 'still open'})")
    if report.items:
        parts.append(
            ", ".join(
                f"{n} {STATUS_WORDS.get(s, s)}" for s, n in sorted(report.items.items())
            )
        )
    human = sum(report.items[s] for s in NEEDS_HUMAN)
    if human:
        parts.append(f"{human} need a human (fzr report)")
    if report.planned:
        parts.append(f"{len(report.planned)} write(s) planned, none made")
    if report.comments:
        parts.append(f"{report.comments} comment(s) posted")
    parts.append(
        f"{calls.metered} metered DingTalk call(s), {calls.total('xbb')} CRM call(s)"
    )
    return f"{command}: " + "; ".join(parts)


def _print_pending_work(store: Store) -> None:
    rows = store.db.execute(
        "SELECT r.business_id, r.instance_id, i.customer, i.new_owner_id, i.status "
        "FROM items i JOIN requests r USING (instance_id) "
        "WHERE i.status IN ('pending', 'writing') ORDER BY i.id"
    ).fetchall()
    if not rows:
        return
    output.table(
        "pending work",
        ["request", "customer", "new owner", "status"],
        [
            [
                row["business_id"] or row["instance_id"],
                row["customer"],
                row["new_owner_id"],
                STATUS_WORDS[row["status"]],
            ]
            for row in rows
        ],
    )


def assign(customer: str | None, data_id: int | None, user: str, dry_run: bool) -> int:
    """Add one owner to one customer by hand, with the same post-write check as sync."""
    from fzrcli.forms import clean_name, name_key
    from fzrcli.owners import OwnerWork, ensure_writes_allowed
    from fzrcli.transport import Budget
    from fzrcli.xbb import Xbb

    if (customer is None) == (data_id is None):
        raise UsageError("give exactly one of --customer NAME or --id DATAID")
    user = user.strip()
    if not user:
        raise UsageError("--user must be a CRM user id")
    settings = settings_for(XBB)
    store = Store(settings.db_path, exclusive=True)
    calls = CallLog()
    try:
        with recorded_run(store, "assign", calls) as outcome:
            xbb = Xbb(settings, calls, Budget(settings.pass_timeout))
            if user not in xbb.active_users([user]):
                raise Refused(
                    f"{user} is not an active CRM user (resigned or not set up)"
                )
            target = _resolve_one(xbb, customer, data_id)
            if dry_run:
                output.say(_assign_plan(target, user))
                _warn_if_halted(store)
                return 0
            ensure_writes_allowed(store)
            label = f"fzr assign {user} → {target.name} (dataId {target.data_id})"
            instance_id = store.create_manual_request(label)
            store.add_items(instance_id, [target.name], [user], manual=True)
            work = OwnerWork(store, xbb)
            work.run(
                store.items_of(instance_id),
                None,
                resolved={name_key(clean_name(target.name)): [target]},
            )
            item = _settle_manual(store, xbb, store.items_of(instance_id)[0])
            outcome["exit"] = 0 if item.status in ("assigned", "already_owner") else 1
            outcome["message"] = f"{item.status}: {item.reason}"
            with store.transaction():
                store.set_request_state(instance_id, "done")
            output.say(
                f"{STATUS_WORDS.get(item.status, item.status)}: {target.name} "
                f"(dataId {target.data_id}), {user} — {item.reason}"
            )
            return outcome["exit"]
    finally:
        store.close()


def _settle_manual(store: Store, xbb, item):
    """A manual assignment is one-shot: nothing comes back for it later, so an item
    the write left open is decided now (from the owners read back), never left open."""
    from fzrcli.errors import ServiceError

    if item.status not in ("pending", "writing"):
        return item
    reason = item.reason or "not written"
    status = "failed"
    if item.status == "writing":
        try:
            if item.new_owner_id in xbb.customer_detail(item.data_id).owners:
                status, reason = "assigned", f"added {item.new_owner_id} (read back)"
        except ServiceError as error:
            reason = f"outcome unknown ({error.detail}); check the customer's owners"
    with store.transaction():
        store.finish_item(
            item,
            status,
            f"{reason}; run fzr assign again" if status == "failed" else reason,
        )
    return store.items_of(item.instance_id)[0]


def _warn_if_halted(store: Store) -> None:
    from fzrcli.errors import WritesHalted
    from fzrcli.owners import ensure_writes_allowed

    try:
        ensure_writes_allowed(store)
    except WritesHalted as halted:
        output.warn(f"{halted} (a real run would not write)")


class Refused(FzrError):
    """``assign`` would not act: the customer or user does not resolve cleanly."""

    exit_code = 4


def _resolve_one(xbb, customer: str | None, data_id: int | None):
    from fzrcli.errors import Failure, ServiceError
    from fzrcli.forms import clean_name, name_key

    if data_id is not None:
        try:
            return xbb.customer_detail(data_id)
        except ServiceError as error:
            if error.kind is Failure.PERMANENT:
                raise Refused(
                    f"no customer with dataId {data_id}: {error.detail}"
                ) from None
            raise
    name = clean_name(customer or "")
    if not name:
        raise UsageError("--customer is empty after removing spaces")
    matches = xbb.find_customers([name]).get(name_key(name), [])
    if not matches:
        near = xbb.suggest(name)
        hint = f"; closest: {', '.join(near)}" if near else ""
        raise Refused(f"no CRM customer is named {name!r}{hint}")
    if len(matches) > 1:
        listed = "; ".join(
            f"dataId {c.data_id} {c.name} (owners: "
            f"{', '.join(c.owners) or 'none, public pool'})"
            for c in matches
        )
        raise Refused(
            f"{len(matches)} customers are named {name!r}: {listed}. "
            "Pick one with --id DATAID"
        )
    return matches[0]


def _assign_plan(target, user: str) -> str:
    if user in target.owners:
        return f"dry run: {user} already owns {target.name} (dataId {target.data_id})"
    return (
        f"dry run: would add {user} to {target.name} (dataId {target.data_id}); "
        f"owners now: {', '.join(target.owners) or 'none (public pool)'}"
    )
