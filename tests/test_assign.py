"""`fzr assign`: one owner to one customer by hand, checked like sync."""

from __future__ import annotations

from builders import ALICE, BOB, CAROL, approved, scenario


def test_assign_by_name_adds_owner_and_records_it_as_manual(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)

    run = fzr("assign", "--customer", "广州样板实业有限公司", "--user", ALICE)

    assert run.code == 0, run.stderr
    assert "assigned: 广州样板实业有限公司 (dataId 103)" in run.stdout
    assert sandbox.customer(103)["owners"] == [CAROL, ALICE]
    item = fzr.query("SELECT * FROM items")[0]
    assert (item["status"], item["manual"], item["data_id"]) == ("assigned", 1, 103)
    assert fzr.query("SELECT command FROM runs")[0]["command"] == "assign"


def test_assign_refuses_an_ambiguous_name_listing_candidates(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)

    run = fzr("assign", "--customer", "深圳同名电子有限公司", "--user", ALICE)

    assert run.code == 4
    assert "dataId 104" in run.stderr and "dataId 105" in run.stderr
    assert "--id" in run.stderr
    assert sandbox.count(api="customer.distribution") == 0


def test_assign_by_id_succeeds_where_the_name_is_ambiguous(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)

    run = fzr("assign", "--id", "105", "--user", ALICE)

    assert run.code == 0, run.stderr
    assert sandbox.customer(105)["owners"] == [CAROL, ALICE]
    assert sandbox.customer(104)["owners"] == [BOB]


def test_assign_refuses_unknown_name_with_suggestions(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)

    run = fzr("assign", "--customer", "上海示例科技", "--user", ALICE)

    assert run.code == 4
    assert "上海示例科技有限公司" in run.stderr
    assert sandbox.count(api="customer.distribution") == 0


def test_assign_refuses_inactive_user(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)

    run = fzr("assign", "--id", "101", "--user", "nobody-here")

    assert run.code == 4
    assert "nobody-here is not an active CRM user" in run.stderr


def test_assign_dry_run_writes_nothing(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)

    run = fzr("assign", "--id", "101", "--user", ALICE, "--dry-run")

    assert run.code == 0, run.stderr
    assert "would add" in run.stdout
    assert sandbox.count(api="customer.distribution") == 0
    assert sandbox.customer(101)["owners"] == [BOB]


def test_assign_already_owner_is_a_no_op(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)

    run = fzr("assign", "--id", "107", "--user", ALICE)

    assert run.code == 0, run.stderr
    assert "already owner" in run.stdout
    assert sandbox.count(api="customer.distribution") == 0


def test_assign_needs_exactly_one_target(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)

    run = fzr("assign", "--user", ALICE)

    assert run.code == 2
    assert "exactly one of --customer" in run.stderr
    assert sandbox.calls == []


def test_manual_items_are_not_checked_by_sync(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)
    fzr("assign", "--id", "103", "--user", ALICE)

    fzr("sync")

    assert fzr.query("SELECT status FROM items")[0]["status"] == "assigned"


def test_assign_while_writes_are_halted_leaves_nothing_behind(make_sandbox, make_fzr):
    sandbox = make_sandbox(
        scenario(
            approved("i-1", "上海示例科技有限公司"), xbb={"distribution": "replace"}
        )
    )
    fzr = make_fzr(sandbox)
    fzr("sync")
    writes = sandbox.count(api="customer.distribution")

    dry = fzr("assign", "--id", "103", "--user", ALICE, "--dry-run")
    real = fzr("assign", "--id", "103", "--user", ALICE)

    assert dry.code == 0 and "halted" in dry.stderr
    assert real.code == 1 and "halted" in real.stderr
    assert sandbox.count(api="customer.distribution") == writes
    assert fzr.query("SELECT * FROM items WHERE manual = 1") == []


def test_assign_whose_write_fails_is_closed_not_left_pending(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario())
    sandbox.add_fault(
        {
            "service": "xbb",
            "api": "customer.distribution",
            "kind": "server_error",
            "times": None,
        }
    )
    fzr = make_fzr(sandbox)

    run = fzr("assign", "--id", "103", "--user", ALICE)

    assert run.code == 1
    item = fzr.query("SELECT status, reason FROM items")[0]
    assert item["status"] == "failed" and "run fzr assign again" in item["reason"]
