"""The sandbox server: one local HTTP server that is DingTalk, XBB and a group robot.

It binds to 127.0.0.1 on an ephemeral port and nowhere else. Every call is recorded as a
Call, so tests and the benchmark can count what fzr spent; all state sits behind one
lock, so fzr may call it from several threads.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from . import scenario as scenarios
from .dingtalk import DingTalk
from .faults import Faults, canned_reply, delivered
from .robot import Robot
from .scenario import Directory, section
from .wire import Reply, Request, json_reply
from .xbb import Xbb

HOST = "127.0.0.1"
DINGTALK_ROUTES = {
    ("POST", "/v1.0/oauth2/accessToken"): "token",
    ("POST", "/v1.0/workflow/processes/instanceIds/query"): "instances.list",
    ("GET", "/v1.0/workflow/processInstances"): "instances.get",
    ("POST", "/v1.0/workflow/processInstances/comments"): "comments.add",
    ("GET", "/v1.0/workflow/forms/schemas/processCodes"): "forms.schema",
}
XBB_PREFIX = "/pro/v2/api/"
ROBOT_PATH = "/robot/send"


@dataclass(frozen=True)
class Call:
    service: str
    api: str
    metered: bool  # counts against DingTalk's monthly quota
    status: int  # HTTP status; 0 when the connection was dropped unanswered
    at: float
    request: dict | None


def route(method: str, path: str) -> tuple[str, str] | None:
    """(service, api) for a request line, or None when nothing lives there."""
    if (method, path) in DINGTALK_ROUTES:
        return "dingtalk", DINGTALK_ROUTES[(method, path)]
    if method == "POST" and path.startswith(XBB_PREFIX):
        return "xbb", path[len(XBB_PREFIX) :].strip("/").replace("/", ".")
    if method == "POST" and path == ROBOT_PATH:
        return "robot", "robot.send"
    return None


def not_found() -> Reply:
    # what the v1.0 gateway answers for an unknown path or method
    body = {
        "code": "InvalidAction.NotFound",
        "message": "Specified api is not found, please check your url and method.",
    }
    return json_reply(body, 404, billed=False)


class Sandbox:
    """A scenario, served over HTTP on 127.0.0.1."""

    def __init__(self, scenario: dict | str | os.PathLike, clock=time.time):
        if not isinstance(scenario, dict):
            scenario = scenarios.load_scenario(scenario)
        scenarios.check_scenario(scenario)
        self._lock = threading.RLock()
        self._clock = clock
        self._calls: list[Call] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._build(scenario)

    def _build(self, scenario: dict) -> None:
        dingtalk = section(scenario, "dingtalk", scenarios.DINGTALK_DEFAULTS)
        xbb = section(scenario, "xbb", scenarios.XBB_DEFAULTS)
        limits = section(scenario, "limits", scenarios.LIMITS_DEFAULTS)
        directory = Directory(scenario.get("users", {}))
        directory.ensure(xbb["operator"], "系统管理员")
        if dingtalk["comment_user_id"]:
            directory.ensure(dingtalk["comment_user_id"], "fzr 助手", in_xbb=False)
        self.latency = limits["latency_ms"] / 1000
        self.dingtalk = DingTalk(dingtalk, directory, limits, self._clock)
        self.xbb = Xbb(xbb, directory, limits, self._clock)
        self.robot = None
        if scenario.get("robot") is not None:
            robot = section(scenario, "robot", scenarios.ROBOT_DEFAULTS)
            self.robot = Robot(robot, self._clock)
        self._faults = Faults(scenario.get("faults"))

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, port: int = 0) -> Sandbox:
        server = _Server((HOST, port), _Handler)
        server.sandbox = self
        server.connections = set()
        self._server = server
        self.dingtalk.public_url = self.url
        # a short poll keeps stop() quick: tests start and stop many sandboxes
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="fzr-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        # idle keep-alive connections would otherwise hold their threads forever
        for connection in list(self._server.connections):
            close_quietly(connection)
        self._thread.join()
        self._server = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not running; call start() first")
        return f"http://{HOST}:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """Environment variables that point fzr at this sandbox."""
        dingtalk, xbb = self.dingtalk.config, self.xbb.config
        env = {
            "FZR_DINGTALK_BASE_URL": self.url,
            "FZR_XBB_BASE_URL": self.url,
            "FZR_DINGTALK_APP_KEY": dingtalk["app_key"],
            "FZR_DINGTALK_APP_SECRET": dingtalk["app_secret"],
            "FZR_PROCESS_CODE": dingtalk["process_code"],
            "FZR_XBB_CORPID": xbb["corpid"],
            "FZR_XBB_TOKEN": xbb["token"],
            "FZR_XBB_USER_ID": xbb["operator"],
            "FZR_XBB_FORM_ID": str(xbb["form_id"]),
        }
        if dingtalk["comment_user_id"]:
            env["FZR_COMMENT_USER_ID"] = dingtalk["comment_user_id"]
        if self.robot is not None:
            token = self.robot.config["access_token"]
            env["FZR_ROBOT_WEBHOOK"] = f"{self.url}{ROBOT_PATH}?access_token={token}"
            if self.robot.config["secret"]:
                env["FZR_ROBOT_SECRET"] = self.robot.config["secret"]
        return env

    # -- what happened -----------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def count(self, service=None, api=None, metered=None) -> int:
        wanted = {"service": service, "api": api, "metered": metered}
        wanted = {key: value for key, value in wanted.items() if value is not None}
        calls = self.calls
        return sum(all(getattr(c, k) == v for k, v in wanted.items()) for c in calls)

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def comments(self, instance_id: str) -> list[str]:
        with self._lock:
            return self.dingtalk.comments(instance_id)

    @property
    def robot_messages(self) -> list[dict]:
        with self._lock:
            return list(self.robot.messages) if self.robot else []

    @property
    def distributions(self) -> list[dict]:
        """Accepted distribution calls, with the request shape each one used."""
        with self._lock:
            return list(self.xbb.distributions)

    @property
    def quota_used(self) -> int:
        with self._lock:
            return self.dingtalk.quota_used

    def customer(self, data_id: int) -> dict:
        with self._lock:
            return self.xbb.snapshot(data_id)

    # -- changing the world ------------------------------------------------------------

    def add_instance(self, **spec) -> str:
        with self._lock:
            return self.dingtalk.add_instance(spec)

    def finish_instance(
        self, instance_id: str, result: str = "agree", status: str = "COMPLETED"
    ) -> None:
        with self._lock:
            self.dingtalk.finish_instance(instance_id, result, status)

    def add_customer(self, **spec) -> int:
        with self._lock:
            return self.xbb.add_customer(spec)

    def add_fault(self, rule: dict) -> None:
        with self._lock:
            self._faults.add(rule)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- answering ---------------------------------------------------------------------

    def dispatch(self, request: Request) -> Reply:
        target = route(request.method, request.path)
        if target is None:
            return not_found()
        service, api = target
        if self.latency:
            time.sleep(self.latency)
        with self._lock:
            fault = self._faults.pick(service, api)
        if fault and fault.kind == "slow":
            time.sleep(fault.params.get("delay_s", 2))
        with self._lock:
            reply = self._answer(service, api, request, fault)
            self._record(service, api, request, reply)
        return reply

    def _answer(self, service: str, api: str, request: Request, fault) -> Reply:
        server = {"dingtalk": self.dingtalk, "xbb": self.xbb, "robot": self.robot}
        if server[service] is None:
            return not_found()
        canned = canned_reply(fault, api) if fault else None
        if canned is not None:
            return canned
        reply = server[service].handle(api, request, fault)
        return delivered(reply, fault)

    def _record(self, service: str, api: str, request: Request, reply: Reply) -> None:
        # every DingTalk call but the token is metered, unless the platform would not
        # bill it (throttled, dropped, banned, over quota)
        metered = service == "dingtalk" and api != "token" and reply.billed
        if metered:
            self.dingtalk.quota_used += 1
        recorded = request.recorded()
        call = Call(service, api, metered, reply.status, self._clock(), recorded)
        self._calls.append(call)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # A client killed mid-call (the crash tests do it on purpose) is not news.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as fzr's pooled session expects
    server_version = "fzr-sandbox"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        reply = self.server.sandbox.dispatch(self._request(method))
        if reply.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def _request(self, method: str) -> Request:
        parts = urlsplit(self.path)
        fields = parse_qs(parts.query, keep_blank_values=True)
        query = {name: values[0] for name, values in fields.items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        return Request(method, parts.path, query, headers, body)

    def log_message(self, format: str, *args) -> None:
        pass  # the Call log is the record; stderr stays quiet for fzr's own output


def close_quietly(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def serve(scenario: dict | str | Path, port: int = 0) -> None:
    """Run a sandbox in the foreground, printing `export` lines for its environment."""
    sandbox = Sandbox(scenario).start(port)
    for name, value in sandbox.env().items():
        print(f"export {name}={shlex.quote(value)}", flush=True)
    # stdout stays eval-able; the note for people goes to stderr
    print(f"sandbox listening on {sandbox.url}; Ctrl-C stops it", file=sys.stderr)
    try:
        wait_for_interrupt()
    finally:
        sandbox.stop()


def wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
