"""Scenario files: what the sandbox's DingTalk, XBB and group robot hold at start.

A scenario is one JSON object. Every key is optional; a missing key takes the default
below, so ``{}`` is a working tenant with no approvals and no customers. Unknown keys
are refused, so a typo fails loudly instead of silently doing nothing.

Times (``created``, ``finished``, ``added``) are ``"now"``, relative to the moment the
sandbox is built (``"-2h"``, ``"-3d"``, ``"-10m"``, ``"-30s"``, ``"+1h"``) or absolute
ISO UTC (``"2024-06-03T01:15Z"``, ``"2024-06-03T01:15:00+00:00"``; no zone means UTC).

Top level::

    {
      "description": "free text",
      "users": {...},          # the organisation; ids are DingTalk userids, which are
                               # also the XBB user ids on a DingTalk tenant
      "dingtalk": {...},
      "xbb": {...},
      "robot": {...},          # absent or null: no group robot
      "limits": {...},
      "faults": [...]          # fault rules, see faults.py
    }

``users`` maps an id to a name, or to an object with more detail::

    "0165123456789012": "王小明",
    "0199887766554433": {"name": "陈静", "resigned": true},
    "fzr-bot": {"name": "fzr 助手", "xbb": false}

    name        display name
    resigned    left the company: XBB's user/list hides them unless delIgnore=1, and
                distribution to them is refused (default false)
    xbb         has an XBB account (default true)
    dept_id, dept_name, position    the originator's department; user/list rows

The XBB operator and the DingTalk comment user are added to ``users`` when missing.

``dingtalk``::

    app_key, app_secret    credentials for /v1.0/oauth2/accessToken
    process_code           the approval form's code (PROC-…)
    token_ttl              access-token lifetime in seconds (7200)
    comment_user_id        the user fzr comments as; FZR_COMMENT_USER_ID (none)
    last_page_token        nextToken on the last list page: "absent" | "empty" | "null"
    instances              approval instances, each:

      id              instance id (generated when missing)
      business_id     审批编号 (derived from the creation time when missing)
      title           default "<originator name>提交的客户共管申请"
      process_code    default: the dingtalk process_code
      created         creation time (default "now")
      finished        finish time; ignored while RUNNING or NEW
      status          RUNNING | COMPLETED | TERMINATED | NEW | CANCELED
                      (default COMPLETED when finished is given, else RUNNING)
      result          agree | refuse; default agree for COMPLETED, else none.
                      TERMINATED instances carry no result at all
      originator      user id of the submitter
      approver        user id of the approver (default: the first other user)
      biz_action      NONE | MODIFY | REVOKE (default NONE)
      attached        attachedProcessInstanceIds (default [])
      customers       the 客户名称 textarea text, raw: CRLF, "，", "|", zero-width
                      characters and duplicates are kept exactly
      new_owners      user ids picked in 需添加的负责人
      current_owners  user ids picked in 选择任意当前客户负责人
      omit_fields     any of "customers", "new_owners", "current_owners": leave those
                      components out of formComponentValues entirely
      form            a raw formComponentValues list; replaces the three fields (for
                      malformed forms)

    A field that is null, missing or an empty list is rendered as DingTalk renders an
    empty field: value "null" and no extValue.

``xbb``::

    corpid, token      the company id and API token (the token only enters the sign)
    operator           the userId fzr sends as 操作人; FZR_XBB_USER_ID
    form_id            the customer form's formId (1001)
    distribution       "append" (default) adds the new owner; "replace" makes the new
                       owner the only owner, to exercise fzr's safety stop
    customers          each:

      dataId      int (generated when missing)
      name        text_1, the customer name, matched byte for byte by equal/in
      owners      user ids (default [])
      pool        in the public pool (num_3 = 1); a pool customer has no owners
      co_users    collaborators, coUserId (default [])
      creator     text_16 (default: the first owner, else the operator)
      added       addTime (default "-180d")
      form_id     default: the xbb form_id
      deleted     in the recycle bin: found only with del=1 (default false)

``robot``: ``access_token``, ``secret`` (the SEC… signing secret; null turns signing
off) and ``keywords`` (when set, a message must contain one of them).

``limits``::

    latency_ms           sleep before answering each call (0)
    enforce_rate_limits  DingTalk 20 calls/s per API; XBB 3 writes/s and 1,000 calls
                         a minute, refused calls counting (false)
    monthly_quota        metered DingTalk calls allowed before ApiCountLimitForOrg
                         (null: unlimited)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

SCENARIO_DIR = Path(__file__).parent / "scenarios"

TOP_LEVEL_KEYS = set("description users dingtalk xbb robot limits faults".split())

DINGTALK_DEFAULTS = {
    "app_key": "dingsandboxappkey",
    "app_secret": "sandbox-app-secret",
    "process_code": "PROC-FZR-SANDBOX-0001",
    "token_ttl": 7200,
    "comment_user_id": None,
    "last_page_token": "absent",
    "instances": [],
}
XBB_DEFAULTS = {
    "corpid": "dingsandboxcorp",
    "token": "sandbox-xbb-api-token",
    "operator": "admin001",
    "form_id": 1001,
    "distribution": "append",
    "customers": [],
}
ROBOT_DEFAULTS = {"access_token": "sandbox-robot-token", "secret": None, "keywords": []}
LIMITS_DEFAULTS = {"latency_ms": 0, "enforce_rate_limits": False, "monthly_quota": None}

RELATIVE_TIME = re.compile(r"^([+-])(\d+)([smhd])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def scenario_path(name: str) -> Path:
    """The file of a bundled scenario."""
    path = SCENARIO_DIR / f"{name}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.json")))
        raise FileNotFoundError(f"no bundled scenario {name!r} (bundled: {known})")
    return path


def load_scenario(name_or_path: str | Path) -> dict:
    """A bundled scenario by name ("demo"), or any scenario file by path."""
    path = Path(name_or_path)
    if not path.is_file():
        path = scenario_path(str(name_or_path))
    scenario = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(scenario, dict):
        raise ValueError(f"{path}: a scenario is a JSON object")
    return scenario


def check_scenario(scenario: dict) -> None:
    unknown = set(scenario) - TOP_LEVEL_KEYS
    if unknown:
        raise ValueError(f"unknown scenario keys: {sorted(unknown)}")


def section(scenario: dict, name: str, defaults: dict) -> dict:
    """One section of the scenario with its defaults filled in."""
    given = scenario.get(name) or {}
    unknown = set(given) - set(defaults)
    if unknown:
        raise ValueError(f"unknown keys in {name!r}: {sorted(unknown)}")
    return {**defaults, **given}


def check_keys(spec: dict, allowed: set[str], what: str) -> None:
    unknown = set(spec) - allowed
    if unknown:
        raise ValueError(f"unknown keys in {what}: {sorted(unknown)}")


def resolve_time(value: str, now: float) -> float:
    """Epoch seconds of "now", a relative time ("-2h") or an absolute ISO UTC time."""
    if value == "now":
        return now
    relative = RELATIVE_TIME.match(value)
    if relative:
        sign, amount, unit = relative.groups()
        offset = int(amount) * UNIT_SECONDS[unit]
        return now - offset if sign == "-" else now + offset
    # fromisoformat only learned the "Z" suffix in Python 3.11
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    resigned: bool = False
    in_xbb: bool = True
    dept_id: str = "575403278"
    dept_name: str = "销售部"
    position: str = "销售"


PERSON_KEYS = {"name", "resigned", "xbb", "dept_id", "dept_name", "position"}


def person(user_id: str, entry: str | dict) -> Person:
    if isinstance(entry, str):
        return Person(user_id, entry)
    check_keys(entry, PERSON_KEYS, f"user {user_id}")
    fields = {k: v for k, v in entry.items() if k != "xbb"}
    return Person(user_id, in_xbb=entry.get("xbb", True), **fields)


class Directory:
    """The organisation's people, as both DingTalk and XBB know them."""

    def __init__(self, users: dict):
        self.people = {uid: person(uid, entry) for uid, entry in users.items()}

    def get(self, user_id: str) -> Person | None:
        return self.people.get(user_id)

    def name(self, user_id: str) -> str:
        known = self.people.get(user_id)
        return known.name if known else user_id

    def ensure(self, user_id: str, name: str, in_xbb: bool = True) -> None:
        if user_id not in self.people:
            self.people[user_id] = Person(user_id, name, in_xbb=in_xbb)

    def xbb_users(self) -> list[Person]:
        return [p for p in self.people.values() if p.in_xbb]

    def is_active_xbb_user(self, user_id: object) -> bool:
        known = self.people.get(user_id) if isinstance(user_id, str) else None
        return bool(known and known.in_xbb and not known.resigned)
