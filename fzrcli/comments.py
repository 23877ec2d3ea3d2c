"""The comment fzr writes back on each handled approval, in plain Chinese.

Composing is pure; posting goes through ``post_due_comments``. DingTalk's comment API
has no idempotency key, so a comment is marked ``sending`` (with its exact text) before
the call. A pass that finds a comment still ``sending`` reads the instance's records
and only posts if that text is not there yet: one comment per request, across crashes.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, as_completed, wait

from fzrcli.dingtalk import DingTalk
from fzrcli.errors import Failure, ServiceError
from fzrcli.store import (
    ALREADY_OWNER,
    AMBIGUOUS,
    ASSIGNED,
    COMMENT_DUE,
    COMMENT_FAILED,
    COMMENT_SENDING,
    COMMENT_SENT,
    FAILED,
    INVALID,
    NOT_FOUND,
    UNVERIFIED,
    Item,
    Store,
    json_list,
)

log = logging.getLogger(__name__)

LIMIT = 1024  # DingTalk refuses longer comment texts
IN_FLIGHT = 8
PREFIX = "【fzr】"
FIELD_NAMES = {
    "customers": "客户名称",
    "new_owner": "需添加的负责人",
    "current_owner": "选择任意当前客户负责人",
    "form": "表单",
    "result": "审批结果",
}
HEADLINE_ORDER = (ASSIGNED, ALREADY_OWNER, NOT_FOUND, AMBIGUOUS, UNVERIFIED, FAILED)
LINE_ORDER = (FAILED, NOT_FOUND, AMBIGUOUS, UNVERIFIED, ASSIGNED, ALREADY_OWNER)
LINE_LIMIT = 200  # one customer's line, so one long name cannot crowd out the rest
HEADLINE_WORDS = {
    ASSIGNED: "已添加",
    ALREADY_OWNER: "原已是负责人",
    NOT_FOUND: "未找到",
    AMBIGUOUS: "有重名",
    UNVERIFIED: "负责人不符",
    FAILED: "失败",
}


def compose_result(items: list[Item], people: dict[str, str]) -> str:
    """One line per item, with a headline of counts; summarised to fit 1,024 chars.
    What the requester must act on comes first, so it survives the summarising."""
    counts = Counter(item.status for item in items)
    headline = (
        PREFIX
        + "客户共管处理结果："
        + "，".join(
            f"{HEADLINE_WORDS[s]} {counts[s]} 个" for s in HEADLINE_ORDER if counts[s]
        )
    )
    ordered = sorted(
        items,
        key=lambda item: (
            LINE_ORDER.index(item.status) if item.status in LINE_ORDER else 0
        ),
    )
    return _fit(headline, [_item_line(item, people) for item in ordered])


def compose_invalid(field: str | None, reason: str | None) -> str:
    name = FIELD_NAMES.get(field or "form", field or "表单")
    text = (
        f"{PREFIX}无法处理此申请：字段「{name}」无法读取（{reason or '原因不明'}）。"
        "未做任何修改，请修正后重新提交。"
    )
    return text[:LIMIT]


def _item_line(item: Item, people: dict[str, str]) -> str:
    who = people.get(item.new_owner_id, item.new_owner_id)
    customer = item.customer if len(item.customer) <= 60 else item.customer[:59] + "…"
    suggestion = json_list(item.suggestion) or []
    if item.status == ASSIGNED:
        return f"· {customer}：已添加 {who} 为负责人"
    if item.status == ALREADY_OWNER:
        return f"· {customer}：{who} 原已是负责人，无需添加"
    if item.status == NOT_FOUND:
        near = "、".join(suggestion) if suggestion else ""
        return f"· {customer}：CRM 中未找到该客户" + (
            f"，相近客户：{near}" if near else ""
        )
    if item.status == AMBIGUOUS:
        names = "、".join(
            f"{c.get('name')}（编号 {c.get('dataId')}）" for c in suggestion
        )
        return f"· {customer}：CRM 中有多个同名客户，未处理：{names}"
    if item.status == UNVERIFIED:
        return f"· {customer}：所选现负责人并非该客户负责人，未处理"
    return f"· {customer}：处理失败（{item.reason or '原因不明'}）"


def _fit(headline: str, lines: list[str]) -> str:
    """Headline and as many whole lines as fit, then how many were left out."""
    lines = [
        line if len(line) <= LINE_LIMIT else line[: LINE_LIMIT - 1] + "…"
        for line in lines
    ]
    text = "\n".join([headline, *lines])
    if len(text) <= LIMIT:
        return text
    kept: list[str] = []
    for line in lines:
        rest = len(lines) - len(kept) - 1
        if len("\n".join([headline, *kept, line, _left_out(rest)])) > LIMIT:
            break
        kept.append(line)
    return "\n".join([headline, *kept, _left_out(len(lines) - len(kept))])[:LIMIT]


def _left_out(count: int) -> str:
    return f"……另有 {count} 项未列出，请联系管理员查看详情" if count else ""


def people_in(raw_instance: str | None) -> dict[str, str]:
    """Display names of the people picked on the form, by user id (for comments only;
    names are never used to decide anything)."""
    try:
        instance = json.loads(raw_instance or "{}")
    except ValueError:
        return {}
    names: dict[str, str] = {}
    values = instance.get("formComponentValues") if isinstance(instance, dict) else None
    for component in values if isinstance(values, list) else []:
        try:
            people = json.loads(component.get("extValue") or "[]")
        except (AttributeError, TypeError, ValueError):
            continue
        for person in people if isinstance(people, list) else []:
            if isinstance(person, dict) and isinstance(person.get("name"), str):
                names[str(person.get("emplId"))] = person["name"]
    return names


def queue_comment(store: Store, instance_id: str, enabled: bool) -> None:
    if enabled:
        store.set_comment(instance_id, COMMENT_DUE)


def post_due_comments(
    store: Store, dingtalk: DingTalk, user_id: str, progress=lambda: None
) -> int:
    """Post every comment that is due; returns how many were posted. Each is marked
    ``sending`` right before its call. The first goes alone: if DingTalk refuses it
    (a wrong comment user, a missing permission), the rest are not tried this pass,
    so a settings problem costs one metered call a pass, not one per comment."""
    posted, failure = 0, None
    rows = iter(store.comments_due())
    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        in_flight: dict = {}
        for row in rows:
            if failure:
                break
            text = row["comment_text"] or compose_for(store, row)
            if row["comment_state"] == COMMENT_SENDING and _already_there(
                dingtalk, row["instance_id"], text, user_id
            ):
                store.set_comment(row["instance_id"], COMMENT_SENT, text)
                continue
            with store.transaction():
                store.set_comment(row["instance_id"], COMMENT_SENDING, text)
            future = pool.submit(
                dingtalk.add_comment, row["instance_id"], text, user_id
            )
            in_flight[future] = (row["instance_id"], text)
            if len(in_flight) >= (1 if posted == 0 else IN_FLIGHT):
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    sent, error = _record_post(store, *in_flight.pop(future), future)
                    posted, failure = posted + sent, failure or error
                    if posted % 20 == 0:
                        progress()
        for future in as_completed(list(in_flight)):
            sent, error = _record_post(store, *in_flight.pop(future), future)
            posted, failure = posted + sent, failure or error
    if failure:
        raise failure
    return posted


def _record_post(store: Store, instance_id: str, text: str, future):
    """Record one finished post. A refusal means nothing was posted: the comment is
    due again. Only a comment whose fate is unknown (no answer) stays ``sending``."""
    try:
        future.result()
    except ServiceError as error:
        if error.kind is Failure.PERMANENT:
            with store.transaction():
                store.set_comment(instance_id, COMMENT_FAILED, error=error.detail)
            log.warning("comment on %s refused: %s", instance_id, error)
            return 0, None
        if error.status and error.status < 500:
            with store.transaction():
                store.set_comment(instance_id, COMMENT_DUE, error=error.detail)
        return 0, error
    with store.transaction():
        store.set_comment(instance_id, COMMENT_SENT, text)
    return 1, None


def compose_for(store: Store, row) -> str:
    if row["state"] == INVALID:
        field = None
        reason = row["reason"] or ""
        if ": " in reason:
            field, _, reason = reason.partition(": ")
        return compose_invalid(field, reason)
    return compose_result(store.items_of(row["instance_id"]), people_in(row["raw"]))


def _already_there(dingtalk: DingTalk, instance_id: str, text: str, user_id: str):
    """After a crash mid-post: did the comment land? The instance's records say."""
    instance = dingtalk.get_instance(instance_id)
    records = instance.get("operationRecords")
    for record in records if isinstance(records, list) else []:
        if (
            isinstance(record, dict)
            and record.get("type") == "ADD_REMARK"
            and record.get("userId") == user_id
            and record.get("remark") == text
        ):
            return True
    return False
