"""One pass of ``fzr sync``: list, fetch, act on the CRM, comment, record.

Each step commits as it goes, so a pass killed at any instant resumes where it stopped:
ids found are kept, fetched instances are never fetched again, an item marked
``writing`` is checked against the CRM before anything is written again, and a comment
marked ``sending`` is looked for before it is posted again.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Callable
from datetime import datetime

from fzrcli import comments
from fzrcli.approval import decide
from fzrcli.formcheck import check_form_once, fields_verified
from fzrcli.config import Settings
from fzrcli.dingtalk import DingTalk
from fzrcli.errors import Failure, PassAborted, ServiceError, WritesHalted
from fzrcli.owners import OwnerWork, PlannedWrite, ensure_writes_allowed, resume_writes
from fzrcli.scan import STATE_KEY, scan
from fzrcli.schedule import parse_schedule
from fzrcli.store import GONE, INVALID, PENDING, SEEN, UNMATCHED, WRITING, Store
from fzrcli.timeutil import now_ms, parse_since
from fzrcli.transport import Budget, CallLog
from fzrcli.xbb import Xbb

log = logging.getLogger(__name__)

FETCH_WORKERS = 8
PROGRESS_EVERY = 20  # instances fetched between two saves of the run's calls
FIELD_SETTINGS = {
    "customers": "FZR_FIELD_CUSTOMERS",
    "new_owner": "FZR_FIELD_NEW_OWNER",
    "current_owner": "FZR_FIELD_CURRENT_OWNER",
}
SKIPPED_KEY = "schedule_skipped"
QUOTA_KEY = "quota_paused_until"
QUOTA_CODE = "Forbidden.AccessDenied.ApiCountLimitForOrg"
QUOTA_PAUSE_MS = 3_600_000


@dataclass
class PassReport:
    """What one pass did; the CLI turns it into the summary line."""

    scan_kind: str = ""
    new_ids: int = 0
    fetched: int = 0
    decided: Counter = field(default_factory=Counter)
    items: Counter = field(default_factory=Counter)
    planned: list[PlannedWrite] = field(default_factory=list)
    comments: int = 0
    problems: list[str] = field(default_factory=list)
    skipped: str = ""
    exit_code: int = 0

    def quiet(self) -> bool:
        return not (
            self.fetched
            or self.items
            or self.planned
            or self.comments
            or self.problems
            or self.decided
        )


@dataclass
class Pass:
    settings: Settings
    store: Store
    calls: CallLog
    budget: Budget
    report: PassReport
    dry_run: bool = False
    fetch_only: bool = False
    progress: Callable[[], None] = lambda: None

    def __post_init__(self):
        self.dingtalk = DingTalk(self.settings, self.store, self.calls, self.budget)
        self.xbb = Xbb(self.settings, self.calls, self.budget)


def run_pass(
    settings: Settings,
    store: Store,
    calls: CallLog,
    *,
    since_ms: int | None = None,
    dry_run: bool = False,
    fetch_only: bool = False,
    resume: bool = False,
    progress: Callable[[], None] = lambda: None,
) -> PassReport:
    """One synchronous pass; the caller holds the pass lock and records the run.
    ``progress`` is called after each stage (the caller saves the calls so far)."""
    report = PassReport()
    work = Pass(
        settings,
        store,
        calls,
        Budget(settings.pass_timeout),
        report,
        dry_run=dry_run,
        fetch_only=fetch_only,
        progress=progress,
    )
    if resume and resume_writes(store):
        log.warning("CRM writes resumed by the operator")
    try:
        _steps(work, since_ms)
    except ServiceError as error:
        if error.kind is Failure.PERMANENT:
            raise
        if error.code == QUOTA_CODE:
            store.set_state(QUOTA_KEY, now_ms() + QUOTA_PAUSE_MS)
        raise PassAborted(f"pass stopped: {error}", error, report) from None
    if report.problems:
        report.exit_code = 1
    return report


def _steps(work: Pass, since_ms: int | None) -> None:
    if since_ms is None and _outside_schedule(work):
        return
    if since_ms is None and _quota_paused(work):
        if not work.fetch_only:
            act_on_items(work)  # the CRM is not metered: fetched work goes on
        return
    check_form_once(work.store, work.dingtalk, work.settings)
    catch_up = work.store.get_state(SKIPPED_KEY) is not None
    if since_ms is None and work.store.get_state(STATE_KEY) is None:
        since_ms = parse_since("yesterday", work.settings.zone)
    result = scan(work.store, work.dingtalk, since_ms, catch_up=catch_up)
    work.store.delete_state(SKIPPED_KEY)
    work.store.delete_state(QUOTA_KEY)  # DingTalk answered: any quota pause is over
    work.report.scan_kind, work.report.new_ids = result.kind, result.new_ids
    work.progress()
    retry_unmatched(work)
    fetch_seen(work)
    work.progress()
    report_unmatched(work)
    if work.fetch_only:
        return
    act_on_items(work)
    work.progress()
    if not work.dry_run and work.settings.comment_user_id:
        work.report.comments = comments.post_due_comments(
            work.store, work.dingtalk, work.settings.comment_user_id, work.progress
        )


def _quota_paused(work: Pass) -> bool:
    """After DingTalk said the monthly quota is used up, calling it every five minutes
    only repeats the refusal: it is tried again once an hour, or at once by an
    operator's ``fzr sync --since``."""
    until = work.store.get_state(QUOTA_KEY)
    if until is None:
        return False
    if now_ms() >= until:
        work.store.delete_state(QUOTA_KEY)
        return False
    work.report.skipped = "DingTalk quota used up; paused"
    return True


