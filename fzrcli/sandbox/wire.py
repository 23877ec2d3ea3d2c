"""Requests and replies as the sandbox sees them, in each emulated family's envelope."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

JSON_TYPE = "application/json;charset=UTF-8"
HTML_TYPE = "text/html;charset=UTF-8"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json_object(self) -> dict | None:
        """The body as a JSON object, or None when it is anything else."""
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None
        return value if isinstance(value, dict) else None

    def declares_json(self) -> bool:
        return self.headers.get("content-type", "").startswith("application/json")

    def recorded(self) -> dict | None:
        """What a Call keeps of the request: the JSON body, or the query of a GET."""
        if self.method == "GET":
            return dict(self.query)
        return self.json_object()


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    billed: bool = True  # DingTalk bills it against the monthly quota
    drop: bool = False  # close the socket instead of answering

    def payload(self) -> object:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


class Refusal(Exception):
    """Raised by an endpoint to answer with an error reply."""

    def __init__(self, reply: Reply):
        super().__init__(reply.status)
        self.reply = reply


def is_int(value: object) -> bool:
    # JSON true/false decode to bool, a subclass of int; no API takes them as numbers
    return isinstance(value, int) and not isinstance(value, bool)


def compact_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def encode(payload: object) -> bytes:
    return compact_json(payload).encode()


def json_reply(payload: object, status: int = 200, billed: bool = True) -> Reply:
    return Reply(status, encode(payload), billed=billed)


def html_reply(html: str, status: int, billed: bool = True) -> Reply:
    return Reply(status, html.encode(), HTML_TYPE, billed=billed)


def dropped(billed: bool = False) -> Reply:
    return Reply(0, drop=True, billed=billed)


def dingtalk_reply(payload: object) -> Reply:
    reply = json_reply(payload)
    reply.headers["x-acs-request-id"] = new_request_id()
    return reply


def dingtalk_error(status: int, code: str, message: str, billed: bool = True) -> Reply:
    request_id = new_request_id()
    body = {"requestid": request_id, "code": code, "message": message}
    reply = json_reply(body, status, billed)
    reply.headers["x-acs-request-id"] = request_id
    return reply


def xbb_success(result: object) -> Reply:
    return json_reply({"code": 1, "msg": "操作成功", "success": True, "result": result})


def xbb_failure(code: int, msg: str) -> Reply:
    # business failures are HTTP 200 and carry no "result" key
    return json_reply({"code": code, "msg": msg, "success": False})


def robot_reply(errcode: int = 0, errmsg: str = "ok") -> Reply:
    # the old DingTalk family answers errors with HTTP 200 and a non-zero errcode
    return json_reply({"errcode": errcode, "errmsg": errmsg})


def new_request_id() -> str:
    return str(uuid.uuid4()).upper()
