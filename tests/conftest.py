"""Shared fixtures: a sandbox on 127.0.0.1 and fzr run as a user would run it."""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fzrcli.sandbox import Sandbox, load_scenario


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


class Fzr:
    """Runs ``fzr`` against one sandbox with one state file, like cron would."""

    def __init__(self, sandbox: Sandbox, home: Path):
        self.sandbox = sandbox
        self.home = home
        self.db = home / "state" / "fzr.sqlite3"
        self.env = {
            **sandbox.env(),
            "FZR_DB": str(self.db),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
        }

    def __call__(self, *args: str, **extra_env: str) -> Run:
        """In-process run of the real entry point, stdout and stderr kept apart."""
        from fzrcli import main

        env = {**self.env, **extra_env}
        out, err = io.StringIO(), io.StringIO()
        saved_env, saved_argv = dict(os.environ), sys.argv
        os.environ.clear()
        os.environ.update(
            {k: v for k, v in saved_env.items() if not k.startswith("FZR_")}
        )
        os.environ.update({k: v for k, v in env.items() if v is not None})
        sys.argv = ["fzr", *args]
        code = 0
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    main.main()
                except SystemExit as exit_:
                    code = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
            sys.argv = saved_argv
        return Run(code, out.getvalue(), err.getvalue())

    def process(self, *args: str, **extra_env: str) -> subprocess.Popen:
        """The real ``fzr`` in its own process (for kill and overlap tests)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FZR_")}
        env.update(self.env)
        env.update(extra_env)
        return subprocess.Popen(
            [sys.executable, "-m", "fzrcli", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def query(self, sql: str, *params) -> list[sqlite3.Row]:
        db = sqlite3.connect(self.db)
        db.row_factory = sqlite3.Row
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def items(self) -> dict[tuple[str, str], str]:
        rows = self.query("SELECT instance_id, customer, status FROM items")
        return {(r["instance_id"], r["customer"]): r["status"] for r in rows}


@pytest.fixture
def make_sandbox():
    started: list[Sandbox] = []

    def make(scenario="demo", **overrides) -> Sandbox:
        data = load_scenario(scenario) if isinstance(scenario, str) else scenario
        for key, value in overrides.items():
            data[key] = value
        sandbox = Sandbox(data).start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def make_fzr(tmp_path):
    count = [0]

    def make(sandbox: Sandbox) -> Fzr:
        count[0] += 1
        return Fzr(sandbox, tmp_path / f"home{count[0]}")

    return make
