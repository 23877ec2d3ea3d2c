"""The DingTalk group robot (自定义机器人): signed markdown posts within its limits.

A robot that receives a 21st message within a minute goes silent for ten minutes, so
every post takes a slot in a one-minute window kept in the state table before it leaves
(shared by every fzr process on this state file). The webhook URL carries the robot's
token and the signed query carries the signature: neither may reach a log line or an
error message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
from urllib.parse import quote_plus

from fzrcli.errors import Failure, FzrError, ServiceError
from fzrcli.store import Store
from fzrcli.timeutil import now_ms
from fzrcli.transport import Budget, CallLog, Reply, Transport, call_with_retries

log = logging.getLogger(__name__)

SERVICE = "robot"
API = "send"
MAX_MARKDOWN_CHARS = 5000
PER_MINUTE = 20
WINDOW_MS = 60_000
SILENCE_MS = 600_000  # how long DingTalk mutes a robot that went over its limit
SENT_KEY = "robot_sent_ms"
SILENT_KEY = "robot_silent_until_ms"
ATTEMPTS = 3
SEND_BUDGET_S = 30.0

TOO_FAST = {"410100", "660026"}
BUSY = {"-1"}
REFUSALS = {
    "310000": "the robot's security check failed ({errmsg}); check FZR_ROBOT_SECRET, "
    "the robot's keywords and its IP whitelist",
    "300005": "the robot token does not exist; check FZR_ROBOT_WEBHOOK",
    "400101": "the robot token does not exist; check FZR_ROBOT_WEBHOOK",
    "400102": "the robot is disabled in its group",
    "400106": "the robot does not exist; check FZR_ROBOT_WEBHOOK",
    "400013": "the robot's group was dissolved",
}
UNSAFE_CONTENT = {"430101", "430102", "430103", "430104"}


class RobotPaced(FzrError):
    """Sending now would exceed the robot's limit; nothing was sent."""


def sign(secret: str, timestamp_ms: int | str) -> str:
    """The 加签 signature for the query: base64 HMAC-SHA256 of "timestamp\\nsecret",
    URL-encoded."""
    to_sign = f"{timestamp_ms}\n{secret}".encode("utf-8")
    digest = hmac.new(secret.encode("utf-8"), to_sign, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode("ascii"))


def signed_url(webhook: str, secret: str, timestamp_ms: int) -> str:
    joiner = "&" if "?" in webhook else "?"
    signature = sign(secret, timestamp_ms)
    return f"{webhook}{joiner}timestamp={timestamp_ms}&sign={signature}"


def markdown_message(title: str, text: str) -> dict:
    return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}


class Robot:
    """One group robot, reached through its webhook and signed with its secret."""

    def __init__(self, webhook: str, secret: str, store: Store, calls: CallLog):
        self.webhook = webhook
        self.secret = secret
        self.store = store
        self.calls = calls
        self.budget = Budget(SEND_BUDGET_S)
        self.transport = Transport(SERVICE, webhook, calls, self.budget)

    def send_markdown(self, title: str, text: str) -> None:
        if len(text) > MAX_MARKDOWN_CHARS:
            raise FzrError(
                f"robot message is {len(text)} characters; the robot takes "
                f"at most {MAX_MARKDOWN_CHARS}"
            )
        body = json.dumps(markdown_message(title, text), ensure_ascii=False).encode()
        call_with_retries(
            lambda: self._post(body),
            budget=self.budget,
            attempts=ATTEMPTS,
            calls=self.calls,
        )
        log.info("robot message %r sent (%d characters)", title, len(text))

    def _post(self, body: bytes) -> None:
        # Signed afresh for every attempt: DingTalk refuses timestamps over an hour old.
        moment = now_ms()
        take_slot(self.store, moment)
        self.calls.record(SERVICE, API, metered=False)
        reply = self.transport.send(
            "POST",
            signed_url(self.webhook, self.secret, moment),
            api=API,
            body=body,
            headers={"Content-Type": "application/json;charset=utf-8"},
        )
        check_reply(reply, self.store)


def take_slot(store: Store, moment: int) -> None:
    """Count one message against the robot's minute, or refuse before it is sent."""
    with store.transaction():
        silent_until = int(store.get_state(SILENT_KEY, 0) or 0)
        if moment < silent_until:
            wait = math.ceil((silent_until - moment) / 1000)
            raise RobotPaced(
                f"the robot was throttled by DingTalk and stays silent "
                f"for another {wait} s; nothing sent"
            )
        recent = [t for t in store.get_state(SENT_KEY, []) if t > moment - WINDOW_MS]
        if len(recent) >= PER_MINUTE:
            wait = math.ceil((min(recent) + WINDOW_MS - moment) / 1000)
            raise RobotPaced(
                f"the robot already took {PER_MINUTE} messages in the "
                f"last minute (DingTalk's limit; one more mutes it for "
                f"10 minutes); nothing sent, try again in {wait} s"
            )
        store.set_state(SENT_KEY, recent + [moment])


def check_reply(reply: Reply, store: Store) -> None:
    """The robot answers HTTP 200 with an errcode; anything but 0 is a refusal."""
    if reply.status >= 500 or reply.status == 429:
        raise ServiceError(
            SERVICE, API, Failure.RETRY, "robot unavailable", status=reply.status
        )
    answer = _answer(reply)
    code = str(answer.get("errcode", "")).strip()
    message = str(answer.get("errmsg", ""))
    if code == "0":
        return
    if code in BUSY:
        raise ServiceError(
            SERVICE, API, Failure.RETRY, f"robot busy: {message}", code=code
        )
    if code in TOO_FAST:
        _note_silenced(store)
    raise ServiceError(
        SERVICE,
        API,
        Failure.PERMANENT,
        _explain(code, message),
        code=code,
        status=reply.status if reply.status != 200 else None,
    )


def _answer(reply: Reply) -> dict:
    try:
        answer = json.loads(reply.body)
    except (ValueError, UnicodeDecodeError):
        answer = None
    if not isinstance(answer, dict) or "errcode" not in answer:
        raise ServiceError(
            SERVICE,
            API,
            Failure.PERMANENT,
            "the webhook did not answer like a DingTalk robot; check FZR_ROBOT_WEBHOOK",
            status=reply.status,
        )
    return answer


def _explain(code: str, message: str) -> str:
    if code in TOO_FAST:
        return (
            f"the robot refused the message as too fast ({message}); DingTalk "
            "mutes it for 10 minutes"
        )
    if code in UNSAFE_CONTENT:
        return f"the robot refused the content as unsafe ({message})"
    if code in REFUSALS:
        return REFUSALS[code].format(errmsg=message)
    return f"the robot refused the message: {message or 'no reason given'}"


def _note_silenced(store: Store) -> None:
    with store.transaction():
        store.set_state(SILENT_KEY, now_ms() + SILENCE_MS)
