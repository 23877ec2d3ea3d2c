"""Checking the field settings against the approval form, once per change of settings.

A wrong ``FZR_PROCESS_CODE`` lists nothing, forever and silently; a wrong
``FZR_FIELD_*`` would make every approval unreadable. One read of the form's schema
(a metered call, made again only when those settings change) turns both into a clear
message on the first pass. Reading schemas needs the optional ``Workflow.Form.Read``
permission; without it the check is skipped and approvals whose fields the settings
cannot find wait, unjudged, until the settings are fixed.
"""

from __future__ import annotations

import hashlib
import json
import logging

from fzrcli.dingtalk import FORM_MISSING_CODES, DingTalk
from fzrcli.errors import Failure, ServiceError
from fzrcli.forms import FieldSpec, clean_name
from fzrcli.store import Store

log = logging.getLogger(__name__)

STATE_KEY = "form_checked"
EXPECTED = {
    "customers": ("FZR_FIELD_CUSTOMERS", {"TextareaField", "TextField"}),
    "new_owner": ("FZR_FIELD_NEW_OWNER", {"InnerContactField"}),
    "current_owner": ("FZR_FIELD_CURRENT_OWNER", {"InnerContactField"}),
}
SKIPPED_CODES = {"Forbidden.AccessDenied.AccessTokenPermissionDenied", "noPermission"}


def fields_verified(store: Store, settings) -> bool:
    """True when the current field settings were found on the form's schema."""
    return store.get_state(STATE_KEY) == {
        "fingerprint": _fingerprint(settings),
        "verified": True,
    }


def check_form_once(store: Store, dingtalk: DingTalk, settings) -> None:
    fingerprint = _fingerprint(settings)
    if (store.get_state(STATE_KEY) or {}).get("fingerprint") == fingerprint:
        return
    try:
        schema = dingtalk.form_schema()
    except ServiceError as error:
        if error.code in FORM_MISSING_CODES:
            raise ServiceError(
                "dingtalk",
                "forms.schema",
                Failure.FATAL,
                f"FZR_PROCESS_CODE {settings.process_code} is not an "
                "approval form of this organisation",
                code=error.code,
            ) from None
        if error.code not in SKIPPED_CODES:
            raise
        log.warning(
            "cannot read the form's schema (no Workflow.Form.Read "
            "permission); field settings are checked on each approval"
        )
        store.set_state(STATE_KEY, {"fingerprint": fingerprint, "verified": False})
        return
    problems = field_problems(_items(schema), settings.fields)
    if problems:
        raise ServiceError(
            "dingtalk", "forms.schema", Failure.FATAL, "; ".join(problems)
        )
    store.set_state(STATE_KEY, {"fingerprint": fingerprint, "verified": True})


def field_problems(items: list[dict], fields: FieldSpec) -> list[str]:
    components = [
        (item.get("componentName"), item.get("props") or {})
        for item in items
        if isinstance(item, dict)
    ]
    problems = []
    for field, (setting, types) in EXPECTED.items():
        spec = getattr(fields, field)
        found = _match(components, spec)
        if found is None:
            labels = ", ".join(
                f"{p.get('label')} [{p.get('id')}]" for _, p in components[:12]
            )
            problems.append(
                f"{setting}={spec} matches no field of the form (it has "
                f"{labels or 'no fields'})"
            )
        elif found not in types:
            problems.append(
                f"{setting}={spec} is a {found}, not a {' or '.join(sorted(types))}"
            )
    return problems


def _match(components: list, spec: str) -> str | None:
    by_id = [kind for kind, p in components if spec in (p.get("id"), p.get("bizAlias"))]
    if by_id:
        return by_id[0]
    label = clean_name(spec)
    by_label = [
        kind
        for kind, p in components
        if isinstance(p.get("label"), str) and clean_name(p["label"]) == label
    ]
    return by_label[0] if len(by_label) == 1 else None


def _items(schema: dict) -> list:
    content = schema.get("schemaContent")
    if isinstance(content, str):  # some tenants send it JSON-encoded
        try:
            content = json.loads(content)
        except ValueError:
            content = {}
    items = content.get("items") if isinstance(content, dict) else None
    return items if isinstance(items, list) else []


def _fingerprint(settings) -> str:
    key = json.dumps(
        [
            settings.process_code,
            settings.field_customers,
            settings.field_new_owner,
            settings.field_current_owner,
        ]
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]
