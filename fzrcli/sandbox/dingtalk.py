"""Emulated DingTalk v1.0: access tokens, approval instances, comments, form schema.

The quirks are kept on purpose, because fzr must survive them: errors are HTTP
4xx/5xx with ``{"requestid","code","message"}``; ``nextToken`` goes out as a string but
must come back as a number; ``success`` is a boolean in list and comments but the
string "true" in get; times are UTC with minute precision; ``finishTime`` is absent
while running and ``result`` absent when terminated; empty form fields read "null".
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import NoReturn

from .limits import Window
from .scenario import Directory, Person, check_keys, resolve_time
from .wire import (
    Refusal,
    Reply,
    Request,
    compact_json,
    dingtalk_error,
    dingtalk_reply,
    is_int,
)

CUSTOMERS_FIELD = ("TextareaField_1K334ML768QO0", "客户名称", "TextareaField")
NEW_OWNERS_FIELD = (
    "InnerContactField_1R9B45BYVYE80",
    "需添加的负责人",
    "InnerContactField",
)
CURRENT_OWNERS_FIELD = (
    "InnerContactField_0QW7Z1C3XYZ40",
    "选择任意当前客户负责人",
    "InnerContactField",
)
FORM_FIELDS = {
    "customers": CUSTOMERS_FIELD,
    "new_owners": NEW_OWNERS_FIELD,
    "current_owners": CURRENT_OWNERS_FIELD,
}
FORM_TITLE = "客户共管申请"

INSTANCE_KEYS = set(
    "id business_id title process_code created finished status result originator"
    " approver biz_action attached customers new_owners current_owners omit_fields"
    " form".split()
)
APIS = ("token", "instances.list", "instances.get", "comments.add", "forms.schema")
LISTED_STATUSES = {"RUNNING", "TERMINATED", "COMPLETED"}
UNFINISHED_STATUSES = {"RUNNING", "NEW"}
DAY_MS = 86_400_000
MAX_SPAN_MS = 120 * DAY_MS
MAX_LOOK_BACK_MS = 365 * DAY_MS
MAX_PAGE_SIZE = 20
MAX_USER_IDS = 10
MAX_COMMENT_CHARS = 1024
QPS_PER_API = 20
BEIJING = timezone(timedelta(hours=8))

QPS_LIMIT = "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"
SCOPE_BY_API = {
    "instances.list": "Workflow.Instance.Read",
    "instances.get": "Workflow.Instance.Read",
    "comments.add": "Workflow.Instance.Write",
    "forms.schema": "Workflow.Form.Read",
}


def refuse(code: str, message: str, status: int = 400, billed: bool = True) -> NoReturn:
    raise Refusal(dingtalk_error(status, code, message, billed))


def to_ms(seconds: float) -> int:
    return int(seconds * 1000)


def minute_time(ms: int) -> str:
    """v1.0 times: UTC, minute precision, "Z" suffix."""
    moment = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%MZ")


@dataclass
class Instance:
    id: str
    business_id: str
    title: str
    process_code: str
    originator: Person
    approver: str
    created_ms: int
    finished_ms: int | None
    status: str
    result: str | None
    biz_action: str
    attached: list[str]
    form: list[dict]
    remarks: list[tuple[int, dict]] = field(default_factory=list)

    @property
    def task_id(self) -> int:
        return int(hashlib.sha256(self.id.encode()).hexdigest()[:10], 16)

    def finish(self, status: str, result: str | None, now_ms: int) -> None:
        self.status = status
        self.finished_ms = None if status in UNFINISHED_STATUSES else now_ms
        # withdrawn instances carry no result at all
        self.result = None if status == "TERMINATED" else result


# -- building instances from scenario specs --------------------------------------------


def build_instance(
    spec: dict, seq: int, now: float, directory: Directory, process_code: str
) -> Instance:
    check_keys(spec, INSTANCE_KEYS, "instance")
    created = resolve_time(spec.get("created", "now"), now)
    status = spec.get("status") or ("COMPLETED" if spec.get("finished") else "RUNNING")
    originator = find_person(directory, spec.get("originator", "sandbox-user"))
    instance = Instance(
        id=spec.get("id") or str(uuid.uuid5(uuid.NAMESPACE_URL, f"fzr-sandbox/{seq}")),
        business_id=spec.get("business_id") or business_id(created, seq),
        title=spec.get("title") or f"{originator.name}提交的{FORM_TITLE}",
        process_code=spec.get("process_code") or process_code,
        originator=originator,
        approver=spec.get("approver") or default_approver(directory, originator.id),
        created_ms=to_ms(created),
        finished_ms=None,
        status=status,
        result=None,
        biz_action=spec.get("biz_action", "NONE"),
        attached=list(spec.get("attached", [])),
        form=render_form(spec, directory),
    )
    instance.finish(status, default_result(spec, status), to_ms(finish_time(spec, now)))
    return instance


def find_person(directory: Directory, user_id: str) -> Person:
    return directory.get(user_id) or Person(user_id, user_id)


def default_approver(directory: Directory, originator_id: str) -> str:
    others = (uid for uid in directory.people if uid != originator_id)
    return next(others, "manager001")


def business_id(created: float, seq: int) -> str:
    """审批编号: Beijing submission minute followed by a serial."""
    minute = datetime.fromtimestamp(created, BEIJING).strftime("%Y%m%d%H%M")
    return f"{minute}{seq:09d}"


def default_result(spec: dict, status: str) -> str | None:
    if status == "COMPLETED":
        return spec.get("result", "agree")
    return spec.get("result")


def finish_time(spec: dict, now: float) -> float:
    if spec.get("finished"):
        return resolve_time(spec["finished"], now)
    created = resolve_time(spec.get("created", "now"), now)
    return min(created + 1800, now)


def render_form(spec: dict, directory: Directory) -> list[dict]:
    if "form" in spec:
        return copy.deepcopy(spec["form"])
    omitted = set(spec.get("omit_fields", []))
    return [
        render_field(spec.get(key), component, directory)
        for key, component in FORM_FIELDS.items()
        if key not in omitted
    ]


def render_field(value: object, component: tuple, directory: Directory) -> dict:
    component_id, label, component_type = component
    entry = {"id": component_id, "name": label, "componentType": component_type}
    # DingTalk renders an empty field as the four-character string "null", no extValue
    entry.update(value="null", bizAlias="")
    if component_type == "TextareaField" and value:
        entry["value"] = value
    elif component_type == "InnerContactField" and value:
        people = [contact(uid, directory) for uid in value]
        entry["value"] = ",".join(p["name"] for p in people)
        entry["extValue"] = compact_json(people)
    return entry


def contact(user_id: str, directory: Directory) -> dict:
    return {
        "emplId": user_id,
        "name": directory.name(user_id),
        "avatar": "",
        "selectDeptId": "",
        "selectDeptName": "",
    }


# -- rendering an instance as processInstances get answers it --------------------------


def render_instance(instance: Instance, base_url: str) -> dict:
    result = {"title": instance.title, "createTime": minute_time(instance.created_ms)}
    if instance.finished_ms is not None:
        result["finishTime"] = minute_time(instance.finished_ms)
    result.update(
        originatorUserId=instance.originator.id,
        originatorDeptId=instance.originator.dept_id,
        originatorDeptName=instance.originator.dept_name,
        status=instance.status,
    )
    if instance.result:
        result["result"] = instance.result
    result.update(
        businessId=instance.business_id,
        bizAction=instance.biz_action,
        attachedProcessInstanceIds=list(instance.attached),
        mainProcessInstanceId="",
        approverUserIds=[instance.approver],
        ccUserIds=[],
        operationRecords=operation_records(instance),
        tasks=[approval_task(instance, base_url)],
        formComponentValues=copy.deepcopy(instance.form),
    )
    return result


def operation_records(instance: Instance) -> list[dict]:
    start = {
        "userId": instance.originator.id,
        "date": minute_time(instance.created_ms),
        "type": "START_PROCESS_INSTANCE",
        "result": "NONE",
        "showName": "发起人",
    }
    records = [(instance.created_ms, start)]
    if instance.finished_ms is not None:
        records.append((instance.finished_ms, closing_record(instance)))
    records.extend(instance.remarks)
    # stable sort: at equal times, start and finish stay ahead of remarks
    return [record for _, record in sorted(records, key=lambda item: item[0])]


def closing_record(instance: Instance) -> dict:
    date = minute_time(instance.finished_ms)
    if instance.status != "COMPLETED":
        return {
            "userId": instance.originator.id,
            "date": date,
            "type": "TERMINATE_PROCESS_INSTANCE",
            "result": "NONE",
            "showName": "发起人",
        }
    agreed = (instance.result or "").lower() == "agree"
    return {
        "userId": instance.approver,
        "date": date,
        "type": "EXECUTE_TASK_NORMAL",
        "result": "AGREE" if agreed else "REFUSE",
        "remark": "同意" if agreed else "不同意",
        "activityId": "b39a_73fb",
        "showName": "审批人",
    }


def approval_task(instance: Instance, base_url: str) -> dict:
    status, result = task_state(instance)
    task = {
        "taskId": instance.task_id,
        "userId": instance.approver,
        "status": status,
        "result": result,
        "createTime": minute_time(instance.created_ms),
    }
    if instance.finished_ms is not None:
        task["finishTime"] = minute_time(instance.finished_ms)
    link = f"{base_url}/aflow/task?procInstId={instance.id}&taskId={instance.task_id}"
    task.update(
        activityId="b39a_73fb",
        processInstanceId=instance.id,
        mobileUrl=link,
        pcUrl=link,
    )
    return task


def task_state(instance: Instance) -> tuple[str, str]:
    if instance.finished_ms is None:
        return "RUNNING", "NONE"
    if instance.status != "COMPLETED":
        return "CANCELED", "NONE"
    agreed = (instance.result or "").lower() == "agree"
    return "COMPLETED", "AGREE" if agreed else "REFUSE"


# -- request checks for instanceIds/query ----------------------------------------------


def list_window(body: dict, now_ms: int) -> tuple[int, int]:
    process_code = body.get("processCode")
    if not isinstance(process_code, str) or not process_code.strip():
        refuse("invalidProcessCode", "processCode不能为空")
    start = body.get("startTime")
    if start is None:
        refuse("invalidInstanceListIdsStartTime", "startTime不能为空")
    end = body.get("endTime", now_ms)
    if not is_int(start) or not is_int(end):
        refuse("invalidParameter", "startTime和endTime必须是毫秒时间戳")
    too_old = start < now_ms - MAX_LOOK_BACK_MS
    if end < start or end - start > MAX_SPAN_MS or too_old:
        # the platform blames the end time even when the start is too old
        refuse("invalidEndTime", "结束时间不合法，时间跨度不能超过120天")
    return start, end


def list_paging(body: dict) -> tuple[int, int]:
    token = body.get("nextToken")
    if token is None:
        refuse("invalidNextToken", "nextToken不能为空")
    if not is_int(token) or token < 0:
        # nextToken is answered as a string, yet the request must send a number
        refuse("invalidParameter", "参数nextToken类型错误，应为数字")
    size = body.get("maxResults")
    if not is_int(size) or not 1 <= size <= MAX_PAGE_SIZE:
        refuse("invalidMaxResults", "maxResults不能超过20")
    return token, size


def list_filters(body: dict) -> tuple[set | None, set | None]:
    statuses = body.get("statuses") or None
    if statuses is not None:
        if not isinstance(statuses, list) or not set(statuses) <= LISTED_STATUSES:
            refuse("invalidParameter", "statuses只能取RUNNING、TERMINATED、COMPLETED")
        statuses = set(statuses)
    user_ids = body.get("userIds") or None
    if user_ids is not None:
        if not isinstance(user_ids, list) or len(user_ids) > MAX_USER_IDS:
            refuse("invalidUserIds", "userIds最多10个")
        user_ids = set(user_ids)
    return statuses, user_ids


# -- fault answers this family gives ---------------------------------------------------


def throttled(params: dict, api: str) -> Reply:
    # the platform does not bill calls refused by its QPS limiter
    return dingtalk_error(403, QPS_LIMIT, "调用接口超过每秒调用次数限制", billed=False)


def server_error(params: dict, api: str) -> Reply:
    return dingtalk_error(500, "systemError", "系统繁忙，请稍后重试")


def permission_denied(params: dict, api: str) -> Reply:
    scope = params.get("scope") or SCOPE_BY_API.get(api, "Workflow.Instance.Read")
    code = "Forbidden.AccessDenied.AccessTokenPermissionDenied"
    return dingtalk_error(403, code, f"应用尚未开通所需的权限：[{scope}]")


def ip_not_whitelisted(params: dict, api: str) -> Reply:
    ip = params.get("ip", "127.0.0.1")
    code = "Forbidden.AccessDenied.IpNotInWhiteList"
    return dingtalk_error(403, code, f"访问ip不在白名单之中，请求ip：{ip}")


def quota_exhausted(params: dict, api: str) -> Reply:
    code = "Forbidden.AccessDenied.ApiCountLimitForOrg"
    return dingtalk_error(403, code, "企业当月API调用次数已超过上限", billed=False)


def bad_credentials(params: dict, api: str) -> Reply:
    message = "无效的clientId或者clientSecret"
    return dingtalk_error(400, "invalidClientIdOrSecret", message)


FAULT_REPLIES = {
    "throttle": throttled,
    "server_error": server_error,
    "permission_denied": permission_denied,
    "ip_not_whitelisted": ip_not_whitelisted,
    "quota_exhausted": quota_exhausted,
    "bad_credentials": bad_credentials,
}
# faults this service acts out itself rather than answering a canned reply
SERVICE_FAULTS = {"token_invalid", "cursor_stuck"}


class DingTalk:
    """One organisation's approvals behind the v1.0 API."""

    def __init__(self, config: dict, directory: Directory, limits: dict, clock):
        self.config = config
        self.directory = directory
        self.clock = clock
        self.instances: dict[str, Instance] = {}
        self.tokens: dict[str, float] = {}  # token -> expiry, epoch seconds
        self.current_token: str | None = None
        self.tokens_issued = 0
        self.enforce_rate_limits = limits["enforce_rate_limits"]
        self.monthly_quota = limits["monthly_quota"]
        self.quota_used = 0
        self.per_api = {api: Window(QPS_PER_API, 1.0) for api in APIS}
        self.public_url = ""
        self.endpoints = {
            "token": self.issue_token,
            "instances.list": self.list_instance_ids,
            "instances.get": self.get_instance,
            "comments.add": self.add_comment,
            "forms.schema": self.form_schema,
        }
        for spec in config["instances"]:
            self.add_instance(spec)

    # -- state used by the Sandbox API -------------------------------------------------

    def add_instance(self, spec: dict) -> str:
        seq = len(self.instances) + 1
        code = self.config["process_code"]
        instance = build_instance(spec, seq, self.clock(), self.directory, code)
        if instance.id in self.instances:
            raise ValueError(f"duplicate instance id {instance.id}")
        self.instances[instance.id] = instance
        return instance.id

    def finish_instance(self, instance_id: str, result: str | None, status: str):
        self.instances[instance_id].finish(status, result, to_ms(self.clock()))

    def comments(self, instance_id: str) -> list[str]:
        return [record["remark"] for _, record in self.instances[instance_id].remarks]

    def invalidate_token(self) -> None:
        if self.current_token:
            self.tokens.pop(self.current_token, None)
            self.current_token = None

    # -- answering ---------------------------------------------------------------------

    def handle(self, api: str, request: Request, fault) -> Reply:
        if fault and fault.kind == "token_invalid":
            self.invalidate_token()
        try:
            self._admit(api, request)
            return self.endpoints[api](request, fault)
        except Refusal as refusal:
            return refusal.reply

    def _admit(self, api: str, request: Request) -> None:
        now = self.clock()
        if api != "token":
            self._authenticate(request, now)
        if self.enforce_rate_limits and not self.per_api[api].allow(now):
            raise Refusal(throttled({}, api))
        # the monthly quota meters everything except getting tokens
        quota = self.monthly_quota
        if api != "token" and quota is not None and self.quota_used >= quota:
            raise Refusal(quota_exhausted({}, api))

    def _authenticate(self, request: Request, now: float) -> None:
        token = request.headers.get("x-acs-dingtalk-access-token")
        if not token:
            # v1.0 reads the token only from this header: ?access_token= and
            # Authorization: Bearer count as missing
            missing = "AuthenticationFailed.MissingParameter"
            refuse(missing, "缺少参数 x-acs-dingtalk-access-token")
        if self.tokens.get(token, 0) <= now:
            refuse("InvalidAuthentication", "不合法的access_token")

    def _json_body(self, request: Request) -> dict:
        body = request.json_object() if request.declares_json() else None
        if body is None:
            refuse("MissingBody", "body is mandatory for this action.")
        return body

    def issue_token(self, request: Request, fault) -> Reply:
        body = self._json_body(request)
        for key in ("appKey", "appSecret"):
            if not body.get(key):
                refuse(f"Missing{key}", f"{key} is mandatory for this action.")
        config = self.config
        expected = (config["app_key"], config["app_secret"])
        if (body["appKey"], body["appSecret"]) != expected:
            raise Refusal(bad_credentials({}, "token"))
        now = self.clock()
        if self.tokens.get(self.current_token, 0) <= now:
            self.current_token = self._new_token()
        # asking again while the token is valid returns it and extends its life
        ttl = config["token_ttl"]
        self.tokens[self.current_token] = now + ttl
        return dingtalk_reply({"accessToken": self.current_token, "expireIn": ttl})

    def _new_token(self) -> str:
        self.tokens_issued += 1
        seed = f"{self.config['app_key']}/{self.tokens_issued}/{self.clock()}"
        return hashlib.sha256(seed.encode()).hexdigest()[:32]

    def list_instance_ids(self, request: Request, fault) -> Reply:
        body = self._json_body(request)
        start, end = list_window(body, to_ms(self.clock()))
        offset, size = list_paging(body)
        statuses, originators = list_filters(body)
        matching = [
            instance
            for instance in self.instances.values()
            if instance.process_code == body["processCode"]
            and start <= instance.created_ms <= end
            and (statuses is None or instance.status in statuses)
            and (originators is None or instance.originator.id in originators)
        ]
        matching.sort(key=lambda instance: (instance.created_ms, instance.id))
        ids = [instance.id for instance in matching]
        if fault and fault.kind == "cursor_stuck":
            # the first stuck page comes back again and again, always pointing past
            # itself, so a client that trusts the cursor never gets anywhere
            offset = fault.state.setdefault("offset", offset)
            return self._page(ids, offset, size, stuck=True)
        return self._page(ids, offset, size)

    def _page(self, ids: list[str], offset: int, size: int, stuck=False) -> Reply:
        result: dict = {"list": ids[offset : offset + size]}
        if stuck or offset + size < len(ids):
            result["nextToken"] = str(offset + size)
        elif self.config["last_page_token"] == "empty":
            result["nextToken"] = ""
        elif self.config["last_page_token"] == "null":
            result["nextToken"] = None
        return dingtalk_reply({"result": result, "success": True})

    def get_instance(self, request: Request, fault) -> Reply:
        instance_id = request.query.get("processInstanceId", "")
        if not instance_id.strip():
            refuse("processInstanceIdError", "processInstanceId不能为空")
        instance = self.instances.get(instance_id)
        if instance is None:
            refuse("processInstanceNotExist", "审批实例不存在")
        result = render_instance(instance, self.public_url)
        # unlike list and comments, get reports success as the string "true"
        return dingtalk_reply({"result": result, "success": "true"})

    def add_comment(self, request: Request, fault) -> Reply:
        body = self._json_body(request)
        instance = self._commented_instance(body.get("processInstanceId"))
        text = body.get("text")
        if not isinstance(text, str) or not text or len(text) > MAX_COMMENT_CHARS:
            refuse("invalidInstanceCommentText", "评论内容为空或超过1024个字符")
        user_id = body.get("commentUserId")
        if not isinstance(user_id, str) or not user_id:
            refuse("invalidInstanceCommentUserId", "commentUserId不能为空")
        if self.directory.get(user_id) is None:
            refuse("userNotExist", "用户不存在")
        now_ms = to_ms(self.clock())
        remark = {
            "userId": user_id,
            "date": minute_time(now_ms),
            "type": "ADD_REMARK",
            "result": "NONE",
            "remark": text,
        }
        instance.remarks.append((now_ms, remark))
        return dingtalk_reply({"result": True, "success": True})

    def _commented_instance(self, instance_id: object) -> Instance:
        if not isinstance(instance_id, str) or not instance_id:
            refuse("invalidInstanceId", "processInstanceId不能为空")
        instance = self.instances.get(instance_id)
        if instance is None:
            refuse("aflowProcessInstNotExist", "审批实例不存在")
        return instance

    def form_schema(self, request: Request, fault) -> Reply:
        code = request.query.get("processCode", "")
        if not code:
            refuse("invalidParameter", "processCode不能为空")
        known = {self.config["process_code"]}
        known.update(instance.process_code for instance in self.instances.values())
        if code not in known:
            refuse("aflowProcessCodeIsError", "流程模板不存在或已被删除")
        return dingtalk_reply({"result": form_schema(code)})


def form_schema(process_code: str) -> dict:
    items = [schema_item(component) for component in FORM_FIELDS.values()]
    items[0]["props"]["placeholder"] = "每行一个客户"
    return {
        "formCode": process_code,
        "formUuid": "FORM-FZR-SANDBOX-0001",
        "name": FORM_TITLE,
        "status": "PUBLISHED",
        "gmtModified": "1717171200000",  # ms as a string, as the platform sends it
        "schemaContent": {"title": FORM_TITLE, "items": items},
    }


def schema_item(component: tuple) -> dict:
    component_id, label, component_type = component
    props = {"id": component_id, "label": label, "bizAlias": "", "required": True}
    if component_type == "InnerContactField":
        props["choice"] = 1  # multi-select
    return {"componentName": component_type, "props": props}
