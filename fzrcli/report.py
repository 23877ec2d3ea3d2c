"""``fzr report``: what fzr did in a period, what needs a human, and the API budget.

The report only reads the state file (no pass lock, no DingTalk or CRM settings), so it
runs beside a sync pass. Figures come from SQL aggregates over the indexed time columns
and the item lists are streamed, so a store of millions of items reports in
constant memory. The README (“The JSON layout”) documents the JSON output.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import sys
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

from fzrcli import output
from fzrcli.errors import FzrError, UsageError
from fzrcli.store import (
    ALREADY_OWNER,
    ASSIGNED,
    FINAL_ITEM,
    FINISHED,
    INVALID,
    MIGRATIONS,
    NEEDS_HUMAN,
    NOT_FOUND,
    AMBIGUOUS,
    PENDING,
    UNMATCHED,
    WRITING,
    STATUS_WORDS,
    Store,
    json_list,
)
from fzrcli.timeutil import (
    DAY_MS,
    RELATIVE,
    iso_to_ms,
    now_ms,
    parse_since,
    resolve_day,
    start_of_day_ms,
    utc_iso,
)

FORMATS = ("table", "json", "csv", "markdown")
JSON_VERSION = 1
JSON_LINE = json.JSONEncoder(ensure_ascii=False)  # one encoder for many small values
TABLE_ROWS = 500  # a terminal table beyond this is unreadable; csv lists them all
MARKDOWN_LIMIT = 5000  # the robot refuses longer markdown
SHORT_LIST = 10  # lines per secondary list in the markdown report
STATE_WORDS = {
    "active": "in progress",
    "done": "done",
    "refused": "refused",
    "terminated": "withdrawn",
    "canceled": "canceled",
    "invalid": "invalid",
    "gone": "deleted",
}
CSV_COLUMNS = [
    "business_id",
    "instance_id",
    "requester",
    "customer",
    "new_owner",
    "status",
    "reason",
    "suggestion",
    "finished",
    "manual",
]


# -- the period ------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start_ms: int
    end_ms: int
    label: str
    zone: ZoneInfo

    @property
    def start(self) -> str:
        return utc_iso(self.start_ms)

    @property
    def end(self) -> str:
        return utc_iso(self.end_ms)

    def local(self, ms: int) -> str:
        return f"{datetime.fromtimestamp(ms / 1000, self.zone):%Y-%m-%d %H:%M}"

    def describe(self) -> str:
        return (
            f"{self.local(self.start_ms)} to {self.local(self.end_ms)} "
            f"({self.zone.key})"
        )


def resolve_period(
    day: str | None, since: str | None, until: str | None, zone: ZoneInfo
) -> Period:
    """[start, end) in ``zone``: one day (today by default) or --since/--until."""
    if day is not None and (since is not None or until is not None):
        raise UsageError("--date cannot be combined with --since/--until")
    if since is None and until is not None:
        raise UsageError("--until needs --since")
    if since is None:
        return _day_period(_day(day or "today", "--date", zone), zone)
    start = _since_ms(since, zone)
    end = _until_ms(until, zone) if until is not None else now_ms()
    if start >= end:
        raise UsageError(
            "--since must be before the end of the period (--until, "
            "or now when it is not given)"
        )
    label = f"since {since.strip()}" + (f" until {until.strip()}" if until else "")
    return Period(start, end, label, zone)


def _day_period(day: date, zone: ZoneInfo) -> Period:
    # Both ends computed as local midnights, so a day with a DST change keeps its hours.
    start = start_of_day_ms(day, zone)
    end = start_of_day_ms(day + timedelta(days=1), zone)
    return Period(start, end, day.isoformat(), zone)


def _day(text: str, option: str, zone: ZoneInfo) -> date:
    try:
        return resolve_day(text, zone)
    except ValueError:
        raise UsageError(
            f"{option}: {text!r} is not a day; use today, yesterday or YYYY-MM-DD"
        ) from None


def _since_ms(text: str, zone: ZoneInfo) -> int:
    try:
        return parse_since(text, zone)
    except ValueError:
        raise UsageError(
            f"--since: {text!r} is not a time; use today, yesterday, "
            "2d, 6h, 30m or YYYY-MM-DD"
        ) from None


def _until_ms(text: str, zone: ZoneInfo) -> int:
    """A day counts whole (its end); ``now`` and ``2d``/``6h`` ago are instants."""
    value = text.strip().lower()
    if value == "now" or RELATIVE.match(value):
        return now_ms() if value == "now" else parse_since(value, zone)
    try:
        day = resolve_day(value, zone)
    except ValueError:
        raise UsageError(
            f"--until: {text!r} is not a time; use now, today, yesterday, "
            "2d, 6h or YYYY-MM-DD (that day included)"
        ) from None
    return start_of_day_ms(day + timedelta(days=1), zone)


# -- reading the store -----------------------------------------------------------------


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """The state file opened for reading only: no pass lock, so it runs beside sync."""
    if not path.exists():
        raise FzrError(f"no state file at {path} yet; the first fzr sync creates it")
    if not path.is_file():
        raise FzrError(f"the state file {path} is not a file; point FZR_DB at fzr's")
    _ensure_schema(path)
    db = _connect_read_only(path)
    try:
        # One read transaction: every figure and list comes from the same snapshot,
        # however far a concurrent pass moves on meanwhile.
        db.execute("BEGIN")
        yield db
    except sqlite3.DatabaseError as exc:
        raise FzrError(f"cannot read state file {path}: {exc}") from None
    finally:
        db.close()


def _connect_read_only(path: Path) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=30,
            isolation_level=None,
        )
        db.row_factory = sqlite3.Row
        return db
    except sqlite3.Error as exc:
        raise FzrError(f"cannot read state file {path}: {exc}") from None


def _ensure_schema(path: Path) -> None:
    """A state file from an older fzr is upgraded first, as every command does."""
    db = _connect_read_only(path)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise FzrError(f"cannot read state file {path}: {exc}") from None
    finally:
        db.close()
    if version != len(MIGRATIONS):
        Store(path).close()


@dataclass
class Usage:
    month: str
    month_start_ms: int
    month_end_ms: int
    as_of_ms: int
    runs: int
    metered: int
    quota: int
    dingtalk_calls: int
    xbb_calls: int
    xbb_writes: int

    @property
    def elapsed(self) -> float:
        spent = self.as_of_ms - self.month_start_ms
        return max(0.0, spent / (self.month_end_ms - self.month_start_ms))

    @property
    def projected(self) -> int | None:
        """Linear month-end projection; none in the first day, when a few calls
        would project wildly."""
        if self.as_of_ms - self.month_start_ms < DAY_MS:
            return None
        return round(self.metered / self.elapsed)


@dataclass
class Summary:
    period: Period
    decided: Counter = field(default_factory=Counter)
    manual_requests: int = 0
    finished: Counter = field(default_factory=Counter)
    manual_items: Counter = field(default_factory=Counter)
    open_now: Counter = field(default_factory=Counter)
    requesters: dict = field(default_factory=lambda: defaultdict(Counter))
    owners: dict = field(default_factory=lambda: defaultdict(Counter))
    invalid: int = 0
    usage: Usage | None = None

    @property
    def needs_human(self) -> int:
        return sum(self.finished[s] for s in NEEDS_HUMAN)


def summarise(db: sqlite3.Connection, period: Period, quota: int) -> Summary:
    summary = Summary(period)
    bounds = (period.start, period.end)

    _count_requests(db, bounds, summary)

    _count_items(db, bounds, summary)

    rows = db.execute(
        "SELECT status, COUNT(*) AS n FROM items WHERE status IN (?, ?) "
        "GROUP BY status",
        (PENDING, WRITING),
    )
    summary.open_now.update({row["status"]: row["n"] for row in rows})
    waiting = db.execute("SELECT COUNT(*) FROM requests WHERE state = ?", (UNMATCHED,))
    summary.open_now[UNMATCHED] = waiting.fetchone()[0]

    summary.usage = month_usage(db, period, quota)
    return summary


def _count_requests(db: sqlite3.Connection, bounds: tuple, summary: Summary) -> None:
    rows = db.execute(
        "SELECT originator_id, state, manual, COUNT(*) AS n FROM requests "
        "WHERE decided_at >= ? AND decided_at < ? "
        "GROUP BY originator_id, state, manual",
        bounds,
    )
    for row in rows:
        if row["manual"]:
            summary.manual_requests += row["n"]
        else:
            summary.decided[row["state"]] += row["n"]
        summary.requesters[row["originator_id"]]["requests"] += row["n"]
    summary.invalid = summary.decided[INVALID]


def _count_items(db: sqlite3.Connection, bounds: tuple, summary: Summary) -> None:
    rows = db.execute(
        "SELECT r.originator_id, i.new_owner_id, i.status, i.manual, COUNT(*) AS n "
        "FROM items i JOIN requests r ON r.instance_id = i.instance_id "
        "WHERE i.finished_at >= ? AND i.finished_at < ? "
        "GROUP BY r.originator_id, i.new_owner_id, i.status, i.manual",
        bounds,
    )
    for row in rows:
        status, n = row["status"], row["n"]
        summary.finished[status] += n
        if row["manual"]:
            summary.manual_items[status] += n
        bucket = "needs_human" if status in NEEDS_HUMAN else status
        for tally in (
            summary.requesters[row["originator_id"]],
            summary.owners[row["new_owner_id"]],
        ):
            tally["items"] += n
            tally[bucket] += n


def month_usage(db: sqlite3.Connection, period: Period, quota: int) -> Usage:
    """Calls in the calendar month (in the report's zone) holding the period's end,
    counted up to that end or now, whichever is earlier."""
    now = now_ms()
    as_of = min(period.end_ms, now)
    moment = datetime.fromtimestamp((as_of - 1) / 1000, period.zone)
    first = moment.date().replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    start = start_of_day_ms(first, period.zone)
    end = start_of_day_ms(following, period.zone)
    row = db.execute(
        "SELECT COUNT(*) AS runs, TOTAL(dingtalk_metered) AS metered, "
        "TOTAL(dingtalk_calls) AS dingtalk, TOTAL(xbb_calls) AS xbb, "
        "TOTAL(xbb_writes) AS writes FROM runs "
        "WHERE started_at >= ? AND started_at < ?",
        (utc_iso(start), utc_iso(period.end_ms if period.end_ms <= now else end)),
    ).fetchone()
    return Usage(
        month=f"{first:%Y-%m}",
        month_start_ms=start,
        month_end_ms=end,
        as_of_ms=as_of,
        runs=row["runs"],
        metered=int(row["metered"]),
        quota=quota,
        dingtalk_calls=int(row["dingtalk"]),
        xbb_calls=int(row["xbb"]),
        xbb_writes=int(row["writes"]),
    )


def items_needing_human(
    db: sqlite3.Connection, period: Period
) -> Iterator[sqlite3.Row]:
    # Ordered like the items_finished index, so SQLite streams rows without sorting.
    marks = ",".join("?" * len(NEEDS_HUMAN))
    yield from db.execute(
        "SELECT i.id, i.instance_id, r.business_id, r.originator_id, i.customer, "
        "i.new_owner_id, i.status, i.reason, i.suggestion, i.finished_at, i.manual "
        "FROM items i JOIN requests r ON r.instance_id = i.instance_id "
        f"WHERE i.finished_at >= ? AND i.finished_at < ? AND +i.status IN ({marks}) "
        "ORDER BY i.finished_at, i.status, i.id",
        (period.start, period.end, *NEEDS_HUMAN),
    )


def invalid_requests(db: sqlite3.Connection, period: Period) -> Iterator[sqlite3.Row]:
    yield from db.execute(
        "SELECT instance_id, business_id, originator_id, reason, decided_at "
        "FROM requests WHERE decided_at >= ? AND decided_at < ? AND state = ? "
        "ORDER BY decided_at, instance_id",
        (period.start, period.end, INVALID),
    )


def suggestion_text(status: str, raw: str | None) -> str:
    """``items.suggestion`` as a person reads it: close names or the candidates."""
    value = json_list(raw) or []
    if status == NOT_FOUND:
        names = [str(name) for name in value]
        return f"closest: {', '.join(names)}" if names else "no similar name"
    if status == AMBIGUOUS:
        listed = "; ".join(_candidate(c) for c in value)
        return f"candidates: {listed}" if listed else ""
    return ", ".join(_candidate(c) for c in value)


def _candidate(value: object) -> str:
    if isinstance(value, dict):
        return f"dataId {value.get('dataId')} {value.get('name', '')}".strip()
    return str(value)


# -- the command -----------------------------------------------------------------------


def run_report(
    day: str | None, since: str | None, until: str | None, fmt: str | None, send: bool
) -> int:
    """``fzr report``; returns the exit code."""
    from fzrcli.commands import settings_for
    from fzrcli.config import ROBOT

    chosen = _format(fmt)
    settings = settings_for(ROBOT) if send else settings_for()
    period = resolve_period(day, since, until, settings.zone)
    with read_only(settings.db_path) as db:
        summary = summarise(db, period, settings.monthly_quota)
        if chosen or not send:
            _render(RENDERERS[chosen or "table"], db, summary)
        text = markdown(db, summary) if send else ""
    if send:
        send_report(settings, summary, text, confirm=chosen is None)
    return 0


def _render(renderer, db: sqlite3.Connection, summary: Summary) -> None:
    try:
        renderer(db, summary)
    except BrokenPipeError:
        # The reader (head, a pager) stopped early; that is not the report failing.
        # Later writes and the flush at exit go to /dev/null instead of raising.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _format(fmt: str | None) -> str | None:
    if fmt is None:
        return None
    chosen = fmt.strip().lower()
    if chosen not in FORMATS:
        raise UsageError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    return chosen


def send_report(settings, summary: Summary, text: str, confirm: bool) -> None:
    from fzrcli.commands import recorded_run
    from fzrcli.robot import Robot
    from fzrcli.transport import CallLog

    calls = CallLog()
    store = Store(settings.db_path)
    try:
        with recorded_run(store, "report --send", calls) as outcome:
            robot = Robot(settings.robot_webhook, settings.robot_secret, store, calls)
            robot.send_markdown(title(summary), text)
            outcome["message"] = f"sent {len(text)} characters"
    finally:
        store.close()
    if confirm:
        output.say(
            f"report for {summary.period.label} sent to the group robot "
            f"({len(text)} characters)"
        )


def title(summary: Summary) -> str:
    return f"fzr report {summary.period.label}"


# -- table and plain text --------------------------------------------------------------


def render_table(db: sqlite3.Connection, summary: Summary) -> None:
    output.say(f"{title(summary)}: {summary.period.describe()}")
    output.table("requests decided", ["outcome", "requests"], _decided_rows(summary))
    output.table(
        "items finished", ["status", "items", "of them manual"], _finished_rows(summary)
    )
    _table_needing_human(db, summary)
    _table_invalid(db, summary)
    if summary.requesters:
        output.table(
            "by requester",
            [
                "requester",
                "requests decided",
                "items",
                "assigned",
                "already owner",
                "need a human",
            ],
            _requester_rows(summary.requesters),
        )
    if summary.owners:
        output.table(
            "by new owner",
            ["new owner", "items", "assigned", "already owner", "need a human"],
            _owner_rows(summary.owners),
        )
    output.table(
        f"API usage in {summary.usage.month}",
        ["measure", "value"],
        _usage_rows(summary.usage),
    )


def _decided_rows(summary: Summary) -> list[list[str]]:
    rows = [[STATE_WORDS[s], _n(summary.decided[s])] for s in FINISHED]
    rows.append(["total", _n(sum(summary.decided.values()))])
    if summary.manual_requests:
        rows.append(["manual (fzr assign)", _n(summary.manual_requests)])
    return rows


def _finished_rows(summary: Summary) -> list[list[str]]:
    rows = [
        [STATUS_WORDS[s], _n(summary.finished[s]), _n(summary.manual_items[s])]
        for s in FINAL_ITEM
    ]
    rows.append(
        [
            "total",
            _n(sum(summary.finished.values())),
            _n(sum(summary.manual_items.values())),
        ]
    )
    rows.append(["pending now", _n(summary.open_now[PENDING]), ""])
    rows.append(["being written now", _n(summary.open_now[WRITING]), ""])
    if summary.open_now[UNMATCHED]:
        rows.append(
            [
                "requests waiting for a field-settings fix",
                _n(summary.open_now[UNMATCHED]),
                "",
            ]
        )
    return rows


def _table_needing_human(db: sqlite3.Connection, summary: Summary) -> None:
    if not summary.needs_human:
        output.say("nothing needs a human in this period")
        return
    listed = islice(items_needing_human(db, summary.period), TABLE_ROWS)
    rows = [_human_cells(row) for row in listed]
    output.table(
        f"need a human ({summary.needs_human:,})",
        [
            "request",
            "requester",
            "customer",
            "new owner",
            "status",
            "reason",
            "suggestion",
        ],
        rows,
    )
    if summary.needs_human > len(rows):
        output.say(
            f"... {summary.needs_human - len(rows):,} more; "
            "fzr report --format csv lists them all"
        )


def _human_cells(row: sqlite3.Row) -> list[str]:
    return [
        row["business_id"] or row["instance_id"],
        _who(row),
        row["customer"],
        row["new_owner_id"],
        _status(row["status"]) + (" (manual)" if row["manual"] else ""),
        row["reason"] or "",
        suggestion_text(row["status"], row["suggestion"]),
    ]


def _table_invalid(db: sqlite3.Connection, summary: Summary) -> None:
    if not summary.invalid:
        return
    rows = [
        [
            row["business_id"] or row["instance_id"],
            row["originator_id"] or "",
            row["reason"] or "",
        ]
        for row in invalid_requests(db, summary.period)
    ]
    output.table(
        f"invalid requests ({summary.invalid})",
        ["request", "requester", "reason"],
        rows,
    )


def _requester_rows(tallies: dict) -> list[list[str]]:
    return [
        [_name(who), _n(t["requests"]), *_outcome_cells(t)]
        for who, t in _ordered(tallies)
    ]


def _owner_rows(tallies: dict) -> list[list[str]]:
    return [[who, *_outcome_cells(t)] for who, t in _ordered(tallies)]


def _outcome_cells(tally: Counter) -> list[str]:
    return [
        _n(tally["items"]),
        _n(tally[ASSIGNED]),
        _n(tally[ALREADY_OWNER]),
        _n(tally["needs_human"]),
    ]


def _usage_rows(usage: Usage) -> list[list[str]]:
    projected = usage.projected
    verdict = ""
    if projected is not None and projected > usage.quota:
        verdict = " (over the quota)"
    return [
        ["metered DingTalk calls so far", _n(usage.metered)],
        ["monthly quota", _n(usage.quota)],
        [
            "projected by month end",
            (_n(projected) + verdict) if projected is not None else "-",
        ],
        ["month elapsed", f"{usage.elapsed:.0%}"],
        ["CRM calls so far", _n(usage.xbb_calls)],
        ["CRM writes so far", _n(usage.xbb_writes)],
        ["passes and commands run", _n(usage.runs)],
    ]


def _status(status: str) -> str:
    return STATUS_WORDS.get(status, status)


def _who(row: sqlite3.Row) -> str:
    return "(fzr assign)" if row["manual"] else (row["originator_id"] or "")


def _name(who: str | None) -> str:
    return who if who else "(fzr assign)"


def _n(number: int) -> str:
    return f"{number:,}"


# -- json ------------------------------------------------------------------------------


def render_json(db: sqlite3.Connection, summary: Summary) -> None:
    """The layout in the README; the item lists are streamed, not built."""
    head = json.dumps(json_head(summary), ensure_ascii=False, indent=2)
    out, period = sys.stdout, summary.period
    out.write(head[: head.rindex("}")].rstrip() + ',\n  "needs_human": [')
    _stream_json(out, (_human_json(row) for row in items_needing_human(db, period)))
    out.write('],\n  "invalid_requests": [')
    _stream_json(out, (_invalid_json(row) for row in invalid_requests(db, period)))
    out.write("]\n}\n")
    out.flush()


def _stream_json(out, values: Iterator[dict]) -> None:
    separator = "\n    "
    wrote = False
    for value in values:
        out.write(separator + JSON_LINE.encode(value))
        separator, wrote = ",\n    ", True
    if wrote:
        out.write("\n  ")


def json_head(summary: Summary) -> dict:
    period, usage = summary.period, summary.usage
    return {
        "version": JSON_VERSION,
        "generated_at": utc_iso(),
        "timezone": period.zone.key,
        "period": {
            "label": period.label,
            "start": period.start,
            "end": period.end,
            "start_local": period.local(period.start_ms),
            "end_local": period.local(period.end_ms),
        },
        "requests": {
            "decided": sum(summary.decided.values()),
            "by_state": {s: summary.decided[s] for s in FINISHED},
            "manual": summary.manual_requests,
        },
        "items": {
            "finished": sum(summary.finished.values()),
            "by_status": {s: summary.finished[s] for s in FINAL_ITEM},
            "manual_by_status": {s: summary.manual_items[s] for s in FINAL_ITEM},
            "needs_human": summary.needs_human,
            "pending_now": summary.open_now[PENDING],
            "writing_now": summary.open_now[WRITING],
            "unmatched_requests_now": summary.open_now[UNMATCHED],
        },
        "usage": {
            "month": usage.month,
            "as_of": utc_iso(usage.as_of_ms),
            "month_elapsed": round(usage.elapsed, 4),
            "dingtalk_metered": usage.metered,
            "monthly_quota": usage.quota,
            "projected_metered": usage.projected,
            "dingtalk_calls": usage.dingtalk_calls,
            "xbb_calls": usage.xbb_calls,
            "xbb_writes": usage.xbb_writes,
            "runs": usage.runs,
        },
        "by_requester": [
            _tally_json("requester", who, t, True)
            for who, t in _ordered(summary.requesters)
        ],
        "by_new_owner": [
            _tally_json("new_owner", who, t, False)
            for who, t in _ordered(summary.owners)
        ],
    }


def _ordered(tallies: dict) -> list:
    return sorted(
        tallies.items(),
        key=lambda kv: (-kv[1]["items"], -kv[1]["requests"], str(kv[0])),
    )


def _tally_json(key: str, who: str | None, tally: Counter, requests: bool) -> dict:
    entry = {key: who}
    if requests:
        entry["requests_decided"] = tally["requests"]
    entry.update(
        {
            "items": tally["items"],
            "assigned": tally[ASSIGNED],
            "already_owner": tally[ALREADY_OWNER],
            "needs_human": tally["needs_human"],
        }
    )
    return entry


def _human_json(row: sqlite3.Row) -> dict:
    return {
        "item_id": row["id"],
        "instance_id": row["instance_id"],
        "business_id": row["business_id"],
        "requester": row["originator_id"],
        "customer": row["customer"],
        "new_owner": row["new_owner_id"],
        "status": row["status"],
        "reason": row["reason"],
        "suggestion": json_list(row["suggestion"]),
        "finished_at": row["finished_at"],
        "manual": bool(row["manual"]),
    }


def _invalid_json(row: sqlite3.Row) -> dict:
    return {
        "instance_id": row["instance_id"],
        "business_id": row["business_id"],
        "requester": row["originator_id"],
        "reason": row["reason"],
        "decided_at": row["decided_at"],
    }


# -- csv -------------------------------------------------------------------------------


def render_csv(db: sqlite3.Connection, summary: Summary) -> None:
    """One row per item that needs a human in the period, after a header row."""
    writer = csv.writer(sys.stdout)
    writer.writerow(CSV_COLUMNS)
    zone = summary.period.zone
    for row in items_needing_human(db, summary.period):
        writer.writerow(
            [
                row["business_id"] or "",
                row["instance_id"],
                row["originator_id"] or "",
                row["customer"],
                row["new_owner_id"],
                row["status"],
                row["reason"] or "",
                suggestion_text(row["status"], row["suggestion"]),
                _local_iso(row["finished_at"], zone),
                "yes" if row["manual"] else "no",
            ]
        )
    sys.stdout.flush()


def _local_iso(text: str | None, zone: ZoneInfo) -> str:
    if not text:
        return ""
    return f"{datetime.fromtimestamp(iso_to_ms(text) / 1000, zone):%Y-%m-%d %H:%M}"


# -- markdown --------------------------------------------------------------------------


class Fitter:
    """Whole lines kept under a character limit, newlines counted."""

    def __init__(self, limit: int):
        self.limit = limit
        self.lines: list[str] = []
        self.size = -1  # no newline before the first line

    def fits(self, line: str, reserve: int = 0) -> bool:
        return self.size + 1 + len(line) + reserve <= self.limit

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.size += 1 + len(line)

    def text(self) -> str:
        return "\n".join(self.lines)


def markdown(
    db: sqlite3.Connection, summary: Summary, limit: int = MARKDOWN_LIMIT
) -> str:
    """The report for mail and the robot, at most ``limit`` characters: the counts
    always, the short lists below them, and as many items needing a human as the room
    left allows, with a count of the rest."""
    period = summary.period
    tail = [
        *_short_list(
            "Invalid requests",
            summary.invalid,
            (_invalid_line(row) for row in invalid_requests(db, period)),
        ),
        *_short_list(
            "By requester",
            len(summary.requesters),
            (_requester_line(w, t) for w, t in _ordered(summary.requesters)),
        ),
        *_short_list(
            "By new owner",
            len(summary.owners),
            (_owner_line(w, t) for w, t in _ordered(summary.owners)),
        ),
    ]
    fitter = Fitter(limit - sum(len(line) + 1 for line in tail))
    for line in _markdown_head(summary):
        fitter.add(line)
    _markdown_list(
        fitter,
        "Need a human",
        summary.needs_human,
        (_human_line(row) for row in items_needing_human(db, period)),
        "fzr report --format csv",
    )
    fitter.limit = limit
    for line in tail:
        if not fitter.fits(line):
            break
        fitter.add(line)
    return fitter.text()


def _markdown_head(summary: Summary) -> list[str]:
    decided = ", ".join(
        f"{summary.decided[s]:,} {STATE_WORDS[s]}"
        for s in FINISHED
        if summary.decided[s]
    )
    finished = ", ".join(
        f"{summary.finished[s]:,} {STATUS_WORDS[s]}"
        for s in FINAL_ITEM
        if summary.finished[s]
    )
    manual = sum(summary.manual_items.values())
    usage = summary.usage
    projected = usage.projected
    lines = [
        f"#### {title(summary)}",
        f"{summary.period.describe()}",
        "",
        f"- **Requests decided:** {sum(summary.decided.values()):,}"
        + (f" ({decided})" if decided else ""),
        f"- **Items finished:** {sum(summary.finished.values()):,}"
        + (f" ({finished})" if finished else "")
        + (f"; {manual:,} by fzr assign" if manual else ""),
        f"- **Need a human:** {summary.needs_human:,} item(s), "
        f"{summary.invalid:,} invalid request(s)",
        f"- **Still open:** {summary.open_now[PENDING]:,} pending, "
        f"{summary.open_now[WRITING]:,} being written"
        + (
            f"; {summary.open_now[UNMATCHED]:,} request(s) wait for a field-settings "
            "fix (see fzr sync)"
            if summary.open_now[UNMATCHED]
            else ""
        ),
        f"- **DingTalk quota {usage.month}:** {usage.metered:,} of {usage.quota:,} "
        "metered calls"
        + (f", projected {projected:,} by month end" if projected is not None else "")
        + (" (over the quota)" if projected and projected > usage.quota else ""),
        f"- **CRM {usage.month}:** {usage.xbb_calls:,} calls, "
        f"{usage.xbb_writes:,} write(s)",
    ]
    if summary.manual_requests:
        lines.append(f"- **Manual (fzr assign):** {summary.manual_requests:,}")
    return lines


def _markdown_list(
    fitter: Fitter,
    name: str,
    total: int,
    lines: Iterator[str],
    where: str = "fzr report",
) -> None:
    """A heading and as many lines as fit, then how many were left out and where
    to see them."""
    if not total:
        return
    heading = f"##### {name} ({total:,})"
    if not fitter.fits(heading, reserve=len(_more(total, where)) + 2):
        skipped = f"- {name}: {total:,} not shown ({where})"
        if fitter.fits(skipped):
            fitter.add(skipped)
        return
    fitter.add("")
    fitter.add(heading)
    shown = 0
    for line in lines:
        left = total - shown - 1
        if not fitter.fits(line, len(_more(left, where)) + 1 if left else 0):
            break
        fitter.add(line)
        shown += 1
    if shown < total:
        fitter.add(_more(total - shown, where))


def _short_list(
    name: str, total: int, lines: Iterator[str], where: str = "fzr report"
) -> list[str]:
    if not total:
        return []
    shown = list(islice(lines, SHORT_LIST))
    more = [_more(total - len(shown), where)] if total > len(shown) else []
    return ["", f"##### {name} ({total:,})", *shown, *more]


def _more(count: int, where: str) -> str:
    return f"- ... and {count:,} more ({where})"


def _human_line(row: sqlite3.Row) -> str:
    hint = suggestion_text(row["status"], row["suggestion"])
    request = row["business_id"] or row["instance_id"]
    return _one_line(
        f"- {request} ({_who(row)}): {row['customer']} → {row['new_owner_id']}: "
        f"**{_status(row['status'])}**, {row['reason'] or 'no reason recorded'}"
        + (f"; {hint}" if hint else "")
    )


def _invalid_line(row: sqlite3.Row) -> str:
    request = row["business_id"] or row["instance_id"]
    return _one_line(
        f"- {request} ({row['originator_id'] or 'unknown requester'}): "
        f"{row['reason'] or 'no reason recorded'}"
    )


def _requester_line(who: str | None, tally: Counter) -> str:
    return (
        f"- {_name(who)}: {tally['requests']:,} request(s), {tally['items']:,} "
        f"item(s), {tally['needs_human']:,} need a human"
    )


def _owner_line(who: str | None, tally: Counter) -> str:
    return (
        f"- {_name(who)}: {tally['items']:,} item(s), {tally[ASSIGNED]:,} "
        f"assigned, {tally[ALREADY_OWNER]:,} already owner, "
        f"{tally['needs_human']:,} need a human"
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_markdown(db: sqlite3.Connection, summary: Summary) -> None:
    output.say(markdown(db, summary))


RENDERERS = {
    "table": render_table,
    "json": render_json,
    "csv": render_csv,
    "markdown": render_markdown,
}
