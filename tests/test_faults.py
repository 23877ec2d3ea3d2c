"""Every failure class, injected into the sandbox, handled the one way errors.py says.

Each test breaks one thing, runs real passes over HTTP and asserts the exact handling:
what was retried and how often, what the operator reads on stderr, what stays pending,
and that the next pass finishes the work with every write applied exactly once.
"""

from __future__ import annotations

import time

import pytest
from builders import ALICE, approved, scenario

SHANGHAI, BEIJING = "上海示例科技有限公司", "北京示范贸易有限公司"
DONE = {("i-1", SHANGHAI): "assigned", ("i-2", BEIJING): "assigned"}
PENDING = {("i-1", SHANGHAI): "pending", ("i-2", BEIJING): "pending"}


def two_requests(**sections) -> dict:
    return scenario(
        approved("i-1", SHANGHAI), approved("i-2", BEIJING, created="-90m"), **sections
    )


def fault(service: str, api: str | None, kind: str, times=1, **params) -> dict:
    rule = {"service": service, "kind": kind, "times": times, **params}
    if api:
        rule["api"] = api
    return rule


def start(make_sandbox, make_fzr, *faults: dict, data: dict | None = None):
    sandbox = make_sandbox(data or two_requests())
    for rule in faults:
        sandbox.add_fault(rule)
    return sandbox, make_fzr(sandbox)


def assert_failed_cleanly(run, *words: str) -> None:
    """Exit 1, a message naming the problem, and never a traceback."""
    assert run.code == 1, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr
    for word in words:
        assert word in run.stderr, run.stderr


def assert_finished_exactly_once(sandbox, fzr, expected=DONE) -> None:
    """All work done, each (customer, owner) distributed once, one comment each."""
    assert fzr.items() == expected
    applied = [
        (data_id, user)
        for d in sandbox.distributions
        for data_id in d["dataIdList"]
        for user in d["userIds"]
    ]
    assert sorted(applied) == sorted(set(applied))
    assert (101, ALICE) in applied and (102, ALICE) in applied
    for instance_id in {key[0] for key in expected}:
        assert len(sandbox.comments(instance_id)) == 1


def next_pass_completes(sandbox, fzr, expected=DONE) -> None:
    sandbox.clear_faults()
    run = fzr("sync")
    assert run.code == 0, run.stderr
    assert_finished_exactly_once(sandbox, fzr, expected)


def states(fzr) -> dict[str, str]:
    return {r["instance_id"]: r["state"] for r in fzr.query("SELECT * FROM requests")}


# -- throttling ----------------------------------------------------------------------


def test_dingtalk_qps_throttle_is_retried_and_the_pass_completes(
    make_sandbox, make_fzr
):
    sandbox, fzr = start(
        make_sandbox,
        make_fzr,
        fault("dingtalk", "instances.list", "throttle"),
        fault("dingtalk", "instances.get", "throttle"),
    )

    run = fzr("sync")

    assert (run.code, run.stderr) == (0, "")
    assert_finished_exactly_once(sandbox, fzr)
    refused = [c for c in sandbox.calls if c.status == 403]
    assert [c.api for c in refused] == ["instances.list", "instances.get"]
    assert sandbox.count(api="instances.get") == 3


def test_crm_throttle_on_reads_and_writes_is_retried_and_completes(
    make_sandbox, make_fzr
):
    sandbox, fzr = start(
        make_sandbox,
        make_fzr,
        fault("xbb", "customer.list", "throttle"),
        fault("xbb", "customer.distribution", "throttle"),
    )

    run = fzr("sync")

    assert (run.code, run.stderr) == (0, "")
    assert_finished_exactly_once(sandbox, fzr)
    assert sandbox.count(api="customer.distribution") == 3
    assert len(sandbox.distributions) == 2
    for api in ("customer.list", "customer.distribution"):
        refused, retried = [c.at for c in sandbox.calls if c.api == api][:2]
        assert retried - refused >= 1.0  # held back for the throttle's pause


# -- server errors -------------------------------------------------------------------


