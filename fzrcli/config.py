"""Settings from a TOML file and the environment; the environment wins.

The ``FZR_*`` variable names are a public contract. Each setting is declared once in
``SETTINGS`` with its variable, its place in the TOML file, its default and its parser,
so the README table, validation and loading cannot drift apart.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fzrcli.errors import ConfigError
from fzrcli.forms import FieldSpec

log = logging.getLogger(__name__)

DINGTALK = "dingtalk"
XBB = "xbb"
ROBOT = "robot"


def _config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def default_config_path() -> Path:
    return _config_home() / "fzr" / "config.toml"


def default_db_path() -> Path:
    return _data_home() / "fzr" / "fzr.sqlite3"


def _text(value: Any) -> str:
    # Ids are text: a TOML number would already have lost any leading zeros.
    if not isinstance(value, str):
        raise ValueError("must be a quoted string")
    text = str(value).strip()
    if not text:
        raise ValueError("is empty")
    return text


def _url(value: Any) -> str:
    text = _text(value).rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    return text


def _positive_int(value: Any) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError("must be a whole number") from None
    if number <= 0:
        raise ValueError("must be greater than zero")
    return number


def _zone(value: Any) -> str:
    name = _text(value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None
    return name


def _schedule(value: Any) -> str:
    from fzrcli.schedule import parse_schedule

    text = _text(value)
    parse_schedule(text)
    return text


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    toml: tuple[str, ...]
    parse: Callable[[Any], Any] = _text
    default: Any = None
    needed_by: str = ""
    secret: bool = False
    help: str = ""


SETTINGS: tuple[Setting, ...] = (
    Setting("db", "FZR_DB", ("db",), _text, None, help="SQLite state file"),
    Setting(
        "dingtalk_base_url",
        "FZR_DINGTALK_BASE_URL",
        ("dingtalk", "base_url"),
        _url,
        "https://api.dingtalk.com",
        DINGTALK,
        help="DingTalk v1.0 API root",
    ),
    Setting(
        "app_key",
        "FZR_DINGTALK_APP_KEY",
        ("dingtalk", "app_key"),
        _text,
        None,
        DINGTALK,
        help="AppKey of the internal app",
    ),
    Setting(
        "app_secret",
        "FZR_DINGTALK_APP_SECRET",
        ("dingtalk", "app_secret"),
        _text,
        None,
        DINGTALK,
        secret=True,
        help="AppSecret of the internal app",
    ),
    Setting(
        "process_code",
        "FZR_PROCESS_CODE",
        ("dingtalk", "process_code"),
        _text,
        None,
        DINGTALK,
        help="approval form code, PROC-…",
    ),
    Setting(
        "comment_user_id",
        "FZR_COMMENT_USER_ID",
        ("dingtalk", "comment_user_id"),
        _text,
        None,
        help="user the comments are written as; unset: no comments",
    ),
    Setting(
        "xbb_base_url",
        "FZR_XBB_BASE_URL",
        ("xbb", "base_url"),
        _url,
        "https://proapi.xbongbong.com",
        XBB,
        help="XBB open API root",
    ),
    Setting(
        "xbb_corpid",
        "FZR_XBB_CORPID",
        ("xbb", "corpid"),
        _text,
        None,
        XBB,
        help="XBB company id",
    ),
    Setting(
        "xbb_token",
        "FZR_XBB_TOKEN",
        ("xbb", "token"),
        _text,
        None,
        XBB,
        secret=True,
        help="XBB API token (signs requests)",
    ),
    Setting(
        "xbb_user_id",
        "FZR_XBB_USER_ID",
        ("xbb", "user_id"),
        _text,
        None,
        XBB,
        help="operator userId for CRM calls (an admin)",
    ),
    Setting(
        "xbb_form_id",
        "FZR_XBB_FORM_ID",
        ("xbb", "form_id"),
        _positive_int,
        None,
        XBB,
        help="formId of the customer form",
    ),
    Setting(
        "field_customers",
        "FZR_FIELD_CUSTOMERS",
        ("fields", "customers"),
        _text,
        "客户名称",
        help="customer names field: component id or label",
    ),
    Setting(
        "field_new_owner",
        "FZR_FIELD_NEW_OWNER",
        ("fields", "new_owner"),
        _text,
        "需添加的负责人",
        help="person to add: component id or label",
    ),
    Setting(
        "field_current_owner",
        "FZR_FIELD_CURRENT_OWNER",
        ("fields", "current_owner"),
        _text,
        "选择任意当前客户负责人",
        help="claimed current owner: component id or label",
    ),
    Setting(
        "timezone",
        "FZR_TIMEZONE",
        ("timezone",),
        _zone,
        "Asia/Shanghai",
        help="zone for dates shown and --date/--since",
    ),
    Setting(
        "monthly_quota",
        "FZR_MONTHLY_QUOTA",
        ("monthly_quota",),
        _positive_int,
        5000,
        help="metered DingTalk calls allowed per month",
    ),
    Setting(
        "active_hours",
        "FZR_ACTIVE_HOURS",
        ("active_hours",),
        _schedule,
        None,
        help="when sync may call DingTalk, e.g. 'Mon-Fri 08:00-20:00'",
    ),
    Setting(
        "robot_webhook",
        "FZR_ROBOT_WEBHOOK",
        ("robot", "webhook"),
        _url,
        None,
        ROBOT,
        secret=True,
        help="group robot webhook URL (report --send)",
    ),
    Setting(
        "robot_secret",
        "FZR_ROBOT_SECRET",
        ("robot", "secret"),
        _text,
        None,
        ROBOT,
        secret=True,
        help="robot signing secret, SEC…",
    ),
    Setting(
        "pass_timeout",
        "FZR_PASS_TIMEOUT",
        ("pass_timeout",),
        _positive_int,
        240,
        help="seconds a pass may run before it stops and leaves work pending",
    ),
)


@dataclass(frozen=True)
class Settings:
    db_path: Path
    values: dict[str, Any] = field(repr=False)
    config_path: Path | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def fields(self) -> FieldSpec:
        return FieldSpec(
            customers=self.field_customers,
            new_owner=self.field_new_owner,
            current_owner=self.field_current_owner,
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def secrets(self) -> list[str]:
        return [
            str(self.values[s.name])
            for s in SETTINGS
            if s.secret and self.values.get(s.name)
        ]


def load_settings(
    needs: frozenset[str] = frozenset(), env=None, use_file: bool = True
) -> Settings:
    """Read, merge and validate settings; ConfigError lists every problem at once."""
    env = os.environ if env is None else env
    config_path, file_values, problems = (
        _read_config_file(env) if use_file else (None, {}, [])
    )
    values: dict[str, Any] = {}

    for setting in SETTINGS:
        raw, origin = _raw_value(setting, env, file_values)
        if raw is None:
            if setting.needed_by in needs and setting.default is None:
                problems.append(f"{setting.env} is not set ({setting.help})")
            values[setting.name] = setting.default
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as exc:
            problems.append(f"{setting.env} ({origin}) {exc}")

    _check_robot_pair(env, file_values, needs, problems)
    if problems:
        raise ConfigError(problems)
    db_path = Path(values["db"]).expanduser() if values["db"] else default_db_path()
    return Settings(db_path=db_path, values=values, config_path=config_path)


def _raw_value(setting: Setting, env, file_values: dict) -> tuple[Any, str]:
    if env.get(setting.env, "").strip():
        return env[setting.env], "environment"
    node: Any = file_values
    for key in setting.toml:
        if not isinstance(node, dict) or key not in node:
            return None, ""
        node = node[key]
    return node, "config file"


def _check_robot_pair(
    env, file_values: dict, needs: frozenset[str], problems: list[str]
) -> None:
    """Both or neither: judged on what was given, so a malformed URL is not also
    reported as missing."""
    if ROBOT in needs:
        return
    webhook, secret = (
        _raw_value(s, env, file_values)[0] is not None
        for s in SETTINGS
        if s.name in ("robot_webhook", "robot_secret")
    )
    if webhook != secret:
        problems.append("FZR_ROBOT_WEBHOOK and FZR_ROBOT_SECRET must be set together")


def _read_config_file(env) -> tuple[Path | None, dict, list[str]]:
    explicit = env.get("FZR_CONFIG", "").strip()
    path = Path(explicit).expanduser() if explicit else default_config_path()
    if not path.exists():
        if explicit:
            return None, {}, [f"FZR_CONFIG points to {path}, which does not exist"]
        return None, {}, []
    if not path.is_file():
        return None, {}, [f"config file {path} is not a file"]
    try:
        data = _parse_toml(path.read_bytes())
    except (OSError, ValueError) as exc:
        return path, {}, [f"cannot read config file {path}: {exc}"]
    _warn_if_readable_by_others(path, data)
    return path, data, _unknown_keys(data)


def _unknown_keys(data: dict) -> list[str]:
    """Typos in the file are errors: a misspelt key would otherwise be ignored."""
    known = {s.toml for s in SETTINGS}
    tables = {path[0] for path in known if len(path) > 1}
    problems = []
    for key, value in data.items():
        if key in tables and isinstance(value, dict):
            problems += [
                f"unknown setting {key}.{inner} in the config file"
                for inner in value
                if (key, inner) not in known
            ]
        elif (key,) not in known:
            problems.append(
                f"unknown setting {key} in the config file (top-level "
                "keys must come before the first [table])"
                if key not in tables
                else f"{key} must be a [table]"
            )
    return problems


def _parse_toml(raw: bytes) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(str(exc)) from None


def _warn_if_readable_by_others(path: Path, data: dict) -> None:
    holds_secret = any(_raw_value(s, {}, data)[0] for s in SETTINGS if s.secret)
    mode = path.stat().st_mode
    if holds_secret and mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "config file %s holds secrets and can be read by others (mode %o); "
            "run: chmod 600 %s",
            path,
            stat.S_IMODE(mode),
            path,
        )