def _outside_schedule(work: Pass) -> bool:
    if not work.settings.active_hours:
        return False
    schedule = parse_schedule(work.settings.active_hours)
    if schedule.is_open(datetime.now(work.settings.zone)):
        return False
    if work.store.get_state(SKIPPED_KEY) is None:
        work.store.set_state(SKIPPED_KEY, True)
    work.report.skipped = "outside active hours"
    return True


# -- fetching ------------------------------------------------------------------------


def fetch_seen(work: Pass) -> None:
    """Fetch every instance marked ``seen``, several at once under the QPS limiter;
    results are recorded one by one as they arrive."""
    ids = work.store.ids_in_state(SEEN)
    if not ids:
        return
    with ThreadPoolExecutor(max_workers=min(FETCH_WORKERS, len(ids))) as pool:
        futures = {pool.submit(work.dingtalk.get_instance, i): i for i in ids}
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                _record_fetch(work, futures[future], future)
                if done % PROGRESS_EVERY == 0:
                    work.progress()
        except BaseException:
            for pending in futures:
                pending.cancel()
            raise


def _record_fetch(work: Pass, instance_id: str, future) -> None:
    try:
        instance = future.result()
    except ServiceError as error:
        if error.kind is Failure.PERMANENT:
            with work.store.transaction():
                work.store.set_request_state(instance_id, GONE, error.detail)
            work.report.decided[GONE] += 1
            return
        if error.kind is Failure.FATAL:
            raise
        work.report.problems.append(f"instance {instance_id} not fetched: {error}")
        return
    work.report.fetched += 1
    save_instance(work, instance_id, instance)


def _decide(work: Pass, instance: dict):
    return decide(
        instance,
        work.settings.fields,
        fields_verified=fields_verified(work.store, work.settings),
    )


def save_instance(work: Pass, instance_id: str, instance: dict) -> None:
    decision = _decide(work, instance)
    parsed = None
    if decision.parsed:
        parsed = {
            "customers": list(decision.parsed.customers),
            "new_owner_ids": list(decision.parsed.new_owner_ids),
            "current_owner_ids": list(decision.parsed.current_owner_ids),
        }
    with work.store.transaction():
        work.store.save_fetched(
            instance_id, decision.state, decision.facts, instance, parsed
        )
        if decision.reason:
            work.store.set_request_state(instance_id, decision.state, decision.reason)
        if parsed:
            work.store.add_items(
                instance_id, parsed["customers"], parsed["new_owner_ids"]
            )
        if decision.state == INVALID:
            comments.queue_comment(
                work.store, instance_id, bool(work.settings.comment_user_id)
            )
    if decision.state != "open":
        work.report.decided[decision.state] += 1
        log.info(
            "%s (%s): %s%s",
            instance_id,
            decision.facts.get("business_id"),
            decision.state,
            f" ({decision.reason})" if decision.reason else "",
        )


def retry_unmatched(work: Pass) -> None:
    """Approvals whose form the field settings could not read are kept, not judged:
    once the settings are fixed they are read again from the stored copy."""
    for row in work.store.requests_in_state(UNMATCHED):
        instance = json.loads(row["raw"] or "{}")
        if _decide(work, instance).state != UNMATCHED:
            save_instance(work, row["instance_id"], instance)


def report_unmatched(work: Pass) -> None:
    rows = work.store.requests_in_state(UNMATCHED)
    if not rows:
        return
    example = rows[0]
    field = (example["reason"] or "").split(":", 1)[0]
    setting = FIELD_SETTINGS.get(field, "the FZR_FIELD_* settings")
    work.report.problems.append(
        f"{len(rows)} approved request(s) wait because {setting} matches no field of "
        f"their form, e.g. {example['business_id'] or example['instance_id']}: "
        f"{example['reason']}. Fix {setting} (a component id is safest); they are "
        "read again on the next pass"
    )


# -- the CRM -------------------------------------------------------------------------


def act_on_items(work: Pass) -> None:
    items = work.store.unfinished_items()
    if items:
        try:
            ensure_writes_allowed(work.store)
        except WritesHalted as halted:
            work.report.problems.append(str(halted))
            work.report.exit_code = 1
            if not work.dry_run:
                return
    claims = _claims(work.store, {i.instance_id for i in items})
    owner_work = OwnerWork(work.store, work.xbb, dry_run=work.dry_run)
    try:
        result = owner_work.run(items, claims)
    except WritesHalted as halted:
        work.report.problems.append(str(halted))
        work.report.exit_code = 1
        result = owner_work.result
    work.report.planned = result.planned
    for item in work.store.items_of_ids([i.id for i in items]):
        work.report.items[item.status] += 1
    left_pending = work.report.items[PENDING] + work.report.items[WRITING]
    if result.error:
        work.report.problems.append(f"CRM work left pending: {result.error}")
    elif left_pending and not work.dry_run:
        work.report.problems.append(
            f"CRM work left pending: {left_pending} item(s) wait for the next pass"
        )
    if work.dry_run:  # outcomes a real pass would record; they are still pending
        work.report.items[PENDING] -= sum(result.decided.values())
        work.report.items.update(result.decided)
        work.report.items = +work.report.items
    with work.store.transaction():
        done = work.store.complete_requests()
        for instance_id in done:
            comments.queue_comment(
                work.store, instance_id, bool(work.settings.comment_user_id)
            )


def _claims(store: Store, instance_ids: set[str]) -> dict[str, set[str]]:
    claims: dict[str, set[str]] = {}
    for instance_id in instance_ids:
        row = store.request(instance_id)
        parsed = json.loads(row["parsed"]) if row and row["parsed"] else {}
        claims[instance_id] = set(parsed.get("current_owner_ids", []))
    return claims
