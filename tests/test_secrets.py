"""Secrets never leave fzr, and its files are private.

Passes run with distinctive secret values, faults that put error texts on stderr
(network errors included) and ``-vv`` HTTP-detail logging; then stdout, stderr and the
raw bytes of the SQLite files are searched for every secret, including each DingTalk
access token the sandbox issued.
"""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from builders import approved, scenario

APP_SECRET = "AppSecret-7fQ2-distinctive-Zx9"
XBB_TOKEN = "XbbToken-4kW8-distinctive-Qm3"


class TokenWatch:
    """Stands in for the sandbox's dispatch to note every access token it issued or
    was sent, then answers as the sandbox does."""

    def __init__(self, sandbox):
        self.sandbox, self.original = sandbox, sandbox.dispatch
        self.tokens: set[str] = set()
        sandbox.dispatch = self

    def __call__(self, request):
        sent = request.headers.get("x-acs-dingtalk-access-token")
        if sent:
            self.tokens.add(sent)
        reply = self.original(request)
        payload = reply.payload()
        if isinstance(payload, dict) and isinstance(payload.get("accessToken"), str):
            self.tokens.add(payload["accessToken"])
        return reply


def secret_scenario() -> dict:
    return scenario(
        approved("i-1", "上海示例科技有限公司\n不存在的公司"),
        approved("i-2", "北京示范贸易有限公司", created="-90m"),
        dingtalk={"app_secret": APP_SECRET},
        xbb={"token": XBB_TOKEN},
    )


FAULTS_BY_PASS = [
    [
        {"service": "dingtalk", "api": "instances.list", "kind": "drop"},
        {"service": "dingtalk", "api": "instances.get", "kind": "token_invalid"},
        {
            "service": "xbb",
            "api": "customer.list",
            "kind": "server_error",
            "times": None,
        },
    ],
    [
        {"service": "xbb", "api": "customer.distribution", "kind": "write_lost"},
        {"service": "dingtalk", "api": "comments.add", "kind": "write_lost"},
    ],
    [{"service": "dingtalk", "api": "instances.list", "kind": "token_invalid"}],
]


def state_files(db: Path) -> list[Path]:
    names = [db.name, db.name + "-wal", db.name + "-shm"]
    return [db.with_name(name) for name in names if db.with_name(name).exists()]


def test_no_secret_or_token_reaches_output_or_the_state_file(make_sandbox, make_fzr):
    sandbox = make_sandbox(secret_scenario())
    watch = TokenWatch(sandbox)
    fzr = make_fzr(sandbox)
    outputs = []
    for faults in FAULTS_BY_PASS:
        sandbox.clear_faults()
        for rule in faults:
            sandbox.add_fault(rule)
        process = fzr.process("-vv", "sync")
        outputs.extend(process.communicate(timeout=60))

    text = "\n".join(outputs)
    assert "network error" in text and "HTTP 502" in text and "DEBUG" in text
    assert len(watch.tokens) >= 2  # the revoked token and its successor
    assert {r["status"] for r in fzr.query("SELECT status FROM items")} == {
        "assigned",
        "not_found",
    }
    assert [len(sandbox.comments(i)) for i in ("i-1", "i-2")] == [1, 1]
    raw = b"".join(path.read_bytes() for path in state_files(fzr.db))
    for secret in [APP_SECRET, XBB_TOKEN, *watch.tokens]:
        assert secret not in text
        assert secret.encode() not in raw


def test_state_file_lock_and_folder_are_private_while_a_pass_runs(
    make_sandbox, make_fzr
):
    sandbox = make_sandbox(secret_scenario())
    # Slow enough that the pass is still running (files open) on a loaded machine.
    sandbox.add_fault(
        {"service": "xbb", "api": "customer.list", "kind": "slow", "delay_s": 4}
    )
    fzr = make_fzr(sandbox)

    process = fzr.process("sync")
    ends = ("", "-wal", "-shm", ".lock")
    files = [fzr.db.with_name(fzr.db.name + end) for end in ends]
    deadline = time.monotonic() + 30
    while not all(f.exists() for f in files) and time.monotonic() < deadline:
        time.sleep(0.01)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in files}
    folder = stat.S_IMODE(fzr.db.parent.stat().st_mode)
    process.communicate(timeout=60)

    assert process.returncode == 0
    assert len(modes) == 4, modes
    assert set(modes.values()) == {0o600}, modes
    assert folder & 0o077 == 0


@pytest.mark.parametrize("mode, warned", [(0o644, True), (0o640, True), (0o600, False)])
def test_config_file_holding_a_secret_must_not_be_readable_by_others(
    make_sandbox, make_fzr, tmp_path, mode, warned
):
    sandbox = make_sandbox(secret_scenario())
    fzr = make_fzr(sandbox)
    config = tmp_path / "config.toml"
    config.write_text(f'[xbb]\ntoken = "{XBB_TOKEN}"\n', encoding="utf-8")
    config.chmod(mode)

    run = fzr("sync", FZR_CONFIG=str(config), FZR_XBB_TOKEN=None)

    assert run.code == 0, run.stderr
    assert ("chmod 600" in run.stderr) is warned
    assert (str(config) in run.stderr) is warned
    assert XBB_TOKEN not in run.stderr + run.stdout
