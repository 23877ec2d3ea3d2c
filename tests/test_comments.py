"""The comment back on each approval: content, length, and once only."""

from __future__ import annotations

import json

from builders import ALICE, approved, scenario

from fzrcli.comments import LIMIT, compose_invalid, compose_result
from fzrcli.store import Item


def item(customer: str, status: str, reason: str = "", suggestion=None) -> Item:
    return Item(
        id=1,
        instance_id="i",
        customer=customer,
        new_owner_id=ALICE,
        status=status,
        reason=reason,
        attempts=1,
        manual=False,
        data_id=None,
        owners_before=None,
        suggestion=json.dumps(suggestion, ensure_ascii=False)
        if suggestion is not None
        else None,
    )


def test_misspelled_customer_gets_close_names_as_suggestions(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示列科技有限公司")))
    fzr = make_fzr(sandbox)

    fzr("sync")

    row = fzr.query("SELECT status, suggestion FROM items")[0]
    assert row["status"] == "not_found"
    assert "上海示例科技有限公司" in json.loads(row["suggestion"])
    comment = sandbox.comments("i-1")[0]
    assert (
        "上海示列科技有限公司：CRM 中未找到该客户，相近客户：上海示例科技有限公司"
        in comment
    )


def test_invalid_request_comment_names_the_field(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司", new=())))
    fzr = make_fzr(sandbox)

    fzr("sync")

    comments = sandbox.comments("i-1")
    assert len(comments) == 1
    assert "字段「需添加的负责人」无法读取" in comments[0]
    assert "未做任何修改" in comments[0]


def test_every_outcome_reads_plainly():
    text = compose_result(
        [
            item("甲公司", "assigned"),
            item("乙公司", "already_owner"),
            item("丙公司", "not_found", suggestion=["丙丙公司"]),
            item(
                "丁公司",
                "ambiguous",
                suggestion=[
                    {"dataId": 7, "name": "丁公司"},
                    {"dataId": 8, "name": "丁公司"},
                ],
            ),
            item("戊公司", "unverified"),
            item("己公司", "failed", reason="CRM refused: 没有该操作的权限"),
        ],
        {ALICE: "王小明"},
    )

    assert text.splitlines() == [
        "【fzr】客户共管处理结果：已添加 1 个，原已是负责人 1 个，未找到 1 个，"
        "有重名 1 个，负责人不符 1 个，失败 1 个",
        "· 己公司：处理失败（CRM refused: 没有该操作的权限）",
        "· 丙公司：CRM 中未找到该客户，相近客户：丙丙公司",
        "· 丁公司：CRM 中有多个同名客户，未处理：丁公司（编号 7）、丁公司（编号 8）",
        "· 戊公司：所选现负责人并非该客户负责人，未处理",
        "· 甲公司：已添加 王小明 为负责人",
        "· 乙公司：王小明 原已是负责人，无需添加",
    ]


def test_long_results_are_summarised_within_the_limit():
    items = [item(f"示例客户{n:03d}有限责任公司", "assigned") for n in range(200)]

    text = compose_result(items, {})

    assert len(text) <= LIMIT
    assert text.startswith("【fzr】客户共管处理结果：已添加 200 个")
    listed = [line for line in text.splitlines() if line.startswith("·")]
    hidden = 200 - len(listed)
    assert text.endswith(f"……另有 {hidden} 项未列出，请联系管理员查看详情")
    assert hidden > 0


def test_invalid_comment_is_cut_to_the_limit():
    assert len(compose_invalid("customers", "x" * 5000)) == LIMIT


def test_comment_failure_does_not_undo_crm_work(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
    sandbox.add_fault(
        {
            "service": "dingtalk",
            "api": "comments.add",
            "kind": "server_error",
            "times": None,
        }
    )
    fzr = make_fzr(sandbox)

    run = fzr("sync")

    assert run.code == 1
    assert fzr.items() == {("i-1", "上海示例科技有限公司"): "assigned"}
    sandbox.clear_faults()
    fzr("sync")
    assert len(sandbox.comments("i-1")) == 1


def test_items_to_act_on_come_first_and_survive_summarising():
    items = [item(f"示例客户{n:03d}有限责任公司", "assigned") for n in range(60)]
    items.append(item("不存在的公司", "not_found"))

    text = compose_result(items, {})

    assert len(text) <= LIMIT
    assert text.splitlines()[1] == "· 不存在的公司：CRM 中未找到该客户"


def test_one_very_long_name_is_cut_and_nothing_is_claimed_left_out():
    text = compose_result([item("长" * 3000, "not_found")], {})

    assert len(text) <= LIMIT
    assert "另有 0 项" not in text
    assert text.splitlines()[1] == "· " + "长" * 59 + "…：CRM 中未找到该客户"


def test_refused_comment_user_costs_one_call_a_pass(make_sandbox, make_fzr):
    sandbox = make_sandbox(
        scenario(
            approved("i-1", "上海示例科技有限公司"),
            approved("i-2", "北京示范贸易有限公司"),
        )
    )
    fzr = make_fzr(sandbox)

    first = fzr("sync", FZR_COMMENT_USER_ID="ghost-user")

    assert first.code == 1 and "FZR_COMMENT_USER_ID" in first.stderr
    assert sandbox.count(api="comments.add") == 1
    sandbox.reset_calls()

    again = fzr("sync", FZR_COMMENT_USER_ID="ghost-user")

    assert again.code == 1
    assert sandbox.count(api="comments.add") == 1
    assert sandbox.count(api="instances.get") == 0
    fzr("sync")
    assert [len(sandbox.comments(i)) for i in ("i-1", "i-2")] == [1, 1]
