"""Emulated DingTalk custom group robot (自定义机器人) with 加签 signing.

An old-family (oapi) endpoint: every answer is HTTP 200 and errors are a non-zero
``errcode``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import NoReturn

from .limits import Window
from .wire import Refusal, Reply, Request, robot_reply

# errcodes from the DingTalk reference
SECURITY_CHECK_FAILED = 310000
TOO_FAST = 410100
UNKNOWN_TOKEN = 300005
BUSY = -1
# NOT in the reference: the codes for a malformed or oversized message are unconfirmed
MISSING_PARAMETER = 40035
MESSAGE_TOO_LONG = 460101

MESSAGES_PER_MINUTE = 20
PENALTY_SECONDS = 600  # going over the limit silences the robot for 10 minutes
TIMESTAMP_TOLERANCE_MS = 3_600_000
MAX_MARKDOWN_CHARS = 5000


def refuse(errcode: int, errmsg: str) -> NoReturn:
    raise Refusal(robot_reply(errcode, errmsg))


def robot_sign(secret: str, timestamp_ms: str) -> str:
    """The base64 signature of "timestamp\\nsecret" (URL-encode it for the query)."""
    to_sign = f"{timestamp_ms}\n{secret}".encode("utf-8")
    digest = hmac.new(secret.encode("utf-8"), to_sign, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def message_text(message: dict) -> str:
    kind = message.get("msgtype")
    content = message.get(kind) if isinstance(kind, str) else None
    if not isinstance(content, dict):
        refuse(MISSING_PARAMETER, "缺少参数 json")
    return str(content.get("content", "")) + str(content.get("text", ""))


# -- fault answers this family gives ---------------------------------------------------


def throttled(params: dict, api: str) -> Reply:
    return robot_reply(TOO_FAST, "send too fast, exceed 20 times per minute")


def server_error(params: dict, api: str) -> Reply:
    return robot_reply(BUSY, "系统繁忙")


def ip_not_whitelisted(params: dict, api: str) -> Reply:
    ip = params.get("ip", "127.0.0.1")
    return robot_reply(SECURITY_CHECK_FAILED, f"ip {ip} not in whitelist")


def bad_credentials(params: dict, api: str) -> Reply:
    return robot_reply(UNKNOWN_TOKEN, "token is not exist")


FAULT_REPLIES = {
    "throttle": throttled,
    "server_error": server_error,
    "ip_not_whitelisted": ip_not_whitelisted,
    "bad_credentials": bad_credentials,
}
SERVICE_FAULTS: set[str] = set()


class Robot:
    """One group robot: its token, its signing secret and the messages it accepted."""

    def __init__(self, config: dict, clock):
        self.config = config
        self.clock = clock
        self.recent = Window(MESSAGES_PER_MINUTE, 60.0)
        self.silenced_until = 0.0
        self.messages: list[dict] = []

    def handle(self, api: str, request: Request, fault) -> Reply:
        try:
            return self.send(request)
        except Refusal as refusal:
            return refusal.reply

    def send(self, request: Request) -> Reply:
        if request.query.get("access_token") != self.config["access_token"]:
            refuse(UNKNOWN_TOKEN, "token is not exist")
        if self.config["secret"]:
            self._check_signature(request.query)
        message = request.json_object()
        if message is None:
            refuse(MISSING_PARAMETER, "缺少参数 json")
        self._check_content(message)
        self._check_pace()
        self.messages.append(message)
        return robot_reply()

    def _check_signature(self, query: dict) -> None:
        timestamp = query.get("timestamp", "")
        now_ms = self.clock() * 1000
        skew = abs(now_ms - int(timestamp)) if timestamp.isdigit() else None
        if skew is None or skew > TIMESTAMP_TOLERANCE_MS:
            refuse(SECURITY_CHECK_FAILED, "invalid timestamp")
        # the query parser has already URL-decoded the sign
        expected = robot_sign(self.config["secret"], timestamp)
        if not hmac.compare_digest(expected, query.get("sign", "")):
            refuse(SECURITY_CHECK_FAILED, "sign not match")

    def _check_content(self, message: dict) -> None:
        text = message_text(message)
        if message.get("msgtype") == "markdown" and len(text) > MAX_MARKDOWN_CHARS:
            refuse(MESSAGE_TOO_LONG, "message too long")
        keywords = self.config["keywords"]
        if keywords and not any(word in text for word in keywords):
            refuse(SECURITY_CHECK_FAILED, "keywords not in content")

    def _check_pace(self) -> None:
        now = self.clock()
        if now < self.silenced_until:
            refuse(TOO_FAST, "send too fast, exceed 20 times per minute")
        if not self.recent.allow(now):
            self.silenced_until = now + PENALTY_SECONDS
            refuse(TOO_FAST, "send too fast, exceed 20 times per minute")
