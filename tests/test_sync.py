"""`fzr sync` end to end: real HTTP to the sandbox, a real SQLite file."""

from __future__ import annotations

from builders import ALICE, BOB, BOT, CAROL, DAVE, approved, running, scenario

from fzrcli.store import Store


def metered(sandbox) -> int:
    return sandbox.count(service="dingtalk", metered=True)


def test_approved_request_adds_owner_and_reads_it_back(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
    fzr = make_fzr(sandbox)

    run = fzr("sync")

    assert run.code == 0, run.stderr
    assert "1 assigned" in run.stdout
    assert sandbox.customer(101)["owners"] == [BOB, ALICE]
    assert fzr.items() == {("i-1", "上海示例科技有限公司"): "assigned"}
    assert sandbox.count(api="customer.distribution") == 1


def test_each_outcome_is_recorded_per_customer(make_sandbox, make_fzr):
    messy = (
        "上海示例科技有限公司\r\n 北京示范贸易有限公司\u200b，不存在的公司｜"
        "深圳同名电子有限公司|广州样板实业有限公司\n成都已有客户有限公司\n\n"
    )
    sandbox = make_sandbox(scenario(approved("i-1", messy)))
    fzr = make_fzr(sandbox)

    run = fzr("sync")

    assert run.code == 0, run.stderr
    assert fzr.items() == {
        ("i-1", "上海示例科技有限公司"): "assigned",
        ("i-1", "北京示范贸易有限公司"): "assigned",
        ("i-1", "不存在的公司"): "not_found",
        ("i-1", "深圳同名电子有限公司"): "ambiguous",
        ("i-1", "广州样板实业有限公司"): "unverified",
        ("i-1", "成都已有客户有限公司"): "already_owner",
    }
    assert sandbox.customer(103)["owners"] == [CAROL]
    assert sandbox.customer(104)["owners"] == [BOB]
    assert sandbox.customer(105)["owners"] == [CAROL]


def test_ambiguous_item_lists_both_candidates(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario(approved("i-1", "深圳同名电子有限公司")))
    fzr = make_fzr(sandbox)

    fzr("sync")

    row = fzr.query("SELECT reason, suggestion FROM items")[0]
    assert "104" in row["reason"] and "105" in row["reason"]
    assert '"dataId": 104' in row["suggestion"] and '"dataId": 105' in row["suggestion"]


def test_pool_customer_is_unverified_with_its_own_reason(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario(approved("i-1", "杭州公海物流有限公司")))
    fzr = make_fzr(sandbox)

    fzr("sync")

    row = fzr.query("SELECT status, reason FROM items")[0]
    assert row["status"] == "unverified"
    assert "public pool" in row["reason"]
    assert sandbox.customer(106)["owners"] == []


def test_every_picked_new_owner_is_added(make_sandbox, make_fzr):
    instance = approved("i-1", "上海示例科技有限公司", new=(ALICE, DAVE))
    sandbox = make_sandbox(scenario(instance))
    fzr = make_fzr(sandbox)

    fzr("sync")

    assert sorted(sandbox.customer(101)["owners"]) == sorted([BOB, ALICE, DAVE])
    assert len(fzr.query("SELECT * FROM items WHERE status = 'assigned'")) == 2


def test_refused_terminated_and_running_are_never_acted_on(make_sandbox, make_fzr):
    refused = approved("i-r", "上海示例科技有限公司", result="refuse")
    withdrawn = approved("i-t", "上海示例科技有限公司", status="TERMINATED")
    sandbox = make_sandbox(
        scenario(refused, withdrawn, running("i-o", "上海示例科技有限公司"))
    )
    fzr = make_fzr(sandbox)

    fzr("sync")

    states = {r["instance_id"]: r["state"] for r in fzr.query("SELECT * FROM requests")}
    assert states == {"i-r": "refused", "i-t": "terminated", "i-o": "open"}
    assert fzr.query("SELECT * FROM items") == []
    assert sandbox.count(api="customer.distribution") == 0
    assert sandbox.count(api="instances.get") == 2  # the running one is not fetched


def test_approval_with_missing_field_is_invalid_not_empty(make_sandbox, make_fzr):
    no_customers = approved("i-1", None)
    no_claim = approved("i-2", "上海示例科技有限公司", omit_fields=["current_owners"])
    sandbox = make_sandbox(scenario(no_customers, no_claim))
    fzr = make_fzr(sandbox)

    run = fzr("sync")

    assert run.code == 0, run.stderr
    rows = {r["instance_id"]: r for r in fzr.query("SELECT * FROM requests")}
    assert rows["i-1"]["state"] == "invalid"
    assert rows["i-1"]["reason"].startswith("customers:")
    assert rows["i-2"]["state"] == "invalid"
    assert rows["i-2"]["reason"].startswith("current_owner:")
    assert fzr.query("SELECT * FROM items") == []


def test_idle_pass_costs_one_metered_call_and_prints_nothing(make_sandbox, make_fzr):
    sandbox = make_sandbox(
        scenario(
            approved("i-1", "上海示例科技有限公司"),
            running("i-2", "北京示范贸易有限公司"),
        )
    )
    fzr = make_fzr(sandbox)
    fzr("sync")

    for _ in range(4):
        sandbox.reset_calls()
        run = fzr("sync")
        assert (run.code, run.stdout, run.stderr) == (0, "", "")
        assert metered(sandbox) == 1
        assert sandbox.count(service="xbb") == 0


def test_pass_after_complete_pass_makes_no_crm_writes(make_sandbox, make_fzr):
    sandbox = make_sandbox(
        scenario(approved("i-1", "上海示例科技有限公司\n不存在的公司"))
    )
    fzr = make_fzr(sandbox)
    fzr("sync")
    sandbox.reset_calls()

    fzr("sync")
    fzr("sync")

    assert sandbox.count(api="customer.distribution") == 0
    assert sandbox.count(api="instances.get") == 0


def test_request_approved_days_later_is_found_and_fetched_once(make_sandbox, make_fzr):
    sandbox = make_sandbox(
        scenario(running("i-late", "上海示例科技有限公司", created="-20h"))
    )
    fzr = make_fzr(sandbox)
    fzr("sync")
    assert sandbox.count(api="instances.get") == 0

    sandbox.finish_instance("i-late", result="agree")
    fzr("sync")
    fzr("sync")
    fzr("sync")

    assert fzr.items() == {("i-late", "上海示例科技有限公司"): "assigned"}
    gets = [c for c in sandbox.calls if c.api == "instances.get"]
    assert len(gets) == 1


def test_request_submitted_and_approved_between_passes_is_found(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)
    fzr("sync")

    sandbox.add_instance(
        **approved("i-fast", "上海示例科技有限公司", created="now", finished="now")
    )
    fzr("sync")
    fzr("sync")

    assert fzr.items() == {("i-fast", "上海示例科技有限公司"): "assigned"}


def test_access_token_is_cached_across_runs_and_sealed(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
    fzr = make_fzr(sandbox)

    fzr("sync")
    fzr("sync")

    assert sandbox.count(api="token") == 1
    token_calls = [c for c in sandbox.calls if c.api == "token"]
    assert token_calls and not token_calls[0].metered
    raw = fzr.db.read_bytes()
    assert b"sandbox-app-secret" not in raw


def test_listing_follows_string_next_token_over_many_pages(make_sandbox, make_fzr):
    instances = [
        approved(f"i-{n:02d}", "上海示例科技有限公司", created=f"-{n + 60}m")
        for n in range(45)
    ]
    for last_page in ("absent", "empty", "null"):
        sandbox = make_sandbox(
            scenario(
                *instances, comments=False, dingtalk={"last_page_token": last_page}
            )
        )
        fzr = make_fzr(sandbox)

        run = fzr("sync")

        assert run.code == 0, run.stderr
        assert len(fzr.query("SELECT * FROM requests WHERE state = 'done'")) == 45
        assert sandbox.count(api="instances.get") == 45


def test_replaced_owners_stop_all_writes_until_resumed(make_sandbox, make_fzr):
    sandbox = make_sandbox(
        scenario(
            approved("i-1", "上海示例科技有限公司"),
            approved("i-2", "北京示范贸易有限公司", created="-90m"),
            xbb={"distribution": "replace"},
        )
    )
    fzr = make_fzr(sandbox)

    run = fzr("sync")

    assert run.code == 1
    assert "halted" in run.stderr
    statuses = sorted(fzr.items().values())
    assert statuses == ["failed", "pending"]
    failed = fzr.query("SELECT reason FROM items WHERE status = 'failed'")[0]
    assert BOB in failed["reason"]
    assert sandbox.count(api="customer.distribution") == 1

    again = fzr("sync")
    assert again.code == 1 and "--resume-writes" in again.stderr
    assert sandbox.count(api="customer.distribution") == 1


def test_dry_run_shows_writes_and_makes_none(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
    fzr = make_fzr(sandbox)

    run = fzr("sync", "--dry-run")

    assert run.code == 0, run.stderr
    assert "上海示例科技有限公司" in run.stdout and "101" in run.stdout
    assert sandbox.count(api="customer.distribution") == 0
    assert sandbox.comments("i-1") == []
    assert fzr.items() == {("i-1", "上海示例科技有限公司"): "pending"}

    fzr("sync")
    assert fzr.items() == {("i-1", "上海示例科技有限公司"): "assigned"}


def test_fetch_lists_pending_work_without_crm_calls(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
    fzr = make_fzr(sandbox)

    run = fzr("fetch")

    assert run.code == 0, run.stderr
    assert "上海示例科技有限公司" in run.stdout and "pending" in run.stdout
    assert sandbox.count(service="xbb") == 0


def test_second_pass_while_one_runs_exits_promptly(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
    fzr = make_fzr(sandbox)
    fzr("sync", "--dry-run")
    holder = Store(fzr.db)
    holder.acquire_pass_lock()
    sandbox.reset_calls()
    try:
        run = fzr("sync")
    finally:
        holder.close()

    assert run.code == 3
    assert "another fzr pass is running" in run.stderr
    assert sandbox.calls == []
    assert fzr.items() == {("i-1", "上海示例科技有限公司"): "pending"}


def test_since_rescan_does_not_redo_finished_work(make_sandbox, make_fzr):
    old = approved("i-old", "北京示范贸易有限公司", created="-3d", finished="-3d")
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司"), old))
    fzr = make_fzr(sandbox)
    fzr("sync")
    assert ("i-old", "北京示范贸易有限公司") not in fzr.items()
    sandbox.reset_calls()

    run = fzr("sync", "--since", "5d")

    assert run.code == 0, run.stderr
    assert fzr.items()[("i-old", "北京示范贸易有限公司")] == "assigned"
    fetched = {
        c.request.get("processInstanceId")
        for c in sandbox.calls
        if c.api == "instances.get" and c.request
    }
    assert "i-1" not in fetched


def test_bad_since_value_is_a_usage_error(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)

    run = fzr("sync", "--since", "last tuesday")

    assert run.code == 2
    assert "--since" in run.stderr and "Traceback" not in run.stderr
    assert sandbox.calls == []


def test_transient_crm_failure_leaves_items_pending_then_completes(
    make_sandbox, make_fzr
):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
    sandbox.add_fault(
        {
            "service": "xbb",
            "api": "customer.list",
            "kind": "server_error",
            "times": None,
        }
    )
    fzr = make_fzr(sandbox)

    first = fzr("sync")

    assert first.code == 1
    assert fzr.items() == {("i-1", "上海示例科技有限公司"): "pending"}
    sandbox.clear_faults()
    fzr("sync")
    assert fzr.items() == {("i-1", "上海示例科技有限公司"): "assigned"}


def test_runs_table_records_calls_per_service(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
    fzr = make_fzr(sandbox)

    fzr("sync")

    run = fzr.query("SELECT * FROM runs")[0]
    assert run["exit_status"] == 0 and run["ended_at"]
    assert run["dingtalk_metered"] == metered(sandbox)
    assert run["xbb_calls"] == sandbox.count(service="xbb")
    assert run["xbb_writes"] == 1


def test_comment_user_unset_means_no_comments(make_sandbox, make_fzr):
    sandbox = make_sandbox(
        scenario(approved("i-1", "上海示例科技有限公司"), comments=False)
    )
    fzr = make_fzr(sandbox)

    fzr("sync")

    assert sandbox.count(api="comments.add") == 0
    assert fzr.items() == {("i-1", "上海示例科技有限公司"): "assigned"}


def test_comment_lists_each_customer_once(make_sandbox, make_fzr):
    sandbox = make_sandbox(
        scenario(approved("i-1", "上海示例科技有限公司\n不存在的公司"))
    )
    fzr = make_fzr(sandbox)

    fzr("sync")
    fzr("sync")

    comments = sandbox.comments("i-1")
    assert len(comments) == 1
    assert "上海示例科技有限公司：已添加 王小明" in comments[0]
    assert "不存在的公司：CRM 中未找到该客户" in comments[0]
    posts = [c.request for c in sandbox.calls if c.api == "comments.add"]
    assert [p["commentUserId"] for p in posts] == [BOT]


def test_wrong_field_setting_is_caught_on_the_form_before_listing(
    make_sandbox, make_fzr
):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
    fzr = make_fzr(sandbox)

    wrong = fzr("sync", FZR_FIELD_CUSTOMERS="客户名")

    assert wrong.code == 1
    assert "FZR_FIELD_CUSTOMERS=客户名 matches no field of the form" in wrong.stderr
    assert "客户名称 [TextareaField_" in wrong.stderr  # what the form does have
    assert sandbox.count(api="instances.list") == 0
    assert fzr.query("SELECT * FROM requests") == []

    fixed = fzr("sync")

    assert fixed.code == 0, fixed.stderr
    assert fzr.items() == {("i-1", "上海示例科技有限公司"): "assigned"}
    assert sandbox.count(api="forms.schema") == 2  # once per change of settings


def test_wrong_process_code_is_named(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)

    run = fzr("sync", FZR_PROCESS_CODE="PROC-NOPE")

    assert run.code == 1
    assert "FZR_PROCESS_CODE PROC-NOPE is not an approval form" in run.stderr


def test_unreadable_fields_wait_for_the_settings_fix_without_schema_access(
    make_sandbox, make_fzr
):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
    sandbox.add_fault(
        {
            "service": "dingtalk",
            "api": "forms.schema",
            "kind": "permission_denied",
            "times": None,
        }
    )
    fzr = make_fzr(sandbox)

    wrong = fzr("sync", FZR_FIELD_CUSTOMERS="客户名")

    assert wrong.code == 1
    assert "FZR_FIELD_CUSTOMERS matches no field of their form" in wrong.stderr
    assert sandbox.comments("i-1") == []
    assert fzr.query("SELECT state FROM requests")[0]["state"] == "unmatched"
    sandbox.reset_calls()

    fixed = fzr("sync")

    assert fixed.code == 0, fixed.stderr
    assert fzr.items() == {("i-1", "上海示例科技有限公司"): "assigned"}
    assert sandbox.count(api="instances.get") == 0  # read from the stored copy
    assert len(sandbox.comments("i-1")) == 1
    request = fzr.query("SELECT state, reason FROM requests")[0]
    assert (request["state"], request["reason"]) == ("done", None)


def test_label_on_two_fields_waits_for_a_settings_fix_not_the_requester(
    make_sandbox, make_fzr
):
    customers = {
        "id": "TextareaField_A",
        "name": "客户名称",
        "value": "上海示例科技有限公司",
        "componentType": "TextareaField",
    }
    person = '[{"emplId": "%s", "name": "x"}]'
    form = [
        customers,
        {**customers, "id": "TextareaField_B"},
        {
            "id": "InnerContactField_1R9B45BYVYE80",
            "name": "需添加的负责人",
            "componentType": "InnerContactField",
            "value": "王小明",
            "extValue": person % ALICE,
        },
        {
            "id": "InnerContactField_0QW7Z1C3XYZ40",
            "name": "选择任意当前客户负责人",
            "componentType": "InnerContactField",
            "value": "李四",
            "extValue": person % BOB,
        },
    ]
    sandbox = make_sandbox(scenario(approved("i-1", None, form=form)))
    fzr = make_fzr(sandbox)

    run = fzr("sync")

    assert run.code == 1
    assert "label 客户名称 is ambiguous" in run.stderr
    assert fzr.query("SELECT state FROM requests")[0]["state"] == "unmatched"
    assert sandbox.comments("i-1") == []


def test_name_typed_with_half_width_brackets_finds_the_crm_spelling(
    make_sandbox, make_fzr
):
    customers = [
        {"dataId": 301, "name": "北京（中国）科技有限公司", "owners": [BOB]},
        {"dataId": 302, "name": "ＡＢＣ贸易有限公司", "owners": [BOB]},
    ]
    sandbox = make_sandbox(
        scenario(
            approved("i-1", "北京(中国)科技有限公司\nABC贸易有限公司"),
            customers=customers,
        )
    )
    fzr = make_fzr(sandbox)

    fzr("sync")

    assert fzr.items() == {
        ("i-1", "北京(中国)科技有限公司"): "assigned",
        ("i-1", "ABC贸易有限公司"): "assigned",
    }


def test_used_up_quota_pauses_dingtalk_calls_for_an_hour(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
    fzr = make_fzr(sandbox)
    fzr("sync", "--dry-run")
    sandbox.add_fault({"service": "dingtalk", "kind": "quota_exhausted", "times": None})

    first = fzr("sync")

    assert first.code == 1
    assert "tries again once an hour" in first.stderr
    sandbox.reset_calls()

    fetched = fzr("fetch")

    assert fetched.code == 0
    assert "DingTalk quota used up; paused" in fetched.stderr
    assert sandbox.calls == []  # fetch never writes, paused or not

    paused = fzr("sync")

    assert paused.code == 0, paused.stderr
    assert fzr.items() == {("i-1", "上海示例科技有限公司"): "assigned"}
    assert sandbox.count(service="dingtalk") == 0

    quiet = fzr("sync")

    assert (quiet.code, quiet.stdout, quiet.stderr) == (0, "", "")
    assert sandbox.count(service="dingtalk") == 0


def test_refused_calls_count_against_the_quota_like_the_platform_bills_them(
    make_sandbox, make_fzr
):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
    sandbox.add_fault(
        {"service": "dingtalk", "api": "instances.get", "kind": "throttle"}
    )
    fzr = make_fzr(sandbox)

    run = fzr("sync", FZR_COMMENT_USER_ID="ghost-user")  # the comment is refused

    assert run.code == 1
    recorded = fzr.query("SELECT dingtalk_metered FROM runs")[0]["dingtalk_metered"]
    assert recorded == metered(sandbox) == sandbox.quota_used
