"""The group robot: 加签 signing, ``fzr report --send`` through the sandbox's robot, its
refusals, and the 20-a-minute guard."""

from __future__ import annotations

import json
import socket
from urllib.parse import unquote_plus

import pytest

from builders import approved, scenario
from fzrcli.robot import PER_MINUTE, SENT_KEY, SILENT_KEY, sign, signed_url
from fzrcli.sandbox import robot_sign
from fzrcli.store import Store
from fzrcli.timeutil import now_ms

SECRET = "SECrobot0123456789abcdefrobot0123456789abcdef"
TOKEN = "robot-access-token-0001"


def test_sign_matches_the_reference_test_vector():
    signature = sign("SECexample0123456789abcdef", 1700000000000)

    assert signature == "%2Bcxnz7PMkHTgYGZLYfiu2juTRMk8MZfdVOdDh8s0utc%3D"
    assert unquote_plus(signature) == "+cxnz7PMkHTgYGZLYfiu2juTRMk8MZfdVOdDh8s0utc="


def test_sign_agrees_with_the_sandbox_robot():
    assert unquote_plus(sign(SECRET, 1733300000123)) == robot_sign(
        SECRET, "1733300000123"
    )


def test_signed_url_appends_timestamp_and_sign_to_the_webhook():
    url = signed_url("http://127.0.0.1:1/robot/send?access_token=t", SECRET, 42)

    assert url == (
        f"http://127.0.0.1:1/robot/send?access_token=t&timestamp=42"
        f"&sign={sign(SECRET, 42)}"
    )


@pytest.fixture
def robot_fzr(make_sandbox, make_fzr):
    """A synced state file and a sandbox whose robot signs with SECRET."""
    sandbox = make_sandbox(
        scenario(
            approved("inst-1", "上海示例科技有限公司\n没有这家公司"),
            robot={"access_token": TOKEN, "secret": SECRET},
        )
    )
    fzr = make_fzr(sandbox)
    assert fzr("sync").code == 0
    return fzr


def assert_no_secret(fzr, *texts: str) -> None:
    for text in texts:
        assert TOKEN not in text and SECRET not in text
        assert "sign=" not in text and "access_token" not in text
        assert fzr.env["FZR_ROBOT_WEBHOOK"] not in text


def test_send_posts_the_markdown_report_signed(robot_fzr):
    run = robot_fzr("report", "--send")

    assert run.code == 0, run.stderr
    assert run.stdout.startswith("report for ")
    assert "sent to the group robot" in run.stdout
    assert run.stderr == ""
    [message] = robot_fzr.sandbox.robot_messages
    assert message["msgtype"] == "markdown"
    expected = robot_fzr("report", "--format", "markdown").stdout.rstrip("\n")
    assert message["markdown"]["text"] == expected
    assert message["markdown"]["title"].startswith("fzr report ")
    assert "没有这家公司" in expected
    assert_no_secret(robot_fzr, run.stdout, run.stderr)


def test_send_is_recorded_as_a_run(robot_fzr):
    robot_fzr("report", "--send")

    [run] = robot_fzr.query("SELECT * FROM runs WHERE command = 'report --send'")
    assert run["exit_status"] == 0
    assert json.loads(run["counts"]) == {"robot.send": 1}
    stored = "\n".join(
        str(v) for row in robot_fzr.query("SELECT * FROM runs") for v in tuple(row)
    )
    assert_no_secret(robot_fzr, stored)


def test_send_with_a_format_prints_that_format_too(robot_fzr):
    run = robot_fzr("report", "--send", "--format", "json")

    assert run.code == 0
    assert json.loads(run.stdout)["version"] == 1
    assert len(robot_fzr.sandbox.robot_messages) == 1


