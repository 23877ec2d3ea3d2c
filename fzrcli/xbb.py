"""XBB (销帮帮) open API v2 client: users, customer lookup, owners, distribution.

Every call is a signed POST. The body is serialised once (compact, non-ASCII kept) and
those exact bytes are both signed and sent: signing one serialisation and sending
another is the classic way to get every call refused.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
from dataclasses import dataclass

from fzrcli.errors import Failure, ServiceError
from fzrcli.forms import name_key, query_variants
from fzrcli.transport import Budget, CallLog, RateLimiter, Reply, Transport
from fzrcli.transport import call_with_retries

log = logging.getLogger(__name__)

SERVICE = "xbb"
NAME_ATTR = "text_1"
OWNER_ATTR = "ownerId"
POOL_ATTR = "num_3"
PAGE_SIZE = 100  # the largest page size known to work
WRITES_PER_SECOND = 2.8  # XBB allows 3 writes a second per company
CALLS_PER_SECOND = 15.0  # and 1,000 calls a minute; rejected calls count too
NON_POOL, POOL = 101, 105  # subBusinessType for distribution

# What XBB's codes mean. Only 1, 100001, 100404 and 100012 are confirmed from real
# answers; throttling is recognised by its wording because its code is unknown.
GONE_CODES = {100001: "the customer no longer exists", 100404: "unknown customer id"}
FATAL_CODES = {
    100012: "the CRM rejected the credentials (login expired); check "
    "FZR_XBB_TOKEN and FZR_XBB_CORPID"
}
THROTTLE_WORDS = ("频繁", "限流", "too many", "rate limit")
PERMISSION_WORDS = ("权限", "permission")  # the no-permission code is unknown too


@dataclass(frozen=True)
class Customer:
    data_id: int
    name: str
    owners: tuple[str, ...]
    pool: bool

    @property
    def sub_business_type(self) -> int:
        return POOL if self.pool else NON_POOL


class Xbb:
    def __init__(self, settings, calls: CallLog, budget: Budget):
        self.settings = settings
        self.calls = calls
        self.budget = budget
        self.transport = Transport(SERVICE, settings.xbb_base_url, calls, budget)
        self.reads = RateLimiter(CALLS_PER_SECOND)
        self.writes = RateLimiter(WRITES_PER_SECOND)
        self.first_call_done = False

    # -- transport ------------------------------------------------------------------

    def post(self, api: str, payload: dict, *, write: bool = False) -> dict:
        body = {"corpid": self.settings.xbb_corpid, "userId": self.settings.xbb_user_id}
        body.update(payload)
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        sign = hashlib.sha256(raw + self.settings.xbb_token.encode()).hexdigest()
        headers = {"Content-Type": "application/json;charset=UTF-8", "sign": sign}
        path = "/pro/v2/api/" + api.replace(".", "/")

        def exchange() -> dict:
            if write:
                self.writes.acquire(self.budget)
            self.reads.acquire(self.budget)
            reply = self.transport.send(
                "POST", path, api=api, body=raw, headers=headers
            )
            self.calls.record(SERVICE, api, metered=False)
            return self._decode(reply, api)

        # A write is resent only when the CRM throttled it; after any other failure
        # the caller re-reads the owners instead.
        return call_with_retries(
            exchange,
            budget=self.budget,
            limiter=self.writes if write else self.reads,
            calls=self.calls,
            idempotent=not write,
        )

    def _decode(self, reply: Reply, api: str) -> dict:
        first = not self.first_call_done
        self.first_call_done = True
        if reply.status != 200:
            raise ServiceError(
                SERVICE, api, Failure.RETRY, "CRM gateway error", status=reply.status
            )
        if reply.body.lstrip()[:1] == b"<":
            raise _banned(api)
        try:
            answer = json.loads(reply.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ServiceError(
                SERVICE,
                api,
                Failure.RETRY,
                "CRM answered with something that is not JSON",
            ) from None
        if not isinstance(answer, dict):
            raise ServiceError(
                SERVICE, api, Failure.RETRY, "CRM answer is not an object"
            )
        if "punish" in answer:
            raise _banned(api)
        if answer.get("code") == 1 and answer.get("success") is True:
            result = answer.get("result")
            return result if isinstance(result, dict) else {}
        return self._refusal(answer, api, first)

    def _refusal(self, answer: dict, api: str, first: bool):
        code, message = answer.get("code"), str(answer.get("msg") or "")[:300]
        label = f"{message} (code {code})"
        if any(word in message.lower() for word in THROTTLE_WORDS):
            raise ServiceError(
                SERVICE,
                api,
                Failure.RETRY,
                "throttled by the CRM",
                code=str(code),
                retry_after=1.0,
            )
        if code in FATAL_CODES:
            raise ServiceError(
                SERVICE, api, Failure.FATAL, FATAL_CODES[code], code=str(code)
            )
        if any(word in message.lower() for word in PERMISSION_WORDS):
            raise ServiceError(
                SERVICE,
                api,
                Failure.FATAL,
                f"the CRM operator FZR_XBB_USER_ID lacks a permission: {label}; grant "
                "it in XBB (nothing was marked failed)",
                code=str(code),
            )
        if first:
            # The codes for a bad sign, token or corpid are unknown; a refusal of the
            # very first call is almost always one of them.
            raise ServiceError(
                SERVICE,
                api,
                Failure.FATAL,
                f"the CRM refused the first call of the pass: {label}; check "
                "FZR_XBB_TOKEN, FZR_XBB_CORPID and FZR_XBB_USER_ID",
                code=str(code),
            )
        gone = GONE_CODES.get(code)
        raise ServiceError(
            SERVICE,
            api,
            Failure.PERMANENT,
            f"{gone}: {label}" if gone else label,
            code=str(code),
        )

    # -- reads ----------------------------------------------------------------------

    def active_users(self, user_ids: list[str]) -> set[str]:
        """Which of these user ids are active CRM users (resigned staff are hidden)."""
        active: set[str] = set()
        for chunk in _chunks(sorted(set(user_ids)), 100):
            result = self.post(
                "user.list",
                {
                    "userIdIn": chunk,
                    "delIgnore": 0,
                    "page": 1,
                    "pageSize": 100,
                },
            )
            users = result.get("userList")
            if not isinstance(users, list):
                raise _shape("user.list", "no userList")
            active.update(str(u.get("userId")) for u in users if isinstance(u, dict))
        return active & set(user_ids)

    def find_customers(self, names: list[str]) -> dict[str, list[Customer]]:
        """Customers whose name matches each asked name after normalising both sides,
        keyed by ``name_key``. Names go out in batches with the ``in`` condition;
        exact matching on the CRM side may be strict, so width variants go too."""
        wanted = {name_key(n) for n in names}
        found: dict[str, dict[int, Customer]] = {key: {} for key in wanted}
        values = sorted({v for n in names for v in query_variants(n)})
        for chunk in _chunks(values, PAGE_SIZE):
            condition = {"attr": NAME_ATTR, "symbol": "in", "value": chunk}
            for customer in self._list_all([condition]):
                key = name_key(customer.name)
                if key in found:
                    found[key][customer.data_id] = customer
        return {key: list(by_id.values()) for key, by_id in found.items()}

    def customers_by_id(self, customers: list[Customer]) -> dict[int, Customer]:
        """Fresh owners for customers already resolved, read back in batches."""
        fresh: dict[int, Customer] = {}
        for chunk in _chunks(sorted({c.name for c in customers}), PAGE_SIZE):
            condition = {"attr": NAME_ATTR, "symbol": "in", "value": chunk}
            fresh.update({c.data_id: c for c in self._list_all([condition])})
        for missing in [c for c in customers if c.data_id not in fresh]:
            fresh[missing.data_id] = self.customer_detail(missing.data_id)
        return fresh

    def customer_detail(self, data_id: int) -> Customer:
        result = self.post("customer.detail", {"dataId": data_id})
        return parse_customer(result, "customer.detail")

    def suggest(self, name: str, limit: int = 3) -> list[str]:
        """Up to ``limit`` CRM names close to a name that was not found."""
        probes = _probes(name)
        candidates: set[str] = set()
        for probe in probes:
            condition = {"attr": NAME_ATTR, "symbol": "like", "value": [probe]}
            result = self.post(
                "customer.list",
                {
                    "formId": self.settings.xbb_form_id,
                    "conditions": [condition],
                    "del": 0,
                    "page": 1,
                    "pageSize": 20,
                },
            )
            rows = result.get("list")
            if isinstance(rows, list):
                candidates.update(
                    str(r.get("data", {}).get(NAME_ATTR, ""))
                    for r in rows
                    if isinstance(r, dict)
                )
            if len(candidates) >= limit:
                break
        candidates.discard("")
        ranked = sorted(
            candidates,
            key=lambda c: (
                -difflib.SequenceMatcher(None, name_key(name), name_key(c)).ratio()
            ),
        )
        return ranked[:limit]

    def _list_all(self, conditions: list[dict]) -> list[Customer]:
        customers: list[Customer] = []
        page, pages = 1, 1
        while page <= pages:
            result = self.post(
                "customer.list",
                {
                    "formId": self.settings.xbb_form_id,
                    "conditions": conditions,
                    "del": 0,
                    "page": page,
                    "pageSize": PAGE_SIZE,
                },
            )
            rows = result.get("list")
            if not isinstance(rows, list):
                raise _shape("customer.list", "no list of customers")
            customers.extend(parse_customer(row, "customer.list") for row in rows)
            pages = _whole(result.get("totalPage"), default=1)
            if page >= 50:
                raise _shape("customer.list", "more than 50 pages for one lookup")
            page += 1
        return customers

    # -- the write ------------------------------------------------------------------

    def distribute(self, data_ids: list[int], user_id: str, sub_business_type: int):
        """Add ``user_id`` as an owner of these customers. Whether XBB appends or
        replaces owners is unconfirmed: callers must read the owners back."""
        result = self.post(
            "customer.distribution",
            {
                "dataIdList": data_ids,
                "businessUserId": user_id,
                "subBusinessType": sub_business_type,
            },
            write=True,
        )
        if result.get("resultType") != "success":
            raise ServiceError(
                SERVICE,
                "customer.distribution",
                Failure.PERMANENT,
                str(result.get("resultMsg") or "distribution not confirmed"),
            )


def parse_customer(row: object, api: str) -> Customer:
    if not isinstance(row, dict) or not isinstance(row.get("data"), dict):
        raise _shape(api, "a customer without data")
    data_id = row.get("dataId")
    if not isinstance(data_id, int) or isinstance(data_id, bool):
        raise _shape(api, "a customer without an integer dataId")
    data = row["data"]
    name = data.get(NAME_ATTR)
    try:
        owners = owner_ids(data.get(OWNER_ATTR))
    except ValueError as exc:
        raise _shape(api, f"unreadable owners on dataId {data_id}: {exc}") from None
    return Customer(
        data_id,
        name if isinstance(name, str) else "",
        tuple(owners),
        _pool_flag(data.get(POOL_ATTR)),
    )


def owner_ids(raw: object) -> list[str]:
    """Owners in every shape seen: a JSON string in list results ('["u1"]'), a list of
    {id, name, avatar} objects in details, a plain list, or empty."""
    if raw in (None, "", "null"):
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ValueError("owner field is not JSON") from None
    if not isinstance(raw, list):
        raise ValueError(f"owner field is a {type(raw).__name__}")
    ids = []
    for entry in raw:
        value = entry.get("id") if isinstance(entry, dict) else entry
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ValueError("owner entry without an id")
        ids.append(str(value))
    return ids


def _pool_flag(raw: object) -> bool:
    if isinstance(raw, dict):
        raw = raw.get("value")
    return str(raw) == "1"


def _whole(raw: object, default: int) -> int:
    try:
        return max(1, int(raw))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def _probes(name: str) -> list[str]:
    """Fuzzy probes for suggestions: the name, then shorter cores of it."""
    core = name
    for suffix in ("有限责任公司", "股份有限公司", "有限公司", "公司", "集团"):
        if core.endswith(suffix) and len(core) > len(suffix) + 1:
            core = core[: -len(suffix)]
            break
    probes = [name, core, core[:4], core[:2]]
    return [p for i, p in enumerate(probes) if len(p) >= 2 and p not in probes[:i]]


def _banned(api: str) -> ServiceError:
    return ServiceError(
        SERVICE,
        api,
        Failure.FATAL,
        "the CRM answered with a block page (this IP is likely banned "
        "for a while); the pass stopped and the next one resumes",
    )


def _shape(api: str, what: str) -> ServiceError:
    return ServiceError(SERVICE, api, Failure.RETRY, f"unexpected answer shape: {what}")


def _chunks(values: list, size: int):
    for start in range(0, len(values), size):
        yield values[start : start + size]