def test_dingtalk_5xx_is_retried_four_times_then_left_for_next_pass(
    make_sandbox, make_fzr
):
    sandbox, fzr = start(
        make_sandbox,
        make_fzr,
        fault("dingtalk", "instances.get", "server_error", times=None),
    )

    run = fzr("sync")

    assert_failed_cleanly(run, "instance i-1 not fetched", "[systemError] (HTTP 500)")
    assert sandbox.count(api="instances.get") == 8
    assert states(fzr) == {"i-1": "seen", "i-2": "seen"}
    assert sandbox.count(service="xbb") == 0
    next_pass_completes(sandbox, fzr)


def test_persistent_listing_5xx_stops_the_pass_and_keeps_no_cursor(
    make_sandbox, make_fzr
):
    sandbox, fzr = start(
        make_sandbox,
        make_fzr,
        fault("dingtalk", "instances.list", "server_error", times=None),
    )

    run = fzr("sync")

    assert_failed_cleanly(run, "pass stopped", "instances.list", "HTTP 500")
    assert sandbox.count(api="instances.list") == 4
    assert fzr.query("SELECT * FROM state WHERE key = 'scan'") == []
    assert fzr.query("SELECT * FROM requests") == []
    next_pass_completes(sandbox, fzr)


def test_persistent_crm_5xx_on_reads_leaves_items_pending(make_sandbox, make_fzr):
    sandbox, fzr = start(
        make_sandbox,
        make_fzr,
        fault("xbb", "customer.list", "server_error", times=None),
    )

    run = fzr("sync")

    assert_failed_cleanly(
        run, "CRM work left pending", "customer.list (HTTP 502): CRM gateway error"
    )
    assert sandbox.count(api="customer.list") == 4
    assert fzr.items() == PENDING
    assert sandbox.comments("i-1") == []
    next_pass_completes(sandbox, fzr)


def test_crm_5xx_on_distribution_leaves_item_pending_with_exit_1(
    make_sandbox, make_fzr
):
    sandbox, fzr = start(
        make_sandbox,
        make_fzr,
        fault("xbb", "customer.distribution", "server_error", times=None),
    )

    run = fzr("sync")

    assert_failed_cleanly(run, "CRM work left pending", "CRM gateway error")
    assert fzr.items() == PENDING
    assert sandbox.distributions == []
    next_pass_completes(sandbox, fzr)


# -- the access token ----------------------------------------------------------------


def test_token_revoked_mid_fetch_is_renewed_once_and_the_pass_completes(
    make_sandbox, make_fzr
):
    instances = [approved(f"i-{n}", SHANGHAI, created=f"-{n + 60}m") for n in range(8)]
    data = scenario(*instances, limits={"latency_ms": 40})
    sandbox, fzr = start(
        make_sandbox,
        make_fzr,
        fault("dingtalk", "instances.get", "token_invalid", after=2),
        data=data,
    )

    run = fzr("sync")

    assert run.code == 0, run.stderr
    assert sandbox.count(api="token") == 2
    assert set(states(fzr).values()) == {"done"}
    assert len(sandbox.distributions) == 1


def test_token_refused_again_after_renewal_stops_without_hammering(
    make_sandbox, make_fzr
):
    sandbox, fzr = start(
        make_sandbox,
        make_fzr,
        fault("dingtalk", "instances.list", "token_invalid", times=None),
    )

    run = fzr("sync")

    assert_failed_cleanly(run, "pass stopped", "access token")
    assert sandbox.count(api="token") == 2
    assert sandbox.count(api="instances.list") == 2
    assert sandbox.count(service="xbb") == 0
    next_pass_completes(sandbox, fzr)


# -- IP bans -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ip_ban_html", "punish"])
@pytest.mark.parametrize(
    "service, api",
    [
        ("dingtalk", "instances.list"),
        ("dingtalk", "instances.get"),
        ("xbb", "user.list"),
        ("xbb", "customer.list"),
    ],
)
def test_ip_ban_stops_the_pass_at_once_and_the_next_resumes(
    make_sandbox, make_fzr, service, api, kind
):
    sandbox, fzr = start(make_sandbox, make_fzr, fault(service, api, kind, times=None))
    before = sandbox.count(api=api)

    run = fzr("sync")

    assert_failed_cleanly(run, "pass stopped", "banned", "next one resumes")
    banned = sandbox.count(api=api) - before
    assert banned <= (2 if api == "instances.get" else 1)  # two fetches in flight
    assert sandbox.distributions == []
    assert all(s in ("seen", "active") for s in states(fzr).values())
    assert set(fzr.items().values()) <= {"pending"}
    next_pass_completes(sandbox, fzr)


