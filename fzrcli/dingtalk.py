"""DingTalk v1.0 client: access token, instance-id listing, instance details, comments.

Only the v1.0 family (api.dingtalk.com) is used for approvals; the old ``topapi``
approval endpoints are deprecated and new apps may not get their permission.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Iterator

from fzrcli.errors import Failure, ServiceError
from fzrcli.store import Store
from fzrcli.timeutil import now_ms
from fzrcli.transport import Budget, CallLog, RateLimiter, Reply, Transport
from fzrcli.transport import call_with_retries

log = logging.getLogger(__name__)

SERVICE = "dingtalk"
PAGE_SIZE = 20  # the API refuses more with invalidMaxResults
MAX_PAGES = 500  # 10,000 ids: the API's own cap per query loop
TOKEN_MARGIN_MS = 300_000  # renew five minutes before expiry
QPS_PER_API = 19.0  # the standard edition allows 20 per app per API

# v1.0 error codes and what they mean for fzr: (class, message for the operator).
FATAL_CODES = {
    "invalidClientIdOrSecret": "DingTalk rejected FZR_DINGTALK_APP_KEY / "
    "FZR_DINGTALK_APP_SECRET; check them in the developer console",
    "Forbidden.AccessDenied.AccessTokenPermissionDenied": "the DingTalk app lacks a "
    "permission; grant it in the developer console",
    "Forbidden.AccessDenied.IpNotInWhiteList": "this server's IP is not on the "
    "DingTalk app's whitelist; add it in the developer console",
    "Forbidden.AccessDenied.ApiCountLimitForOrg": "the organisation's monthly DingTalk "
    "API quota is used up; fzr pauses DingTalk calls and tries again once an hour "
    "until the month turns or a pack is bought",
    "Forbidden.AccessDenied.QpmLimitForAppkeyAndApi": "DingTalk's per-minute limit was "
    "hit; the next pass carries on",
    "invalidProcessCode": "FZR_PROCESS_CODE is empty or wrong",
    "processCodeError": "FZR_PROCESS_CODE is not a form of this organisation",
    "processSetupNoPermission": "the app may not read this approval form",
    "userNotExist": "FZR_COMMENT_USER_ID is not a user of this organisation",
    "invalidInstanceCommentUserId": "FZR_COMMENT_USER_ID is not a valid user id",
    "invalidEndTime": "DingTalk refused the listing window (span over 120 days or "
    "start older than 365 days)",
    "invalidMaxResults": "DingTalk refused the page size",
    "invalidNextToken": "DingTalk refused the paging token",
    "AuthenticationFailed.MissingParameter": "the access token did not reach DingTalk",
}
TOKEN_CODES = {"InvalidAuthentication", "accesstoken.expired", "InvalidAccessToken"}
THROTTLE_CODES = {
    "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi": 1.0,
    "Forbidden.AccessDenied.QpsLimitForApi": 2.0,
    "system.busy": 1.0,
    "systemBusy": 1.0,
}
# The fields of an instance that decisions rest on, with the types the API documents.
INSTANCE_TYPES = {
    "status": str,
    "result": str,
    "bizAction": str,
    "businessId": str,
    "createTime": str,
    "finishTime": str,
    "formComponentValues": list,
    "operationRecords": list,
}
PERMANENT_CODES = {
    "processInstanceIdError",
    "processInstanceNotExist",
    "aflowProcessInstNotExist",
    "invalidInstanceId",
    "aflowProcessInstCanNotBeExecuted",
    "invalidInstanceCommentText",
}
FORM_MISSING_CODES = {"formNotExist", "aflowProcessCodeIsError"}


@dataclass(frozen=True)
class Page:
    ids: list[str]
    next_token: int | None


class DingTalk:
    def __init__(self, settings, store: Store, calls: CallLog, budget: Budget):
        self.settings = settings
        self.store = store
        self.calls = calls
        self.budget = budget
        self.transport = Transport(SERVICE, settings.dingtalk_base_url, calls, budget)
        self.limiters: dict[str, RateLimiter] = {}
        self.token_lock = threading.Lock()
        self.token: str | None = None
        self.token_expires_ms = 0
        self.token_renewals = 0

    # -- access token ---------------------------------------------------------------

    def access_token(self) -> str:
        with self.token_lock:
            if self.token and now_ms() < self.token_expires_ms - TOKEN_MARGIN_MS:
                return self.token
            cached = self.store.load_token(self.settings.app_secret)
            if cached and now_ms() < cached[1] - TOKEN_MARGIN_MS:
                self.token, self.token_expires_ms = cached
                return self.token
            return self._new_token()

    def _new_token(self) -> str:
        body = {"appKey": self.settings.app_key, "appSecret": self.settings.app_secret}
        answer = call_with_retries(
            lambda: self._exchange("POST", "/v1.0/oauth2/accessToken", "token", body),
            budget=self.budget,
            calls=self.calls,
        )
        token, expire_in = answer.get("accessToken"), answer.get("expireIn")
        if not isinstance(token, str) or not token or not isinstance(expire_in, int):
            raise ServiceError(
                SERVICE, "token", Failure.FATAL, "malformed token answer"
            )
        self.token, self.token_expires_ms = token, now_ms() + expire_in * 1000
        self.store.save_token(token, self.token_expires_ms, self.settings.app_secret)
        return token

    def _refused(self, refused: str) -> None:
        """A token DingTalk says is invalid: renew it, unless a call in another thread
        already has. Fresh tokens refused again and again mean something is wrong that
        renewing will not fix."""
        with self.token_lock:
            if self.token != refused:
                return
            self.token_renewals += 1
            if self.token_renewals > 2:
                raise ServiceError(
                    SERVICE,
                    "token",
                    Failure.FATAL,
                    "DingTalk keeps refusing fresh access tokens",
                )
            self.store.forget_token()
            self.token = None
            self._new_token()

    # -- calls ----------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        api: str,
        *,
        body: dict | None = None,
        params: dict | None = None,
        idempotent: bool = True,
    ) -> dict:
        """One metered v1.0 call with pacing, bounded retries and one token renewal."""
        for attempt in range(2):
            token = self.access_token()
            try:
                return call_with_retries(
                    lambda token=token: self._exchange(
                        method, path, api, body, params, token
                    ),
                    budget=self.budget,
                    limiter=self._limiter(api),
                    calls=self.calls,
                    idempotent=idempotent,
                )
            except ServiceError as error:
                if error.kind is not Failure.TOKEN:
                    raise
                if attempt:
                    break  # renewing again would not help: the fresh one was refused
                log.info("DingTalk refused the access token; renewing it")
                self._refused(token)
        raise ServiceError(
            SERVICE,
            api,
            Failure.FATAL,
            "DingTalk refused a freshly renewed access token",
        )

    def _limiter(self, api: str) -> RateLimiter:
        if api not in self.limiters:
            self.limiters[api] = RateLimiter(QPS_PER_API)
        return self.limiters[api]

    def _exchange(
        self,
        method: str,
        path: str,
        api: str,
        body: dict | None,
        params: dict | None = None,
        token: str | None = None,
    ) -> dict:
        if token is not None:
            self._limiter(api).acquire(self.budget)
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["x-acs-dingtalk-access-token"] = token
        raw = json.dumps(body).encode() if body is not None else None
        reply = self.transport.send(
            method, path, api=api, params=params, body=raw, headers=headers
        )
        try:
            answer = decode_v1(reply, api)
        except ServiceError as error:
            # Refused calls count against the quota too, except throttled ones and
            # block pages (no DingTalk answer at all), as the platform bills them.
            billed = error.retry_after is None and bool(error.code)
            self.calls.record(SERVICE, api, metered=token is not None and billed)
            raise
        self.calls.record(SERVICE, api, metered=token is not None)
        return answer

    # -- the three approval calls ---------------------------------------------------

    def list_page(
        self, start_ms: int, end_ms: int, token: int, statuses: list[str] | None
    ) -> Page:
        body = {
            "processCode": self.settings.process_code,
            "startTime": start_ms,
            "endTime": end_ms,
            "nextToken": token,
            "maxResults": PAGE_SIZE,
        }
        if statuses:
            body["statuses"] = statuses
        answer = self.call(
            "POST",
            "/v1.0/workflow/processes/instanceIds/query",
            "instances.list",
            body=body,
        )
        return parse_page(answer)

    def list_ids(
        self, start_ms: int, end_ms: int, statuses: list[str] | None = None
    ) -> Iterator[str]:
        """Every id in the window, each once; follows nextToken until a successful
        page has none. A repeating token or page, or too many pages, aborts."""
        seen: set[str] = set()
        tokens: set[int] = set()
        token = 0
        for _ in range(MAX_PAGES):
            page = self.list_page(start_ms, end_ms, token, statuses)
            fresh = [i for i in page.ids if i not in seen]
            if page.ids and not fresh and page.next_token is not None:
                raise _listing_broken("a page repeated ids already listed")
            seen.update(fresh)
            yield from fresh
            if page.next_token is None:
                return
            if page.next_token in tokens or page.next_token == token:
                raise _listing_broken(f"the paging token {page.next_token} repeated")
            tokens.add(page.next_token)
            token = page.next_token
        raise _listing_broken(f"more than {MAX_PAGES} pages in one window")

    def get_instance(self, instance_id: str) -> dict:
        answer = self.call(
            "GET",
            "/v1.0/workflow/processInstances",
            "instances.get",
            params={"processInstanceId": instance_id},
        )
        result = answer.get("result")
        if not isinstance(result, dict):
            raise ServiceError(
                SERVICE, "instances.get", Failure.RETRY, "answer has no instance object"
            )
        mistyped = [
            key
            for key, kind in INSTANCE_TYPES.items()
            if not isinstance(result.get(key), (kind, type(None)))
        ]
        if mistyped:
            # Read as they came, a mistyped status or form could pass for running or
            # invalid, and the approval would never be acted on.
            raise ServiceError(
                SERVICE,
                "instances.get",
                Failure.RETRY,
                f"answer has mistyped {', '.join(mistyped)}",
            )
        return result

    def form_schema(self) -> dict:
        answer = self.call(
            "GET",
            "/v1.0/workflow/forms/schemas/processCodes",
            "forms.schema",
            params={"processCode": self.settings.process_code},
        )
        result = answer.get("result")
        if not isinstance(result, dict):
            raise ServiceError(
                SERVICE, "forms.schema", Failure.RETRY, "answer has no form schema"
            )
        return result

    def add_comment(self, instance_id: str, text: str, user_id: str) -> None:
        body = {
            "processInstanceId": instance_id,
            "text": text,
            "commentUserId": user_id,
        }
        # No idempotency key: a comment whose answer was lost is looked for, not resent.
        self.call(
            "POST",
            "/v1.0/workflow/processInstances/comments",
            "comments.add",
            body=body,
            idempotent=False,
        )


def _listing_broken(why: str) -> ServiceError:
    return ServiceError(
        SERVICE,
        "instances.list",
        Failure.FATAL,
        f"listing stopped: {why}; nothing was marked done",
    )


def parse_page(answer: dict) -> Page:
    result = answer.get("result")
    ids = result.get("list") if isinstance(result, dict) else None
    if ids is None and isinstance(result, dict):
        ids = []
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise ServiceError(
            SERVICE,
            "instances.list",
            Failure.FATAL,
            "listing answer has no list of instance ids",
        )
    return Page(ids, _next_token(result.get("nextToken")))


def _next_token(raw: object) -> int | None:
    """nextToken comes back as a string ("20") but must be sent as a number; the last
    page has it absent, empty or null (which one is unconfirmed)."""
    if raw is None or raw == "" or raw == "null":
        return None
    if isinstance(raw, bool):
        raise ServiceError(
            SERVICE, "instances.list", Failure.FATAL, f"unusable paging token {raw!r}"
        )
    try:
        return int(str(raw).strip())
    except ValueError:
        raise ServiceError(
            SERVICE,
            "instances.list",
            Failure.FATAL,
            f"unusable paging token {str(raw)[:40]!r}",
        ) from None


def decode_v1(reply: Reply, api: str) -> dict:
    """The v1.0 envelope: success is HTTP 200 with a JSON object; errors are 4xx/5xx
    with {requestid, code, message}. An IP ban answers HTML or a "punish" object."""
    request_id = reply.headers.get("x-acs-request-id", "")
    try:
        answer = json.loads(reply.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        answer = None
    if isinstance(answer, dict) and "punish" in answer:
        raise _ip_ban(api, reply.status)
    if answer is None and reply.status < 500 and reply.body.lstrip()[:1] == b"<":
        raise _ip_ban(api, reply.status)
    if reply.status == 200:
        if isinstance(answer, dict):
            return answer
        raise ServiceError(
            SERVICE,
            api,
            Failure.RETRY,
            "answer is not a JSON object",
            status=200,
            request_id=request_id,
        )
    return _raise_error(
        reply, api, answer if isinstance(answer, dict) else {}, request_id
    )


def _ip_ban(api: str, status: int) -> ServiceError:
    return ServiceError(
        SERVICE,
        api,
        Failure.FATAL,
        "DingTalk answered with a block page (this IP is likely banned for about 5 "
        "minutes after too many calls); the pass stopped and the next one resumes",
        status=status,
    )


def _raise_error(reply: Reply, api: str, answer: dict, request_id: str):
    code = str(answer.get("code") or "")
    message = str(answer.get("message") or "")[:300]
    request_id = str(answer.get("requestid") or request_id)
    extra = {"code": code, "status": reply.status, "request_id": request_id}
    if code in TOKEN_CODES:
        raise ServiceError(
            SERVICE, api, Failure.TOKEN, message or "token refused", **extra
        )
    if code in THROTTLE_CODES or reply.status == 429:
        raise ServiceError(
            SERVICE,
            api,
            Failure.RETRY,
            "throttled by DingTalk",
            retry_after=THROTTLE_CODES.get(code, 1.0),
            **extra,
        )
    if code in FATAL_CODES:
        text = FATAL_CODES[code] + (f" ({message})" if message else "")
        raise ServiceError(SERVICE, api, Failure.FATAL, text, **extra)
    if code in PERMANENT_CODES:
        raise ServiceError(SERVICE, api, Failure.PERMANENT, message or code, **extra)
    if reply.status >= 500 or code in ("internalError", "systemError", "unknownError"):
        raise ServiceError(
            SERVICE, api, Failure.RETRY, message or "server error", **extra
        )
    raise ServiceError(
        SERVICE,
        api,
        Failure.FATAL,
        f"unexpected DingTalk error: {message or 'no message'}",
        **extra,
    )
