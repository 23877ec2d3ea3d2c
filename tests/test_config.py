"""Settings: the FZR_* contract, the TOML file, and refusing bad values up front."""

from __future__ import annotations

import os
import sqlite3
import time

from builders import approved, scenario


def test_missing_settings_are_named_together_and_nothing_is_contacted(
    make_sandbox, make_fzr
):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
    fzr = make_fzr(sandbox)

    run = fzr(
        "sync", FZR_DINGTALK_APP_KEY=None, FZR_XBB_TOKEN=None, FZR_XBB_FORM_ID=None
    )

    assert run.code == 2
    for name in ("FZR_DINGTALK_APP_KEY", "FZR_XBB_TOKEN", "FZR_XBB_FORM_ID"):
        assert name in run.stderr
    assert "Traceback" not in run.stderr
    assert sandbox.calls == []
    assert not fzr.db.exists()


def test_malformed_settings_each_get_a_specific_message(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)

    run = fzr(
        "sync",
        FZR_XBB_FORM_ID="customers",
        FZR_TIMEZONE="Mars/Olympus",
        FZR_DINGTALK_BASE_URL="api.dingtalk.com",
        FZR_ACTIVE_HOURS="weekdays",
    )

    assert run.code == 2
    assert "FZR_XBB_FORM_ID (environment) must be a whole number" in run.stderr
    assert "unknown time zone 'Mars/Olympus'" in run.stderr
    assert "FZR_DINGTALK_BASE_URL (environment) must be an http(s) URL" in run.stderr
    assert "FZR_ACTIVE_HOURS" in run.stderr
    assert sandbox.calls == []


def test_config_file_is_read_and_environment_wins(make_sandbox, make_fzr, tmp_path):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
    fzr = make_fzr(sandbox)
    env = sandbox.env()
    config = tmp_path / "fzr.toml"
    config.write_text(
        f'[dingtalk]\napp_key = "{env["FZR_DINGTALK_APP_KEY"]}"\n'
        f'process_code = "PROC-WRONG"\n'
        f"[xbb]\nform_id = {env['FZR_XBB_FORM_ID']}\n",
        encoding="utf-8",
    )
    config.chmod(0o600)

    run = fzr(
        "sync", FZR_CONFIG=str(config), FZR_DINGTALK_APP_KEY=None, FZR_XBB_FORM_ID=None
    )

    assert run.code == 0, run.stderr
    assert fzr.items() == {("i-1", "上海示例科技有限公司"): "assigned"}
    listed = [c.request for c in sandbox.calls if c.api == "instances.list"]
    assert listed[0]["processCode"] == env["FZR_PROCESS_CODE"]


def test_config_file_that_does_not_parse_is_a_config_error(
    make_sandbox, make_fzr, tmp_path
):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)
    config = tmp_path / "broken.toml"
    config.write_text("[dingtalk\napp_key = 1\n", encoding="utf-8")

    run = fzr("sync", FZR_CONFIG=str(config))

    assert run.code == 2
    assert f"cannot read config file {config}" in run.stderr
    assert sandbox.calls == []


def test_named_config_file_that_is_missing_is_a_config_error(
    make_sandbox, make_fzr, tmp_path
):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)

    run = fzr("sync", FZR_CONFIG=str(tmp_path / "nope.toml"))

    assert run.code == 2
    assert "FZR_CONFIG points to" in run.stderr


def test_default_database_lives_in_the_user_data_directory(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)

    run = fzr("sync", FZR_DB=None)

    assert run.code == 0, run.stderr
    default = fzr.home / "data" / "fzr" / "fzr.sqlite3"
    assert default.exists()
    assert oct(default.stat().st_mode & 0o777) == oct(0o600)