def test_ip_ban_page_with_error_status_is_still_a_ban(make_sandbox, make_fzr):
    sandbox, fzr = start(
        make_sandbox,
        make_fzr,
        fault("dingtalk", "instances.list", "ip_ban_html", times=None, status=403),
    )

    run = fzr("sync")

    assert_failed_cleanly(run, "pass stopped", "banned")
    assert sandbox.count(api="instances.list") == 1
    next_pass_completes(sandbox, fzr)


# -- the network ---------------------------------------------------------------------


def test_dropped_connections_on_reads_are_retried_within_the_pass(
    make_sandbox, make_fzr
):
    sandbox, fzr = start(
        make_sandbox,
        make_fzr,
        fault("dingtalk", "token", "drop"),
        fault("dingtalk", "instances.list", "drop"),
        fault("dingtalk", "instances.get", "drop"),
        fault("xbb", "user.list", "drop"),
        fault("xbb", "customer.list", "drop"),
    )

    run = fzr("sync")

    assert (run.code, run.stderr) == (0, "")
    assert_finished_exactly_once(sandbox, fzr)
    assert len([c for c in sandbox.calls if c.status == 0]) == 5


def test_dropped_distribution_is_read_back_never_resent_blindly(make_sandbox, make_fzr):
    sandbox, fzr = start(
        make_sandbox, make_fzr, fault("xbb", "customer.distribution", "drop")
    )

    run = fzr("sync")

    assert_failed_cleanly(run, "CRM work left pending", "network error")
    assert fzr.items() == {("i-1", SHANGHAI): "pending", ("i-2", BEIJING): "assigned"}
    assert sandbox.count(api="customer.distribution") == 2
    next_pass_completes(sandbox, fzr)


def test_write_lost_after_applying_is_read_back_as_assigned(make_sandbox, make_fzr):
    sandbox, fzr = start(
        make_sandbox, make_fzr, fault("xbb", "customer.distribution", "write_lost")
    )

    run = fzr("sync")

    assert run.code == 0, run.stderr
    assert_finished_exactly_once(sandbox, fzr)
    assert sandbox.count(api="customer.distribution") == 2


def test_comment_whose_answer_is_lost_is_not_posted_twice(make_sandbox, make_fzr):
    sandbox, fzr = start(
        make_sandbox, make_fzr, fault("dingtalk", "comments.add", "write_lost")
    )

    run = fzr("sync")

    assert_failed_cleanly(run, "comments.add", "network error")
    assert fzr.items() == DONE
    next_pass_completes(sandbox, fzr)
    assert sandbox.count(api="comments.add") == 2


def test_slow_answers_within_the_timeouts_complete(make_sandbox, make_fzr):
    sandbox, fzr = start(
        make_sandbox,
        make_fzr,
        fault("dingtalk", "instances.get", "slow", delay_s=0.5),
        fault("xbb", "customer.list", "slow", delay_s=0.5),
        fault("xbb", "customer.distribution", "slow", delay_s=0.5),
    )

    run = fzr("sync")

    assert (run.code, run.stderr) == (0, "")
    assert_finished_exactly_once(sandbox, fzr)


def test_pass_ends_near_its_time_budget_with_work_left_pending(make_sandbox, make_fzr):
    sandbox, fzr = start(
        make_sandbox,
        make_fzr,
        fault("xbb", "customer.list", "slow", times=None, delay_s=3),
    )

    began = time.monotonic()
    run = fzr("sync", FZR_PASS_TIMEOUT="2")
    took = time.monotonic() - began

    assert_failed_cleanly(run, "CRM work left pending")
    assert 1.5 < took < 5  # the budget (2 s) plus one slow answer at most
    assert fzr.items() == PENDING
    assert sandbox.distributions == []
    next_pass_completes(sandbox, fzr)


# -- listing -------------------------------------------------------------------------


