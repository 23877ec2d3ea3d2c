"""Emulated XBB (销帮帮) open API v2: users, customer list and detail, distribution.

Business results are always HTTP 200 with ``{"code","msg","success"}``; only success
carries ``result``. Every call is checked against the ``sign`` header, computed over the
exact bytes received. List rows encode owners as a JSON string, detail as objects.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import NoReturn

from .limits import Window
from .scenario import Directory, Person, check_keys, resolve_time
from .wire import (
    Refusal,
    Reply,
    Request,
    compact_json,
    html_reply,
    is_int,
    xbb_failure,
    xbb_success,
)

# Codes seen in real XBB answers.
DATA_NOT_FOUND = (100001, "表单数据不存在或已删除")
OBJECT_NOT_FOUND = (100404, "对象不存在或已被删除")

# MADE UP. XBB's real codes for these failures are unknown (no document or captured
# answer shows them), so the sandbox invents them, all here, far from the known codes.
# Replace a value once the real one is learned; fzr must not depend on these numbers.
MADE_UP_CODES = {
    "bad_sign": (990001, "签名校验失败"),
    "bad_corpid": (990002, "公司不存在，请检查corpid"),
    "throttled": (990003, "接口调用过于频繁，请稍后再试"),
    "unknown_user": (990004, "用户不存在或已离职"),
    "bad_parameter": (990005, "字段数据格式错误"),
    "no_permission": (990006, "没有该操作的权限"),
    "unknown_api": (990007, "接口不存在"),
}

CUSTOMER_KEYS = set(
    "dataId name owners pool co_users creator added form_id deleted".split()
)
FIRST_DATA_ID = 106037100
MAX_PAGE_SIZE = 100
WRITE_APIS = {"customer.distribution"}
WRITES_PER_SECOND = 3
CALLS_PER_MINUTE = 1000
NON_POOL, POOL = 101, 105  # subBusinessType
SYMBOLS = {"equal", "in", "like", "noin"}
QUERYABLE_ATTRS = {"dataId", "text_1", "text_16", "num_3", "num_4"}
BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def fail(kind: str, msg: str | None = None) -> NoReturn:
    code, default_msg = MADE_UP_CODES[kind]
    raise Refusal(xbb_failure(code, msg or default_msg))


def fail_known(code_and_msg: tuple[int, str]) -> NoReturn:
    raise Refusal(xbb_failure(*code_and_msg))


def sign(raw_body: bytes, token: str) -> str:
    """XBB's sign header: SHA-256 hex of the body bytes followed by the API token."""
    return hashlib.sha256(raw_body + token.encode("utf-8")).hexdigest()


@dataclass
class Customer:
    data_id: int
    name: str
    form_id: int
    owners: list[str]
    co_users: list[str]
    pool: bool
    deleted: bool
    creator: str
    added: int  # epoch seconds, as every XBB time
    updated: int
    assigned: int = 0  # date_4; 0 means never
    returned: int = 0  # date_3

    def value_of(self, attr: str) -> object:
        values = {
            "dataId": self.data_id,
            "text_1": self.name,
            "text_16": self.creator,
            "num_3": int(self.pool),
            "num_4": 2,
        }
        return values[attr]


def build_customer(spec: dict, seq: int, config: dict, now: float) -> Customer:
    check_keys(spec, CUSTOMER_KEYS, "customer")
    owners = list(spec.get("owners", []))
    pool = bool(spec.get("pool", False))
    if pool and owners:
        raise ValueError(f"pool customer {spec.get('name')!r} cannot have owners")
    added = int(resolve_time(spec.get("added", "-180d"), now))
    return Customer(
        data_id=spec.get("dataId") or FIRST_DATA_ID + seq,
        name=spec["name"],
        form_id=spec.get("form_id", config["form_id"]),
        owners=owners,
        co_users=list(spec.get("co_users", [])),
        pool=pool,
        deleted=bool(spec.get("deleted", False)),
        creator=spec.get("creator") or (owners[0] if owners else config["operator"]),
        added=added,
        updated=added,
        assigned=0 if pool else added,
        returned=added if pool else 0,
    )


# -- request checks --------------------------------------------------------------------


def paging(body: dict) -> tuple[int, int]:
    page = body.get("page", 1)
    size = body.get("pageSize", 20)
    if not is_int(page) or not is_int(size) or page < 1 or size < 1:
        fail("bad_parameter", "page和pageSize必须是正整数")
    if size > MAX_PAGE_SIZE:
        fail("bad_parameter", f"pageSize不能超过{MAX_PAGE_SIZE}")
    return page, size


