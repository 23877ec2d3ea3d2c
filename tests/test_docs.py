"""The README stays true to the code: every setting and command is documented."""

from __future__ import annotations

from pathlib import Path

from fzrcli.config import SETTINGS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")


def test_every_setting_is_in_the_readme_table():
    for setting in SETTINGS:
        assert f"| `{setting.env}` |" in README, setting.env


def test_every_command_is_documented_with_help_text():
    from fzrcli.cli import app

    for command in app.registered_commands:
        name = command.name or command.callback.__name__
        assert f"`fzr {name}" in README, name
        assert command.callback.__doc__, name


def test_readme_quick_start_runs_the_demo_and_the_tests():
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "fzr demo" in quick_start and "python -m pytest" in quick_start


def test_readme_example_config_is_valid():
    import tomllib

    from fzrcli.config import _unknown_keys

    example = README.split("```toml", 1)[1].split("```", 1)[0]
    assert _unknown_keys(tomllib.loads(example)) == []
