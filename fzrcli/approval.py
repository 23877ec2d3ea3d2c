"""What a fetched approval instance means for fzr (pure; no I/O).

Approved means ``status == COMPLETED`` and ``result == agree``, compared
case-insensitively. Everything else is recorded and never acted on.
"""

from __future__ import annotations

from dataclasses import dataclass

from fzrcli.forms import FieldSpec, InvalidForm, ParsedRequest, parse_request
from fzrcli.store import ACTIVE, CANCELED, INVALID, OPEN, REFUSED, TERMINATED, UNMATCHED
from fzrcli.timeutil import parse_dingtalk_time


@dataclass
class Decision:
    state: str
    facts: dict
    parsed: ParsedRequest | None = None
    reason: str | None = None
    invalid_field: str | None = None


def facts_of(instance: dict) -> dict:
    """The fields fzr keeps, read defensively: keys may be missing or mistyped."""

    def text(key: str) -> str | None:
        value = instance.get(key)
        return value.strip() if isinstance(value, str) and value.strip() else None

    return {
        "business_id": text("businessId"),
        "title": text("title"),
        "originator_id": text("originatorUserId"),
        "status": (text("status") or "").upper() or None,
        "result": (text("result") or "").lower() or None,
        "created_ms": parse_dingtalk_time(instance.get("createTime")),
        "finished_ms": parse_dingtalk_time(instance.get("finishTime")),
        "biz_action": (text("bizAction") or "NONE").upper(),
    }


def decide(
    instance: dict,
    fields: FieldSpec,
    max_customers: int = 200,
    fields_verified: bool = False,
) -> Decision:
    """``fields_verified``: the settings' fields exist on the form (its schema was
    read), so a field missing from one approval is that approval's fault."""
    facts = facts_of(instance)
    status, result = facts["status"], facts["result"]
    if status in ("RUNNING", "NEW") or status is None:
        return Decision(OPEN, facts)
    if status == "TERMINATED":
        return Decision(TERMINATED, facts, reason="withdrawn by the submitter")
    if status == "CANCELED":
        return Decision(CANCELED, facts, reason="canceled")
    if status != "COMPLETED":
        return Decision(OPEN, facts, reason=f"unknown status {status}; kept open")
    if result == "refuse":
        return Decision(REFUSED, facts, reason="refused by the approver")
    if result != "agree":
        return Decision(
            INVALID,
            facts,
            reason=f"completed with result {result!r}; not an approval",
            invalid_field="result",
        )
    if facts["biz_action"] == "REVOKE":
        return Decision(CANCELED, facts, reason="approval was revoked")
    return _approved(instance, facts, fields, max_customers, fields_verified)


def _approved(
    instance: dict,
    facts: dict,
    fields: FieldSpec,
    max_customers: int,
    fields_verified: bool,
):
    try:
        parsed = parse_request(
            instance.get("formComponentValues"), fields, max_customers
        )
    except InvalidForm as exc:
        if exc.unmatched and (exc.ambiguous or not fields_verified):
            # The settings, not the requester, are wrong: wait for them to be fixed.
            present = f" (the form has {exc.present})" if exc.present else ""
            return Decision(
                UNMATCHED, facts, reason=f"{exc}{present}", invalid_field=exc.field
            )
        return Decision(INVALID, facts, reason=str(exc), invalid_field=exc.field)
    return Decision(ACTIVE, facts, parsed=parsed)
