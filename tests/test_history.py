"""``fzr history``: the trail of one request after real passes against the sandbox."""

from __future__ import annotations

import json

import pytest

from builders import ALICE, BOB, approved, scenario
from fzrcli.store import Store

CUSTOMERS = "上海示例科技有限公司\n深圳同名电子有限公司\n没有这家公司"


@pytest.fixture
def synced(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario(approved("inst-1", CUSTOMERS)))
    fzr = make_fzr(sandbox)
    assert fzr("sync").code == 0
    return fzr


def business_id(fzr) -> str:
    return fzr.query("SELECT business_id FROM requests WHERE instance_id = 'inst-1'")[
        0
    ]["business_id"]


def test_history_shows_the_request_its_items_and_the_comment(synced):
    run = synced("history", "inst-1")

    assert run.code == 0, run.stderr
    assert run.stderr == ""
    text = run.stdout
    assert business_id(synced) in text
    assert f"requester\t{ALICE}" in text
    assert "DingTalk status\tCOMPLETED, agree" in text
    assert "fzr state\tdone" in text
    assert "(Asia/Shanghai)" in text
    items = cells(text, "items (times in Asia/Shanghai)")
    outcomes = {row[1]: row[3] for row in items}
    assert outcomes == {
        "上海示例科技有限公司": "assigned",
        "深圳同名电子有限公司": "ambiguous",
        "没有这家公司": "not found",
    }
    assigned = next(row for row in items if row[3] == "assigned")
    assert (assigned[4], assigned[5]) == ("1", "101")  # attempts, dataId
    details = {row[0]: row for row in cells(text, "item outcomes")}
    assert details[assigned[0]][3:] == [BOB, f"{BOB}, {ALICE}"]
    ambiguous = next(row for row in items if row[3] == "ambiguous")
    assert details[ambiguous[0]][2].startswith(
        "candidates: dataId 104 深圳同名电子有限公司; dataId 105"
    )
    [posted] = synced.sandbox.comments("inst-1")
    shown = text.split("comment text:\n", 1)[1].splitlines()
    assert shown == [f"  {line}" for line in posted.splitlines()]
    assert "state\tsent" in text


def test_history_lists_the_events_in_order(synced):
    events = section(
        synced("history", "inst-1").stdout, "events (times in Asia/Shanghai)"
    )[1:]

    kinds = [line.split("\t")[1] for line in events]
    assert kinds[0] == "seen"
    assert kinds.index("status") < kinds.index("write") < kinds.index("comment")
    assert kinds[-1] == "comment"
    assert any("上海示例科技有限公司 → assigned" in line for line in events)


def cells(text: str, title: str) -> list[list[str]]:
    """The rows of one plain-text table, without its header."""
    return [line.split("\t") for line in section(text, title)[1:]]


def section(text: str, title: str) -> list[str]:
    """The lines of one plain-text table, its header first."""
    lines = text.splitlines()
    start = lines.index(f"# {title}") + 1
    end = next(
        (n for n in range(start, len(lines)) if lines[n].startswith("# ")), len(lines)
    )
    return lines[start:end]


def test_history_by_business_id_is_the_same_request(synced):
    by_instance = synced("history", "inst-1", "--format", "json")
    by_business = synced("history", business_id(synced), "--format", "json")

    assert by_business.code == 0
    assert json.loads(by_business.stdout) == json.loads(by_instance.stdout)


def test_history_json_carries_items_events_and_comment(synced):
    history = json.loads(synced("history", "inst-1", "--format", "json").stdout)

    assert history["version"] == 1 and history["timezone"] == "Asia/Shanghai"
    assert history["request"]["state"] == "done"
    assert history["request"]["requester"] == ALICE
    by_customer = {item["customer"]: item for item in history["items"]}
    assert by_customer["上海示例科技有限公司"]["owners_after"] == [BOB, ALICE]
    assert by_customer["没有这家公司"]["suggestion"] is not None
    assert [c["dataId"] for c in by_customer["深圳同名电子有限公司"]["suggestion"]] == [
        104,
        105,
    ]
    stored = synced.query(
        "SELECT COUNT(*) AS n FROM events WHERE instance_id = ?", "inst-1"
    )[0]["n"]
    assert len(history["events"]) == stored
    assert history["comment"]["state"] == "sent"
    assert history["comment"]["text"] == synced.sandbox.comments("inst-1")[0]


def test_history_of_a_manual_assignment_says_so(synced):
    store = Store(synced.db)
    with store.transaction():
        instance_id = store.create_manual_request("fzr assign by hand")
        store.add_items(instance_id, ["广州样板实业有限公司"], [ALICE], manual=True)
    store.close()

    run = synced("history", instance_id)

    assert run.code == 0
    assert "manual\tyes (fzr assign)" in run.stdout
    assert "pending (manual)" in run.stdout


def test_unknown_request_exits_4_with_a_clear_message(synced):
    run = synced("history", "no-such-request")

    assert run.code == 4
    assert run.stdout == ""
    assert run.stderr == (
        "fzr: no request 'no-such-request' in the state file; give "
        "the instance id or the business id (审批编号)\n"
    )


def test_bad_history_format_is_a_usage_error(synced):
    run = synced("history", "inst-1", "--format", "yaml")

    assert run.code == 2 and "--format: 'yaml' is not one of text, json" in run.stderr


def test_history_shows_no_secret(synced):
    run = synced("history", "inst-1", "--format", "json")

    for name in ("FZR_DINGTALK_APP_SECRET", "FZR_XBB_TOKEN"):
        assert synced.env[name] not in run.stdout + run.stderr