def test_stuck_cursor_aborts_after_two_list_calls_marking_nothing(
    make_sandbox, make_fzr
):
    sandbox, fzr = start(
        make_sandbox, make_fzr, fault("dingtalk", None, "cursor_stuck", times=None)
    )

    run = fzr("sync")

    assert_failed_cleanly(run, "listing stopped", "nothing was marked done")
    assert sandbox.count(api="instances.list") == 2
    assert sandbox.count(api="instances.get") == 0
    assert fzr.query("SELECT * FROM requests WHERE state NOT IN ('open', 'seen')") == []
    assert fzr.query("SELECT * FROM state WHERE key = 'scan'") == []
    next_pass_completes(sandbox, fzr)


# -- refusals of one thing -----------------------------------------------------------


@pytest.mark.parametrize(
    "code, message",
    [(100001, "表单数据不存在或已删除"), (990004, "负责人不存在或已离职")],
    ids=["record-gone", "unknown-user"],
)
def test_crm_refusal_of_one_write_fails_that_item_with_the_crms_message(
    make_sandbox, make_fzr, code, message
):
    rule = fault("xbb", "customer.distribution", "xbb_error", code=code, msg=message)
    sandbox, fzr = start(make_sandbox, make_fzr, rule)

    run = fzr("sync")

    assert run.code == 0, run.stderr
    assert fzr.items() == {("i-1", SHANGHAI): "failed", ("i-2", BEIJING): "assigned"}
    reason = fzr.query("SELECT reason FROM items WHERE status = 'failed'")[0]["reason"]
    assert message in reason and str(code) in reason
    assert sandbox.count(api="customer.distribution") == 2
    assert "失败" in sandbox.comments("i-1")[0]


def test_new_owner_without_crm_account_fails_only_that_request(make_sandbox, make_fzr):
    data = scenario(
        approved("i-1", SHANGHAI, new=("ghost-user",)),
        approved("i-2", BEIJING, created="-90m"),
    )
    sandbox, fzr = start(make_sandbox, make_fzr, data=data)

    run = fzr("sync")

    assert run.code == 0, run.stderr
    assert fzr.items() == {("i-1", SHANGHAI): "failed", ("i-2", BEIJING): "assigned"}
    reason = fzr.query("SELECT reason FROM items WHERE status = 'failed'")[0]["reason"]
    assert "ghost-user" in reason and "not an active CRM user" in reason
    assert [d["dataIdList"] for d in sandbox.distributions] == [[102]]


# -- what only the admin can fix -----------------------------------------------------


ADMIN_FIXES = [
    (
        fault("dingtalk", "instances.list", "permission_denied", times=None),
        ["lacks a permission", "Workflow.Instance.Read"],
    ),
    (
        fault("dingtalk", "instances.list", "ip_not_whitelisted", times=None),
        ["whitelist"],
    ),
    (
        fault("dingtalk", "instances.list", "quota_exhausted", times=None),
        ["monthly DingTalk API quota"],
    ),
    (
        fault("dingtalk", "token", "bad_credentials", times=None),
        ["FZR_DINGTALK_APP_SECRET"],
    ),
    (fault("xbb", "user.list", "bad_credentials", times=None), ["FZR_XBB_TOKEN"]),
    (
        fault("xbb", "customer.distribution", "permission_denied", times=None),
        ["FZR_XBB_USER_ID", "permission"],
    ),
]


@pytest.mark.parametrize(
    "rule, words",
    ADMIN_FIXES,
    ids=[f"{r['service']}-{r['kind']}" for r, _ in ADMIN_FIXES],
)
def test_admin_fixable_refusal_aborts_naming_the_fix(
    make_sandbox, make_fzr, rule, words
):
    sandbox, fzr = start(make_sandbox, make_fzr, rule)

    run = fzr("sync")

    assert_failed_cleanly(run, "pass stopped", *words)
    assert sandbox.count(api=rule["api"]) == 1
    assert [c.api for c in sandbox.calls].index(rule["api"]) == len(sandbox.calls) - 1
    assert set(fzr.items().values()) <= {"pending", "writing"}
    assert sandbox.distributions == []
    if rule["kind"] == "quota_exhausted":  # paused for an hour unless asked
        sandbox.clear_faults()
        assert fzr("sync", "--since", "yesterday").code == 0
    next_pass_completes(sandbox, fzr)


