"""``fzr history``: the whole trail of one approval request, from the state file.

Read-only like the report: it takes no pass lock and needs no service settings.
Times are stored in UTC and shown in FZR_TIMEZONE with the zone named; the JSON form
keeps the stored UTC strings.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from zoneinfo import ZoneInfo

from fzrcli import output
from fzrcli.errors import FzrError, UsageError
from fzrcli.report import read_only, suggestion_text
from fzrcli.store import STATUS_WORDS, json_list
from fzrcli.timeutil import iso_to_ms, local_text, utc_iso

FORMATS = ("text", "json")
JSON_VERSION = 1


class UnknownRequest(FzrError):
    """The state file holds no request with that id."""

    exit_code = 4


def run_history(key: str, fmt: str) -> int:
    """``fzr history``; returns the exit code."""
    from fzrcli.commands import settings_for

    chosen = fmt.strip().lower()
    if chosen not in FORMATS:
        raise UsageError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    settings = settings_for()
    with read_only(settings.db_path) as db:
        request = find_request(db, key.strip())
        if request is None:
            raise UnknownRequest(
                f"no request {key.strip()!r} in the state file; give "
                "the instance id or the business id (审批编号)"
            )
        items = db.execute(
            "SELECT * FROM items WHERE instance_id = ? ORDER BY id",
            (request["instance_id"],),
        ).fetchall()
        events = db.execute(
            "SELECT * FROM events WHERE instance_id = ? ORDER BY id",
            (request["instance_id"],),
        ).fetchall()
    if chosen == "json":
        output.say(
            json.dumps(
                history_json(request, items, events, settings.zone),
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        show_text(request, items, events, settings.zone)
    return 0


def find_request(db: sqlite3.Connection, key: str) -> sqlite3.Row | None:
    """By instance id first, then by business id."""
    return db.execute(
        "SELECT * FROM requests WHERE instance_id = ? OR business_id = ? "
        "ORDER BY instance_id = ? DESC, first_seen_at DESC LIMIT 1",
        (key, key, key),
    ).fetchone()


# -- text ------------------------------------------------------------------------------


def show_text(request: sqlite3.Row, items: list, events: list, zone: ZoneInfo) -> None:
    output.table("request", ["fact", "value"], request_facts(request, zone))
    output.table(
        f"events (times in {zone.key})",
        ["when", "what", "detail"],
        [[_short(e["at"], zone), e["kind"], e["detail"] or ""] for e in events],
    )
    if items:
        # Two narrower tables: eleven columns fold into an unreadable terminal grid.
        output.table(
            f"items (times in {zone.key})",
            ["#", "customer", "new owner", "status", "attempts", "dataId", "finished"],
            [_item_row(item, zone) for item in items],
        )
        output.table(
            "item outcomes",
            ["#", "reason", "suggestion", "owners before", "owners after"],
            [_outcome_row(item) for item in items],
        )
    else:
        output.say("no items: fzr made no CRM work of this request")
    output.table("comment", ["fact", "value"], comment_facts(request, zone))
    if request["comment_text"]:
        # Printed apart from the table, which would fold its lines into one.
        output.say("comment text:")
        output.say(
            "\n".join(f"  {line}" for line in request["comment_text"].splitlines())
        )


def request_facts(request: sqlite3.Row, zone: ZoneInfo) -> list[list[str]]:
    dingtalk = ", ".join(v for v in (request["status"], request["result"]) if v)
    state = request["state"] + (f": {request['reason']}" if request["reason"] else "")
    return [
        ["business id", request["business_id"] or "-"],
        ["instance id", request["instance_id"]],
        ["title", request["title"] or "-"],
        [
            "requester",
            request["originator_id"] or ("fzr assign" if request["manual"] else "-"),
        ],
        ["created", local_text(request["created_ms"], zone)],
        ["finished", local_text(request["finished_ms"], zone)],
        ["DingTalk status", dingtalk or "-"],
        ["fzr state", state],
        ["first seen", _local(request["first_seen_at"], zone)],
        ["decided", _local(request["decided_at"], zone)],
        ["manual", "yes (fzr assign)" if request["manual"] else "no"],
    ]


def comment_facts(request: sqlite3.Row, zone: ZoneInfo) -> list[list[str]]:
    if not request["comment_state"]:
        return [["state", "none (no comment due)"]]
    facts = [
        ["state", request["comment_state"]],
        ["when", _local(request["comment_at"], zone)],
    ]
    if request["comment_error"]:
        facts.append(["error", request["comment_error"]])
    return facts


def _item_row(item: sqlite3.Row, zone: ZoneInfo) -> list[str]:
    status = STATUS_WORDS.get(item["status"], item["status"])
    return [
        str(item["id"]),
        item["customer"],
        item["new_owner_id"],
        status + (" (manual)" if item["manual"] else ""),
        str(item["attempts"]),
        str(item["data_id"]) if item["data_id"] is not None else "-",
        _short(item["finished_at"], zone),
    ]


def _outcome_row(item: sqlite3.Row) -> list[str]:
    return [
        str(item["id"]),
        item["reason"] or "",
        suggestion_text(item["status"], item["suggestion"]),
        _owners(item["owners_before"]),
        _owners(item["owners_after"]),
    ]


def _owners(raw: str | None) -> str:
    owners = json_list(raw)
    if owners is None:
        return "-"
    return ", ".join(str(owner) for owner in owners) or "none (public pool)"


def _local(text: str | None, zone: ZoneInfo) -> str:
    return local_text(iso_to_ms(text), zone) if text else "-"


def _short(text: str | None, zone: ZoneInfo) -> str:
    """A stored time in a table whose title names the zone."""
    if not text:
        return "-"
    return f"{datetime.fromtimestamp(iso_to_ms(text) / 1000, zone):%Y-%m-%d %H:%M:%S}"


# -- json ------------------------------------------------------------------------------


def history_json(
    request: sqlite3.Row, items: list, events: list, zone: ZoneInfo
) -> dict:
    comment = None
    if request["comment_state"]:
        comment = {
            "state": request["comment_state"],
            "text": request["comment_text"],
            "at": request["comment_at"],
            "error": request["comment_error"],
        }
    return {
        "version": JSON_VERSION,
        "timezone": zone.key,
        "request": {
            "instance_id": request["instance_id"],
            "business_id": request["business_id"],
            "title": request["title"],
            "requester": request["originator_id"],
            "created_at": _utc(request["created_ms"]),
            "finished_at": _utc(request["finished_ms"]),
            "dingtalk_status": request["status"],
            "dingtalk_result": request["result"],
            "state": request["state"],
            "reason": request["reason"],
            "manual": bool(request["manual"]),
            "first_seen_at": request["first_seen_at"],
            "decided_at": request["decided_at"],
        },
        "events": [
            {
                "at": e["at"],
                "kind": e["kind"],
                "detail": e["detail"],
                "item_id": e["item_id"],
            }
            for e in events
        ],
        "items": [_item_json(item) for item in items],
        "comment": comment,
    }


def _utc(ms: int | None) -> str | None:
    return utc_iso(ms) if ms is not None else None


def _item_json(item: sqlite3.Row) -> dict:
    return {
        "id": item["id"],
        "customer": item["customer"],
        "new_owner": item["new_owner_id"],
        "status": item["status"],
        "reason": item["reason"],
        "suggestion": json_list(item["suggestion"]),
        "data_id": item["data_id"],
        "owners_before": json_list(item["owners_before"]),
        "owners_after": json_list(item["owners_after"]),
        "attempts": item["attempts"],
        "manual": bool(item["manual"]),
        "created_at": item["created_at"],
        "finished_at": item["finished_at"],
    }
