"""``fzr report``: exact figures from a hand-built state file, the same figures in every
format, a store filled by real passes against the sandbox, and the period options."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from conftest import Fzr
from fzrcli import output
from fzrcli.report import MARKDOWN_LIMIT, resolve_period
from fzrcli.sandbox import load_scenario
from fzrcli.store import Store

DAY = "2024-06-03"  # in Asia/Shanghai: 2024-06-02T16:00:00Z to 2024-06-03T16:00:00Z
U1, U2 = "0165123456789012", "2837465019283746"
O1, O2 = "0471829365018274", "0301928374650192"


class NoServices:
    """Stands in for the sandbox when a test needs nothing but the state file."""

    def env(self) -> dict[str, str]:
        return {"FZR_TIMEZONE": "Asia/Shanghai"}


@pytest.fixture
def fzr(tmp_path) -> Fzr:
    return Fzr(NoServices(), tmp_path / "home")


def add_request(
    store: Store,
    instance_id: str,
    state: str,
    decided: str | None,
    requester: str | None = U1,
    reason: str | None = None,
    manual: bool = False,
) -> None:
    store.db.execute(
        "INSERT INTO requests (instance_id, state, business_id, originator_id, status, "
        "result, reason, manual, first_seen_at, decided_at, updated_at) "
        "VALUES (?, ?, ?, ?, 'COMPLETED', 'agree', ?, ?, ?, ?, ?)",
        (
            instance_id,
            state,
            None if manual else f"biz-{instance_id}",
            requester,
            reason,
            int(manual),
            "2024-06-01T00:00:00Z",
            decided,
            "2024-06-01T00:00:00Z",
        ),
    )


def add_item(
    store: Store,
    instance_id: str,
    customer: str,
    status: str,
    finished: str | None,
    owner: str = O1,
    suggestion: object = None,
    reason: str | None = None,
    manual: bool = False,
) -> None:
    store.db.execute(
        "INSERT INTO items (instance_id, customer, new_owner_id, status, reason, "
        "suggestion, manual, created_at, updated_at, finished_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, '2024-06-01T00:00:00Z', "
        "'2024-06-01T00:00:00Z', ?)",
        (
            instance_id,
            customer,
            owner,
            status,
            reason or f"outcome {status}",
            json.dumps(suggestion, ensure_ascii=False)
            if suggestion is not None
            else None,
            int(manual),
            finished,
        ),
    )


def add_run(store: Store, started: str, metered: int, xbb: int, writes: int) -> None:
    store.db.execute(
        "INSERT INTO runs (command, started_at, ended_at, exit_status, dingtalk_calls, "
        "dingtalk_metered, xbb_calls, xbb_writes) VALUES ('sync', ?, ?, 0, ?, ?, ?, ?)",
        (started, started, metered + 1, metered, xbb, writes),
    )


@pytest.fixture
def known_store(fzr: Fzr) -> Fzr:
    """A state file whose report for 2024-06-03 is worked out by hand below."""
    store = Store(fzr.db)
    add_request(store, "r1", "done", "2024-06-03T01:00:00Z")
    add_request(store, "r2", "refused", "2024-06-03T02:00:00Z", requester=U2)
    add_request(
        store,
        "r3",
        "invalid",
        "2024-06-03T03:00:00Z",
        reason="customers: field 客户名称 is empty",
    )
    add_request(store, "r4", "done", "2024-06-02T15:59:59Z")  # the day before
    add_request(store, "r5", "active", "2024-06-03T15:59:59Z", requester=U2)
    add_request(store, "r6", "open", None, requester=U2)
    add_request(
        store, "m1", "done", "2024-06-03T05:00:00Z", requester=None, manual=True
    )
    add_item(store, "r1", "甲公司", "assigned", "2024-06-03T01:00:00Z")
    add_item(store, "r1", "乙公司", "already_owner", "2024-06-03T01:00:00Z")
    add_item(
        store,
        "r1",
        "丙公司",
        "not_found",
        "2024-06-03T01:00:01Z",
        suggestion=["丙公司分部", "丙工司"],
    )
    add_item(
        store,
        "r1",
        "丁公司",
        "ambiguous",
        "2024-06-03T01:00:02Z",
        suggestion=[{"dataId": 11, "name": "丁公司"}, {"dataId": 12, "name": "丁公司"}],
    )
    add_item(store, "r4", "戊公司", "assigned", "2024-06-02T15:59:59Z")  # day before
    add_item(
        store,
        "r4",
        "己公司",
        "failed",
        "2024-06-03T00:10:00Z",
        owner=O2,
        reason="CRM refused: record locked",
    )
    add_item(store, "r5", "庚公司", "unverified", "2024-06-03T15:59:59Z", owner=O2)
    add_item(store, "r5", "辛公司", "pending", None, owner=O2)
    add_item(store, "r5", "壬公司", "writing", None, owner=O2)
    add_item(store, "r5", "癸公司", "assigned", "2024-06-03T16:00:00Z")  # day after
    add_item(store, "m1", "子公司", "assigned", "2024-06-03T05:00:00Z", manual=True)
    add_run(store, "2024-05-31T15:00:00Z", 777, 1, 1)  # 23:00 on 31 May, local
    add_run(store, "2024-05-31T16:30:00Z", 100, 50, 5)  # 00:30 on 1 June, local
    add_run(store, "2024-06-03T10:00:00Z", 20, 10, 2)
    add_run(store, "2024-06-03T16:30:00Z", 999, 9, 9)  # after the reported day
    store.close()
    return fzr


def report_json(fzr: Fzr, *args: str, **env: str) -> dict:
    run = fzr("report", *args, "--format", "json", **env)
    assert run.code == 0, run.stderr
    assert run.stderr == ""
    return json.loads(run.stdout)


def test_json_report_has_the_figures_worked_out_by_hand(known_store):
    report = report_json(known_store, "--date", DAY)

    assert report["version"] == 1
    assert report["timezone"] == "Asia/Shanghai"
    assert report["period"] == {
        "label": DAY,
        "start": "2024-06-02T16:00:00Z",
        "end": "2024-06-03T16:00:00Z",
        "start_local": "2024-06-03 00:00",
        "end_local": "2024-06-04 00:00",
    }
    assert report["requests"] == {
        "decided": 4,
        "manual": 1,
        "by_state": {
            "active": 1,
            "done": 1,
            "refused": 1,
            "terminated": 0,
            "canceled": 0,
            "invalid": 1,
            "gone": 0,
        },
    }
    items = report["items"]
    assert items["by_status"] == {
        "assigned": 2,
        "already_owner": 1,
        "not_found": 1,
        "ambiguous": 1,
        "unverified": 1,
        "failed": 1,
    }
    assert items["manual_by_status"]["assigned"] == 1
    assert (items["finished"], items["needs_human"]) == (7, 4)
    assert (items["pending_now"], items["writing_now"]) == (1, 1)


def test_json_report_lists_what_needs_a_human_with_its_request(known_store):
    report = report_json(known_store, "--date", DAY)

    listed = [
        (i["customer"], i["status"], i["business_id"], i["requester"])
        for i in report["needs_human"]
    ]
    assert listed == [
        ("己公司", "failed", "biz-r4", U1),
        ("丙公司", "not_found", "biz-r1", U1),
        ("丁公司", "ambiguous", "biz-r1", U1),
        ("庚公司", "unverified", "biz-r5", U2),
    ]
    assert report["needs_human"][1]["suggestion"] == ["丙公司分部", "丙工司"]
    assert report["needs_human"][2]["suggestion"][0] == {"dataId": 11, "name": "丁公司"}
    assert report["needs_human"][0]["reason"] == "CRM refused: record locked"
    assert report["invalid_requests"] == [
        {
            "instance_id": "r3",
            "business_id": "biz-r3",
            "requester": U1,
            "reason": "customers: field 客户名称 is empty",
            "decided_at": "2024-06-03T03:00:00Z",
        }
    ]


def test_json_report_counts_per_requester_and_new_owner(known_store):
    report = report_json(known_store, "--date", DAY)

    assert report["by_requester"] == [
        {
            "requester": U1,
            "requests_decided": 2,
            "items": 5,
            "assigned": 1,
            "already_owner": 1,
            "needs_human": 3,
        },
        {
            "requester": U2,
            "requests_decided": 2,
            "items": 1,
            "assigned": 0,
            "already_owner": 0,
            "needs_human": 1,
        },
        {
            "requester": None,
            "requests_decided": 1,
            "items": 1,
            "assigned": 1,
            "already_owner": 0,
            "needs_human": 0,
        },
    ]
    assert report["by_new_owner"] == [
        {
            "new_owner": O1,
            "items": 5,
            "assigned": 2,
            "already_owner": 1,
            "needs_human": 2,
        },
        {
            "new_owner": O2,
            "items": 2,
            "assigned": 0,
            "already_owner": 0,
            "needs_human": 2,
        },
    ]


def test_usage_counts_the_month_up_to_the_period_end_and_projects_it(known_store):
    usage = report_json(known_store, "--date", DAY)["usage"]

    # 1 to 3 June of a 30-day month: a tenth elapsed, 120 metered calls so far
    assert usage == {
        "month": "2024-06",
        "as_of": "2024-06-03T16:00:00Z",
        "month_elapsed": 0.1,
        "dingtalk_metered": 120,
        "monthly_quota": 5000,
        "projected_metered": 1200,
        "dingtalk_calls": 122,
        "xbb_calls": 60,
        "xbb_writes": 7,
        "runs": 2,
    }


def test_monthly_quota_setting_reaches_the_report(known_store):
    usage = report_json(known_store, "--date", DAY, FZR_MONTHLY_QUOTA="1000")["usage"]

    assert usage["monthly_quota"] == 1000


def test_csv_has_one_row_per_item_needing_a_human(known_store):
    run = known_store("report", "--date", DAY, "--format", "csv")

    assert run.code == 0 and run.stderr == ""
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert [r["customer"] for r in rows] == ["己公司", "丙公司", "丁公司", "庚公司"]
    assert rows[1]["suggestion"] == "closest: 丙公司分部, 丙工司"
    assert rows[2]["suggestion"] == "candidates: dataId 11 丁公司; dataId 12 丁公司"
    assert rows[0] == {
        "business_id": "biz-r4",
        "instance_id": "r4",
        "requester": U1,
        "customer": "己公司",
        "new_owner": O2,
        "status": "failed",
        "reason": "CRM refused: record locked",
        "suggestion": "",
        "finished": "2024-06-03 08:10",
        "manual": "no",
    }


def test_markdown_carries_the_counts_and_every_case(known_store):
    run = known_store("report", "--date", DAY, "--format", "markdown")

    assert run.code == 0 and run.stderr == ""
    text = run.stdout
    assert "#### fzr report 2024-06-03" in text
    assert (
        "**Requests decided:** 4 (1 in progress, 1 done, 1 refused, 1 invalid)" in text
    )
    assert (
        "**Items finished:** 7 (2 assigned, 1 already owner, 1 not found, "
        "1 ambiguous, 1 unverified, 1 failed); 1 by fzr assign" in text
    )
    assert "**Still open:** 1 pending, 1 being written" in text
    assert "120 of 5,000 metered calls, projected 1,200 by month end" in text
    assert "**Manual (fzr assign):** 1" in text
    for customer in ("己公司", "丙公司", "丁公司", "庚公司"):
        assert customer in text
    assert "closest: 丙公司分部, 丙工司" in text
    assert "biz-r3" in text and "field 客户名称 is empty" in text
    assert len(text) <= MARKDOWN_LIMIT


def test_plain_table_when_stdout_is_not_a_terminal(known_store):
    run = known_store("report", "--date", DAY)

    assert run.code == 0 and run.stderr == ""
    assert "\x1b[" not in run.stdout
    tables = tsv_tables(run.stdout)
    assert by_first_cell(tables["requests decided"])["total"] == ["4"]
    assert by_first_cell(tables["requests decided"])["manual (fzr assign)"] == ["1"]
    assert by_first_cell(tables["items finished"])["assigned"] == ["2", "1"]
    assert by_first_cell(tables["items finished"])["pending now"] == ["1", ""]
    humans = tables["need a human (4)"]
    assert humans[0] == [
        "request",
        "requester",
        "customer",
        "new owner",
        "status",
        "reason",
        "suggestion",
    ]
    assert [row[2] for row in humans[1:]] == ["己公司", "丙公司", "丁公司", "庚公司"]
    assert humans[2][6] == "closest: 丙公司分部, 丙工司"
    assert tables["invalid requests (1)"][1] == [
        "biz-r3",
        U1,
        "customers: field 客户名称 is empty",
    ]
    assert by_first_cell(tables["by requester"])[U1] == ["2", "5", "1", "1", "3"]
    assert by_first_cell(tables["by new owner"])[O2] == ["2", "0", "0", "2"]
    usage = by_first_cell(tables["API usage in 2024-06"])
    assert usage["projected by month end"] == ["1,200"]
    assert usage["metered DingTalk calls so far"] == ["120"]


def tsv_tables(text: str) -> dict[str, list[list[str]]]:
    """The plain-text tables: title → rows of cells, the header row first."""
    tables: dict[str, list[list[str]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("# "):
            current = tables.setdefault(line[2:], [])
        elif current is not None and "\t" in line:
            current.append(line.split("\t"))
    return tables


def by_first_cell(rows: list[list[str]]) -> dict[str, list[str]]:
    return {row[0]: row[1:] for row in rows[1:]}


def test_rich_tables_on_a_terminal(known_store, monkeypatch):
    monkeypatch.setattr(output, "is_terminal", lambda stream: True)

    run = known_store("report", "--date", DAY)

    assert run.code == 0, run.stderr
    assert "need a human (4)" in run.stdout and "丁公司" in run.stdout


def test_report_reads_without_the_pass_lock_and_changes_nothing(known_store):
    holder = Store(known_store.db)
    holder.acquire_pass_lock()
    before = hashlib.sha256(known_store.db.read_bytes()).hexdigest()
    try:
        run = known_store("report", "--date", DAY, "--format", "json")
    finally:
        holder.close()

    assert run.code == 0, run.stderr
    assert hashlib.sha256(known_store.db.read_bytes()).hexdigest() == before


def test_report_needs_no_service_settings(known_store):
    # NoServices sets no DingTalk, CRM or robot variable at all
    assert known_store("report", "--date", DAY).code == 0


def test_report_without_a_state_file_says_so(fzr):
    run = fzr("report")

    assert run.code == 1
    assert "no state file" in run.stderr and "Traceback" not in run.stderr
    assert not fzr.db.exists()


def test_long_markdown_is_cut_to_the_robot_limit_with_counts(fzr):
    store = Store(fzr.db)
    add_request(store, "big", "done", "2024-06-03T01:00:00Z")
    for n in range(400):
        add_item(
            store,
            "big",
            f"一家名字相当长的客户有限公司第{n:03d}号分公司",
            "not_found",
            "2024-06-03T01:00:00Z",
            suggestion=[f"相近客户{n}"],
        )
    store.close()

    text = fzr("report", "--date", DAY, "--format", "markdown").stdout.rstrip("\n")

    assert len(text) <= MARKDOWN_LIMIT
    assert "**Need a human:** 400 item(s)" in text
    shown = text.count("→ " + O1)
    assert 0 < shown < 400
    assert f"- ... and {400 - shown} more (fzr report --format csv)" in text
    assert "##### By requester (1)" in text


# -- a store filled by real passes ----------------------------------------------------


def test_every_format_matches_the_store_after_a_demo_sync(make_sandbox, make_fzr):
    fzr = make_fzr(make_sandbox(load_scenario("demo")))
    assert fzr("sync").code in (0, 1)

    report = report_json(fzr)
    start, end = report["period"]["start"], report["period"]["end"]

    statuses = {
        r["status"]: r["n"]
        for r in fzr.query(
            "SELECT status, COUNT(*) AS n FROM items WHERE finished_at >= ? "
            "AND finished_at < ? GROUP BY status",
            start,
            end,
        )
    }
    assert {s: n for s, n in report["items"]["by_status"].items() if n} == statuses
    states = {
        r["state"]: r["n"]
        for r in fzr.query(
            "SELECT state, COUNT(*) AS n FROM requests WHERE decided_at >= ? "
            "AND decided_at < ? AND manual = 0 GROUP BY state",
            start,
            end,
        )
    }
    assert {s: n for s, n in report["requests"]["by_state"].items() if n} == states
    metered = fzr.query("SELECT TOTAL(dingtalk_metered) AS n FROM runs")[0]["n"]
    assert report["usage"]["dingtalk_metered"] == metered > 0

    human = fzr.query(
        "SELECT customer FROM items WHERE status IN ('not_found', 'ambiguous', "
        "'unverified', 'failed') AND finished_at >= ? AND finished_at < ?",
        start,
        end,
    )
    names = sorted(row["customer"] for row in human)
    assert sorted(i["customer"] for i in report["needs_human"]) == names

    rows = list(csv.DictReader(io.StringIO(fzr("report", "--format", "csv").stdout)))
    assert sorted(row["customer"] for row in rows) == names

    text = fzr("report", "--format", "markdown").stdout
    assert (
        f"**Need a human:** {len(names)} item(s), "
        f"{report['requests']['by_state']['invalid']} invalid" in text
    )
    assert all(name in text for name in names)

    table = by_first_cell(tsv_tables(fzr("report").stdout)["items finished"])
    assert table["total"][0] == f"{report['items']['finished']:,}"


# -- the period ------------------------------------------------------------------------


SHANGHAI = ZoneInfo("Asia/Shanghai")


def utc(text: str) -> int:
    moment = datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def test_a_date_is_one_local_day():
    period = resolve_period("2024-06-03", None, None, SHANGHAI)

    assert (period.start_ms, period.end_ms) == (
        utc("2024-06-02T16:00"),
        utc("2024-06-03T16:00"),
    )


def test_a_day_with_a_clock_change_keeps_its_23_hours():
    period = resolve_period("2024-03-10", None, None, ZoneInfo("America/New_York"))

    assert period.end_ms - period.start_ms == 23 * 3_600_000


def test_until_a_day_includes_that_day():
    period = resolve_period(None, "2024-06-01", "2024-06-03", SHANGHAI)

    assert (period.start_ms, period.end_ms) == (
        utc("2024-05-31T16:00"),
        utc("2024-06-03T16:00"),
    )


def test_since_alone_runs_to_now():
    period = resolve_period(None, "6h", None, SHANGHAI)

    assert 6 * 3_600_000 - 5_000 < period.end_ms - period.start_ms <= 6 * 3_600_000


@pytest.mark.parametrize(
    "args, message",
    [
        (["--date", "2024-13-01"], "--date: '2024-13-01' is not a day"),
        (["--date", "soon"], "--date: 'soon' is not a day"),
        (["--since", "last week"], "--since: 'last week' is not a time"),
        (["--since", "2024-06-01", "--until", "June"], "--until: 'June' is not a time"),
        (["--date", "today", "--since", "yesterday"], "cannot be combined"),
        (["--until", "today"], "--until needs --since"),
        (["--since", "2024-06-05", "--until", "2024-06-01"], "--since must be before"),
        (
            ["--format", "xml"],
            "--format: 'xml' is not one of table, json, csv, markdown",
        ),
    ],
)
def test_bad_period_or_format_is_a_usage_error(known_store, args, message):
    run = known_store("report", *args)

    assert run.code == 2
    assert run.stdout == ""
    assert run.stderr.startswith("fzr: ") and message in run.stderr
    assert "Traceback" not in run.stderr


def test_since_and_until_select_the_same_figures_as_the_date(known_store):
    by_date = report_json(known_store, "--date", DAY)
    by_range = report_json(known_store, "--since", DAY, "--until", DAY)

    for key in ("requests", "items", "by_requester", "by_new_owner", "needs_human"):
        assert by_range[key] == by_date[key]