def test_missing_comment_permission_aborts_after_the_crm_work(make_sandbox, make_fzr):
    sandbox, fzr = start(
        make_sandbox,
        make_fzr,
        fault("dingtalk", "comments.add", "permission_denied", times=None),
    )

    run = fzr("sync")

    assert_failed_cleanly(run, "Workflow.Instance.Write")
    assert sandbox.count(api="comments.add") <= 2  # both were in flight at once
    assert fzr.items() == DONE
    next_pass_completes(sandbox, fzr)


# -- answers that are not what the API documents -------------------------------------


GARBLED = [
    ("dingtalk", "token", "malformed_json", "not a JSON object"),
    ("dingtalk", "token", "wrong_shape", "malformed token answer"),
    ("dingtalk", "instances.list", "malformed_json", "not a JSON object"),
    ("dingtalk", "instances.list", "wrong_shape", "no list of instance ids"),
    ("dingtalk", "instances.get", "malformed_json", "not a JSON object"),
    ("dingtalk", "instances.get", "wrong_shape", "mistyped formComponentValues"),
    ("dingtalk", "comments.add", "malformed_json", "not a JSON object"),
    ("xbb", "user.list", "malformed_json", "not JSON"),
    ("xbb", "user.list", "wrong_shape", "no userList"),
    ("xbb", "customer.list", "malformed_json", "not JSON"),
    ("xbb", "customer.list", "wrong_shape", "no list of customers"),
    ("xbb", "customer.distribution", "malformed_json", "not JSON"),
]
# answers shaped wrong in ways the generic garbling does not reach
ODD_BODIES = {
    "instances.list": (
        {"result": {"list": [101, 102]}, "success": True},
        "no list of instance ids",
    ),
    "instances.get": (
        {
            "result": {"status": ["COMPLETED"], "formComponentValues": []},
            "success": "true",
        },
        "mistyped status",
    ),
    "customer.list": (
        {
            "code": 1,
            "success": True,
            "result": {
                "list": [
                    {"dataId": "101", "data": {"text_1": SHANGHAI, "ownerId": "[]"}}
                ]
            },
        },
        "without an integer dataId",
    ),
}


def assert_nothing_skipped(sandbox, fzr) -> None:
    """The affected requests wait as fetched-or-not; no item was decided on a guess."""
    assert all(s in ("seen", "active", "done") for s in states(fzr).values())
    assert set(fzr.items().values()) <= {"pending", "assigned"}
    next_pass_completes(sandbox, fzr)


@pytest.mark.parametrize(
    "service, api, kind, words",
    GARBLED,
    ids=[f"{api}-{kind}" for _, api, kind, _ in GARBLED],
)
def test_garbled_answer_is_a_clear_error_and_nothing_is_skipped(
    make_sandbox, make_fzr, service, api, kind, words
):
    sandbox, fzr = start(make_sandbox, make_fzr, fault(service, api, kind, times=None))

    run = fzr("sync")

    assert_failed_cleanly(run, api, words)
    assert_nothing_skipped(sandbox, fzr)


@pytest.mark.parametrize("api", ODD_BODIES)
def test_answer_with_mistyped_fields_is_a_clear_error(make_sandbox, make_fzr, api):
    body, words = ODD_BODIES[api]
    service = "xbb" if api.startswith("customer") else "dingtalk"
    sandbox, fzr = start(
        make_sandbox,
        make_fzr,
        fault(service, api, "wrong_shape", times=None, body=body),
    )

    run = fzr("sync")

    assert_failed_cleanly(run, api, words)
    assert_nothing_skipped(sandbox, fzr)


def test_garbled_answer_to_an_applied_write_is_read_back(make_sandbox, make_fzr):
    sandbox, fzr = start(
        make_sandbox,
        make_fzr,
        fault("xbb", "customer.distribution", "wrong_shape", times=None),
        fault("dingtalk", "comments.add", "wrong_shape", times=None),
    )

    run = fzr("sync")

    assert run.code == 0, run.stderr
    assert_finished_exactly_once(sandbox, fzr)