def test_outside_active_hours_sync_calls_nothing_then_catches_up(
    make_sandbox, make_fzr
):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
    fzr = make_fzr(sandbox)
    fzr("sync")
    sandbox.add_instance(
        **approved("i-2", "北京示范贸易有限公司", created="now", finished="now")
    )
    sandbox.reset_calls()
    never = "Mon-Sun 00:00-00:01"

    closed = fzr("sync", FZR_ACTIVE_HOURS=never)

    assert (closed.code, closed.stdout, closed.stderr) == (0, "", "")
    assert sandbox.calls == []

    reopened = fzr("sync", FZR_ACTIVE_HOURS="Mon-Sun 00:00-24:00")

    assert reopened.code == 0, reopened.stderr
    assert fzr.items()[("i-2", "北京示范贸易有限公司")] == "assigned"
    assert sandbox.count(api="instances.list") == 2  # the catch-up lists both ways


def test_fzr_runs_the_same_whatever_the_host_time_zone(make_sandbox, make_fzr):
    results = []
    for zone in ("UTC", "Asia/Shanghai", "America/Los_Angeles"):
        os.environ["TZ"] = zone
        time.tzset()
        try:
            sandbox = make_sandbox(
                scenario(approved("i-1", "上海示例科技有限公司", created="-3h"))
            )
            fzr = make_fzr(sandbox)
            fzr("sync", "--since", "2026-01-01")
            results.append(fzr.items())
        finally:
            del os.environ["TZ"]
            time.tzset()
    assert results[0] == results[1] == results[2]
    assert results[0] == {("i-1", "上海示例科技有限公司"): "assigned"}


def test_config_file_typos_and_wrong_types_are_named(make_sandbox, make_fzr, tmp_path):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)
    config = tmp_path / "typos.toml"
    config.write_text(
        'colour = "red"\ndb = 42\n[feilds]\ncustomers = "x"\n'
        '[dingtalk]\napp_secert = "s"\ncomment_user_id = 12\n'
        '[fields]\nactive_hours = "Mon-Fri 08:00-20:00"\n',
        encoding="utf-8",
    )
    config.chmod(0o600)

    run = fzr("sync", FZR_CONFIG=str(config), FZR_DB=None, FZR_COMMENT_USER_ID=None)

    assert run.code == 2
    for problem in (
        "unknown setting colour",
        "unknown setting feilds",
        "unknown setting dingtalk.app_secert",
        "unknown setting fields.active_hours",
        "FZR_DB (config file) must be a quoted string",
        "FZR_COMMENT_USER_ID (config file) must be a quoted string",
    ):
        assert problem in run.stderr
    assert sandbox.calls == []


def test_unusable_state_file_paths_get_a_clear_message(
    make_sandbox, make_fzr, tmp_path
):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    foreign = tmp_path / "other.sqlite3"
    other = sqlite3.connect(foreign)
    other.execute("CREATE TABLE invoices (id INTEGER)")
    other.close()
    foreign_bytes = foreign.read_bytes()

    for path, message in (
        (tmp_path, "is a folder"),
        (a_file / "fzr.sqlite3", "cannot create the folder"),
        (foreign, "an SQLite file of another program"),
    ):
        run = fzr("sync", FZR_DB=str(path))
        assert run.code == 1 and message in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
    assert foreign.read_bytes() == foreign_bytes  # not even its journal mode


def test_damaged_state_file_is_reported_without_a_traceback(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
    fzr = make_fzr(sandbox)
    fzr("sync")
    raw = bytearray(fzr.db.read_bytes())
    raw[4096:8192] = b"\xff" * 4096  # one damaged page after the header
    fzr.db.write_bytes(bytes(raw))

    run = fzr("sync")

    assert run.code == 1
    assert "Traceback" not in run.stderr
    assert "state file" in run.stderr


def test_malformed_robot_webhook_is_reported_once(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario())
    fzr = make_fzr(sandbox)

    run = fzr("sync", FZR_ROBOT_WEBHOOK="ftp://127.0.0.1/x", FZR_ROBOT_SECRET="SECx")

    assert run.code == 2
    assert "FZR_ROBOT_WEBHOOK (environment) must be an http(s) URL" in run.stderr
    assert "must be set together" not in run.stderr