def paged(key: str, rows: list, page: int, size: int) -> dict:
    total = len(rows)
    return {
        key: rows[(page - 1) * size : page * size],
        "totalCount": total,
        "totalPage": -(-total // size),
    }


def condition_test(condition: object):
    """A predicate on customers for one entry of `conditions`."""
    if not isinstance(condition, dict):
        fail("bad_parameter")
    attr, symbol = condition.get("attr"), condition.get("symbol")
    values = condition.get("value")
    if attr not in QUERYABLE_ATTRS:
        fail("bad_parameter", f"不支持的查询字段：{attr}")
    # value is always an array, even for one value
    if not isinstance(values, list) or symbol not in SYMBOLS:
        fail("bad_parameter")
    if symbol == "like":
        return lambda c: any(str(v) in str(c.value_of(attr)) for v in values)
    if symbol == "noin":
        return lambda c: not any(same(c.value_of(attr), v) for v in values)
    return lambda c: any(same(c.value_of(attr), v) for v in values)


def same(stored: object, given: object) -> bool:
    if is_int(stored):
        # numbers may arrive as numeric strings
        return str(stored) == str(given)
    # equal and in compare text byte for byte: no trimming, width or case folding
    return stored == given


def in_scope(customer: Customer, body: dict) -> bool:
    if customer.deleted != (body.get("del", 0) == 1):
        return False
    public = body.get("isPublic")
    # isPublic omitted means pool and non-pool customers alike
    return public is None or customer.pool == (public == 1)


def distribution_targets(body: dict) -> tuple[list[str], str]:
    """The new owners, and which request shape named them."""
    if "businessUserId" in body:
        target = body["businessUserId"]
        if not isinstance(target, str) or not target:
            fail("bad_parameter", "businessUserId必须是字符串")
        return [target], "businessUserId"
    legacy = body.get("distributionUserIds")
    if not isinstance(legacy, list) or not legacy:
        fail("bad_parameter", "businessUserId为必填字段")
    return [str(uid) for uid in legacy], "distributionUserIds"


# -- fault answers this family gives ---------------------------------------------------


def throttled(params: dict, api: str) -> Reply:
    return xbb_failure(*MADE_UP_CODES["throttled"])


def server_error(params: dict, api: str) -> Reply:
    # gateway failures are the one case where XBB is not HTTP 200 + JSON
    return html_reply(BAD_GATEWAY_HTML, 502)


def permission_denied(params: dict, api: str) -> Reply:
    return xbb_failure(*MADE_UP_CODES["no_permission"])


def bad_credentials(params: dict, api: str) -> Reply:
    return xbb_failure(*MADE_UP_CODES["bad_sign"])


def business_error(params: dict, api: str) -> Reply:
    code, msg = OBJECT_NOT_FOUND
    return xbb_failure(params.get("code", code), params.get("msg", msg))


FAULT_REPLIES = {
    "throttle": throttled,
    "server_error": server_error,
    "permission_denied": permission_denied,
    "bad_credentials": bad_credentials,
    "xbb_error": business_error,
}
SERVICE_FAULTS: set[str] = set()


class Xbb:
    """One company's customers behind the v2 open API."""

    def __init__(self, config: dict, directory: Directory, limits: dict, clock):
        self.config = config
        self.directory = directory
        self.clock = clock
        self.enforce_rate_limits = limits["enforce_rate_limits"]
        self.per_minute = Window(CALLS_PER_MINUTE, 60.0)
        self.writes = Window(WRITES_PER_SECOND, 1.0)
        self.customers: dict[int, Customer] = {}
        self.distributions: list[dict] = []
        self.endpoints = {
            "user.list": self.list_users,
            "customer.list": self.list_customers,
            "customer.detail": self.customer_detail,
            "customer.distribution": self.distribute,
        }
        for spec in config["customers"]:
            self.add_customer(spec)

    def add_customer(self, spec: dict) -> int:
        seq = len(self.customers) + 1
        customer = build_customer(spec, seq, self.config, self.clock())
        if customer.data_id in self.customers:
            raise ValueError(f"duplicate dataId {customer.data_id}")
        self.customers[customer.data_id] = customer
        return customer.data_id

    def snapshot(self, data_id: int) -> dict:
        customer = self.customers[data_id]
        return {
            "dataId": customer.data_id,
            "name": customer.name,
            "owners": list(customer.owners),
            "pool": customer.pool,
        }

    # -- answering ---------------------------------------------------------------------

    def handle(self, api: str, request: Request, fault) -> Reply:
        try:
            body = self._admit(api, request)
            if api not in self.endpoints:
                fail("unknown_api")
            return self.endpoints[api](body)
        except Refusal as refusal:
            return refusal.reply

    def _admit(self, api: str, request: Request) -> dict:
        body = request.json_object()
        if body is None:
            fail("bad_parameter", "请求体必须是JSON对象")
        if body.get("corpid") != self.config["corpid"]:
            fail("bad_corpid")
        # sign the exact bytes received: re-serialising would hide client bugs
        expected = sign(request.body, self.config["token"])
        if not hmac.compare_digest(expected, request.headers.get("sign", "")):
            fail("bad_sign")
        if self.enforce_rate_limits and not self._within_limits(api):
            fail("throttled")
        operator = body.get("userId")
        if operator is not None and not self.directory.is_active_xbb_user(operator):
            fail("unknown_user", f"操作人不存在或已离职：{operator}")
        return body

    def _within_limits(self, api: str) -> bool:
        now = self.clock()
        # calls refused by the limiter still count towards the limits
        calls_ok = self.per_minute.hit(now)
        writes_ok = api not in WRITE_APIS or self.writes.hit(now)
        return calls_ok and writes_ok

    def list_users(self, body: dict) -> Reply:
        page, size = paging(body)
        wanted = body.get("userIdIn")
        if wanted is not None and not isinstance(wanted, list):
            fail("bad_parameter", "userIdIn必须是数组")
        include_resigned = body.get("delIgnore", 0) == 1
        users = [
            person
            for person in self.directory.xbb_users()
            if (include_resigned or not person.resigned)
            and (wanted is None or person.id in wanted)
            and body.get("name") in (None, person.name)
            and str(body.get("nameLike", "")) in person.name
        ]
        rows = [user_row(person) for person in users]
        return xbb_success(paged("userList", rows, page, size))

    def list_customers(self, body: dict) -> Reply:
        form_id = body.get("formId")
        if form_id is None:
            fail("bad_parameter", "formId为必填字段")
        if not is_int(form_id):
            fail("bad_parameter", "formId必须是数字")
        page, size = paging(body)
        conditions = body.get("conditions", [])
        if not isinstance(conditions, list):
            fail("bad_parameter", "conditions必须是数组")
        tests = [condition_test(condition) for condition in conditions]
        found = [
            customer
            for customer in sorted(self.customers.values(), key=lambda c: c.data_id)
            if customer.form_id == form_id
            and in_scope(customer, body)
            and all(test(customer) for test in tests)
        ]
        rows = [list_row(customer) for customer in found]
        return xbb_success(paged("list", rows, page, size))

    def customer_detail(self, body: dict) -> Reply:
        customer = self._live_customer(body.get("dataId"))
        return xbb_success(detail(customer, self.directory))

    def _live_customer(self, data_id: object) -> Customer:
        if not is_int(data_id):
            fail_known(OBJECT_NOT_FOUND)
        customer = self.customers.get(data_id)
        if customer is None or customer.deleted:
            fail_known(DATA_NOT_FOUND)
        return customer

    def distribute(self, body: dict) -> Reply:
        data_ids = body.get("dataIdList")
        if not isinstance(data_ids, list) or not data_ids:
            fail("bad_parameter", "dataIdList为必填字段")
        targets, shape = distribution_targets(body)
        sub_type = body.get("subBusinessType", NON_POOL)
        if not is_int(sub_type) or sub_type not in (NON_POOL, POOL):
            fail("bad_parameter", "subBusinessType取值错误")
        for target in targets:
            if not self.directory.is_active_xbb_user(target):
                fail("unknown_user", f"负责人不存在或已离职：{target}")
        # every id is checked before anything changes: no partial distribution
        customers = [self._live_customer(data_id) for data_id in data_ids]
        for customer in customers:
            self._assign(customer, targets)
        self.distributions.append(
            {
                "dataIdList": list(data_ids),
                "userIds": targets,
                "shape": shape,
                "subBusinessType": sub_type,
                "at": self.clock(),
            }
        )
        return xbb_success({"resultType": "success", "resultMsg": "分配成功"})

    def _assign(self, customer: Customer, targets: list[str]) -> None:
        now = int(self.clock())
        if customer.pool or self.config["distribution"] == "replace":
            # a pool customer gets its first owner and leaves the pool; "replace"
            # mode emulates a platform that drops the existing owners
            customer.owners = []
            customer.pool = False
        for target in targets:
            if target not in customer.owners:
                customer.owners.append(target)
        customer.assigned = customer.updated = now


def user_row(person: Person) -> dict:
    return {
        "userId": person.id,
        "name": person.name,
        "avatar": "",
        "position": person.position,
        "jobnumber": "",
        "status": 0 if person.resigned else 1,
        "departmentList": [{"id": 12, "name": person.dept_name, "isLeader": 0}],
        "roleList": [{"id": 3, "name": "销售"}],
    }


def list_row(customer: Customer) -> dict:
    return {
        "dataId": customer.data_id,
        "formId": customer.form_id,
        "addTime": customer.added,
        "updateTime": customer.updated,
        "data": {
            "text_1": customer.name,
            "text_16": customer.creator,
            # list results encode owners and collaborators as a JSON string
            "ownerId": compact_json(customer.owners),
            "coUserId": compact_json(customer.co_users),
            "num_3": int(customer.pool),
            "num_4": 2,
            "date_2": 0,
            "date_3": customer.returned,
            "date_4": customer.assigned,
            "text_4": "1",
        },
    }


def detail(customer: Customer, directory: Directory) -> dict:
    row = list_row(customer)
    data = row["data"]
    # detail answers people as {id, name, avatar} objects and selects as objects
    data["text_16"] = person_object(customer.creator, directory)
    data["ownerId"] = [person_object(uid, directory) for uid in customer.owners]
    data["coUserId"] = [person_object(uid, directory) for uid in customer.co_users]
    data["text_4"] = {"text": "潜在客户", "value": "1", "checked": True}
    return row


def person_object(user_id: str, directory: Directory) -> dict:
    return {"id": user_id, "name": directory.name(user_id), "avatar": ""}
