"""Fault injection: rules that make chosen calls fail the way real platforms fail.

A rule is a dict::

    {"service": "dingtalk" | "xbb" | "robot",
     "api": "instances.list",      # optional: only calls to this api
     "kind": "throttle",
     "after": 0,                    # let this many matching calls through first
     "times": 1,                    # hit this many matching calls; null = forever
     ...kind parameters}

Kinds, and their parameters:

    throttle           the service's rate-limit answer (DingTalk 403
                       QpsLimitForAppkeyAndApi, XBB's throttle code, robot 410100)
    server_error       DingTalk 500 systemError; XBB HTTP 502 with an HTML page;
                       robot errcode -1
    token_invalid      DingTalk: revoke the issued token, then answer normally, so
                       this call gets 400 InvalidAuthentication; the next token call
                       issues a different token
    ip_ban_html        an HTML page instead of JSON (status, default 200)
    punish             the IP-ban JSON {"status":1111,"punish":"deny",…} (status,
                       default 200)
    slow               answer normally after delay_s seconds (default 2)
    drop               close the socket without answering; nothing is applied
    cursor_stuck       DingTalk instances.list: the same page and the same nextToken,
                       however the client pages
    write_lost         apply the call, then close the socket without answering
    xbb_error          XBB business failure with code and msg
    permission_denied  DingTalk 403 AccessTokenPermissionDenied naming the scope
                       (scope, default by api); XBB no-permission code
    ip_not_whitelisted DingTalk 403 IpNotInWhiteList; robot 310000 (ip)
    quota_exhausted    DingTalk 403 ApiCountLimitForOrg
    bad_credentials    DingTalk 400 invalidClientIdOrSecret; XBB bad-sign code;
                       robot 300005
    malformed_json     HTTP 200 with a body that is not valid JSON; nothing applied
    wrong_shape        apply the call, then answer HTTP 200 JSON whose result has the
                       wrong types (lists and objects as JSON strings, numbers as
                       strings); or answer exactly the JSON given as body

Calls refused by throttle, drop, ip_ban_html, punish and quota_exhausted are not billed
against DingTalk's monthly quota, as on the real platform.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from . import dingtalk, robot, xbb
from .wire import Reply, dropped, html_reply, json_reply

REPLIES_BY_SERVICE = {
    "dingtalk": dingtalk.FAULT_REPLIES,
    "xbb": xbb.FAULT_REPLIES,
    "robot": robot.FAULT_REPLIES,
}
ACTED_BY_SERVICE = {
    "dingtalk": dingtalk.SERVICE_FAULTS,
    "xbb": xbb.SERVICE_FAULTS,
    "robot": robot.SERVICE_FAULTS,
}
# kinds every service suffers the same way
COMMON_REPLIES = {"ip_ban_html", "punish", "drop", "malformed_json"}
COMMON_DELIVERY = {"slow", "write_lost", "wrong_shape"}
RULE_KEYS = {"service", "api", "kind", "after", "times"}

IP_BAN_HTML = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>访问被拒绝</title>'
    "</head><body><h1>访问被拒绝</h1><p>您的IP访问过于频繁，已被暂时禁止访问，"
    "请5分钟后再试。</p></body></html>"
)


@dataclass
class FaultRule:
    service: str
    kind: str
    api: str | None = None
    after: int = 0
    times: int | None = 1
    params: dict = field(default_factory=dict)
    seen: int = 0
    hits: int = 0
    state: dict = field(default_factory=dict)  # what a kind remembers between hits

    @classmethod
    def from_dict(cls, rule: dict) -> FaultRule:
        service, kind = rule.get("service"), rule.get("kind")
        if service not in REPLIES_BY_SERVICE:
            raise ValueError(f"fault service must be dingtalk, xbb or robot: {rule}")
        if kind not in supported_kinds(service):
            raise ValueError(f"fault kind {kind!r} does not apply to {service}")
        params = {k: v for k, v in rule.items() if k not in RULE_KEYS}
        fault = cls(service, kind, rule.get("api"), rule.get("after", 0), params=params)
        fault.times = rule.get("times", 1)
        if kind == "cursor_stuck":
            fault.api = "instances.list"
        return fault

    def observe(self, service: str, api: str) -> bool:
        """Count the call if it matches; True when it does."""
        matches = service == self.service and self.api in (None, api)
        self.seen += matches
        return matches

    def due(self) -> bool:
        exhausted = self.times is not None and self.hits >= self.times
        return self.seen > self.after and not exhausted


def supported_kinds(service: str) -> set[str]:
    own = set(REPLIES_BY_SERVICE[service]) | ACTED_BY_SERVICE[service]
    return own | COMMON_REPLIES | COMMON_DELIVERY


class Faults:
    def __init__(self, rules: list[dict] | None = None):
        self.rules = [FaultRule.from_dict(rule) for rule in rules or []]

    def add(self, rule: dict) -> None:
        self.rules.append(FaultRule.from_dict(rule))

    def clear(self) -> None:
        self.rules.clear()

    def pick(self, service: str, api: str) -> FaultRule | None:
        """The rule that hits this call, if any. Every matching rule counts the call."""
        chosen = None
        for rule in self.rules:
            if rule.observe(service, api) and chosen is None and rule.due():
                rule.hits += 1
                chosen = rule
        return chosen


def canned_reply(rule: FaultRule, api: str) -> Reply | None:
    """The answer that replaces the service's own, or None if the service answers."""
    if rule.kind in COMMON_REPLIES:
        return common_reply(rule)
    answer = REPLIES_BY_SERVICE[rule.service].get(rule.kind)
    return answer(rule.params, api) if answer else None


def common_reply(rule: FaultRule) -> Reply:
    status = rule.params.get("status", 200)
    if rule.kind == "ip_ban_html":
        return html_reply(IP_BAN_HTML, status, billed=False)
    if rule.kind == "punish":
        ban = {"status": 1111, "wait": 5, "source": "x5", "punish": "deny"}
        return json_reply({**ban, "uuid": str(uuid.uuid4())}, status, billed=False)
    if rule.kind == "drop":
        return dropped()
    # malformed_json: cut off mid-answer, as a proxy that gave up would
    return Reply(200, b'{"success":true,"result":{"list":["')


def delivered(reply: Reply, rule: FaultRule | None) -> Reply:
    """The service's answer as the faulty network delivers it."""
    if rule is None:
        return reply
    if rule.kind == "write_lost":
        # the work is done and billed; only the answer never arrives
        return dropped(billed=reply.billed)
    if rule.kind == "wrong_shape":
        return misshapen(reply, rule.params.get("body"))
    return reply


def misshapen(reply: Reply, body: object) -> Reply:
    payload = reply.payload()
    if reply.status != 200 or not isinstance(payload, dict):
        return reply
    if body is not None:
        return json_reply(body)
    if isinstance(payload.get("result"), dict):
        payload["result"] = {k: garble(v) for k, v in payload["result"].items()}
    elif "result" in payload:
        payload["result"] = json.dumps(payload["result"], ensure_ascii=False)
    else:
        payload = {k: garble(v) for k, v in payload.items()}
    return json_reply(payload)


def garble(value: object) -> object:
    """The same value in a type a careless server might send instead."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value