def test_wrong_secret_is_refused_with_the_robots_errcode(robot_fzr):
    run = robot_fzr("report", "--send", FZR_ROBOT_SECRET="SECnot-the-right-one-000")

    assert run.code == 1
    assert run.stdout == ""
    assert "310000" in run.stderr and "sign not match" in run.stderr
    assert "FZR_ROBOT_SECRET" in run.stderr
    assert "Traceback" not in run.stderr
    assert robot_fzr.sandbox.robot_messages == []
    assert_no_secret(robot_fzr, run.stdout, run.stderr)
    assert "SECnot-the-right-one-000" not in run.stderr


def test_unknown_robot_token_names_the_webhook_setting(robot_fzr):
    webhook = robot_fzr.env["FZR_ROBOT_WEBHOOK"].replace(TOKEN, "no-such-token")

    run = robot_fzr("report", "--send", FZR_ROBOT_WEBHOOK=webhook)

    assert run.code == 1
    assert "300005" in run.stderr and "FZR_ROBOT_WEBHOOK" in run.stderr
    assert "no-such-token" not in run.stderr


def test_send_without_robot_settings_is_a_configuration_error(robot_fzr):
    run = robot_fzr("report", "--send", FZR_ROBOT_WEBHOOK=None, FZR_ROBOT_SECRET=None)

    assert run.code == 2
    assert "FZR_ROBOT_WEBHOOK is not set" in run.stderr
    assert "FZR_ROBOT_SECRET is not set" in run.stderr


def test_unreachable_webhook_fails_without_showing_the_url(robot_fzr):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    webhook = f"http://127.0.0.1:{closed_port}/robot/send?access_token={TOKEN}"

    run = robot_fzr("report", "--send", FZR_ROBOT_WEBHOOK=webhook)

    assert run.code == 1
    assert "robot send" in run.stderr and "network error" in run.stderr
    assert str(closed_port) not in run.stderr
    assert_no_secret(robot_fzr, run.stderr)


def test_a_busy_robot_is_tried_again(robot_fzr):
    robot_fzr.sandbox.add_fault({"service": "robot", "kind": "server_error"})

    run = robot_fzr("report", "--send")

    assert run.code == 0, run.stderr
    assert len(robot_fzr.sandbox.robot_messages) == 1


def test_twenty_a_minute_then_fzr_refuses_before_the_robot_does(robot_fzr):
    for _ in range(PER_MINUTE):
        assert robot_fzr("report", "--send").code == 0

    run = robot_fzr("report", "--send")

    assert run.code == 1
    assert f"already took {PER_MINUTE} messages in the last minute" in run.stderr
    assert "nothing sent" in run.stderr and "try again in" in run.stderr
    assert len(robot_fzr.sandbox.robot_messages) == PER_MINUTE
    # the robot itself never saw a 21st message, so it was never muted
    assert robot_fzr.sandbox.robot.silenced_until == 0


def test_the_minute_counts_sends_from_other_processes(robot_fzr):
    store = Store(robot_fzr.db)
    with store.transaction():
        store.set_state(SENT_KEY, [now_ms() - 59_000] * PER_MINUTE)
    store.close()

    run = robot_fzr("report", "--send")

    assert run.code == 1 and "try again in 1 s" in run.stderr
    assert robot_fzr.sandbox.robot_messages == []


def test_sends_older_than_a_minute_do_not_count(robot_fzr):
    store = Store(robot_fzr.db)
    with store.transaction():
        store.set_state(SENT_KEY, [now_ms() - 61_000] * PER_MINUTE)
    store.close()

    assert robot_fzr("report", "--send").code == 0


def test_too_fast_answer_keeps_fzr_quiet_for_ten_minutes(robot_fzr):
    robot_fzr.sandbox.add_fault({"service": "robot", "kind": "throttle"})

    first = robot_fzr("report", "--send")
    second = robot_fzr("report", "--send")

    assert first.code == 1 and "410100" in first.stderr
    assert second.code == 1 and "stays silent for another" in second.stderr
    assert robot_fzr.sandbox.robot_messages == []
    [silent_until] = robot_fzr.query(
        "SELECT value FROM state WHERE key = ?", SILENT_KEY
    )
    assert int(silent_until["value"]) > now_ms() + 590_000
