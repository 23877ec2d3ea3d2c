"""Whatever people type into the form, every approval gets an outcome with a reason."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fzrcli.approval import decide
from fzrcli.forms import FieldSpec
from fzrcli.store import ACTIVE, INVALID, UNMATCHED

FIELDS = FieldSpec()
SEPARATORS = st.sampled_from(["\n", "\r\n", ",", "，", "|", "｜", "\u2028", " ", ""])
TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
NAMES = st.lists(
    st.one_of(
        TEXT,
        st.sampled_from(["上海示例科技有限公司", "\u200b", "null", "Acme Co.", "Ltd."]),
    ),
    max_size=30,
)


@st.composite
def customers_value(draw) -> str:
    names = draw(NAMES)
    joined = ""
    for name in names:
        joined += name + draw(SEPARATORS)
    return joined


@st.composite
def picker(draw) -> dict:
    people = draw(
        st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "emplId": st.one_of(
                            st.text(max_size=20), st.integers(), st.none(), st.floats()
                        )
                    }
                ),
                max_size=4,
            ),
            st.just([]),
            st.dictionaries(st.text(max_size=5), st.text(max_size=5)),
        )
    )
    raw = draw(st.one_of(st.just(json.dumps(people)), TEXT, st.just("null")))
    return {"componentType": "InnerContactField", "value": "某人", "extValue": raw}


@st.composite
def instance(draw) -> dict:
    values = [
        {
            "id": "TextareaField_1",
            "name": "客户名称",
            "componentType": draw(
                st.sampled_from(["TextareaField", "TextField", "TableField"])
            ),
            "value": draw(st.one_of(customers_value(), st.just("null"), st.none())),
        },
        {**draw(picker()), "id": "InnerContactField_1", "name": "需添加的负责人"},
        {
            **draw(picker()),
            "id": "InnerContactField_2",
            "name": "选择任意当前客户负责人",
        },
    ]
    dropped = draw(st.sets(st.integers(0, 2)))
    return {
        "status": "COMPLETED",
        "result": "agree",
        "formComponentValues": [v for i, v in enumerate(values) if i not in dropped],
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance())
def test_any_approved_form_is_either_actionable_or_invalid_with_a_reason(raw):
    unverified = decide(raw, FIELDS)
    decision = decide(raw, FIELDS, fields_verified=True)

    assert decision.state in (ACTIVE, INVALID)
    assert unverified.state in (ACTIVE, INVALID, UNMATCHED)
    if unverified.state == UNMATCHED:  # fields the settings could not find: wait
        assert decision.state == INVALID and unverified.reason
    if decision.state == INVALID:
        assert decision.reason and decision.invalid_field
    else:
        assert decision.parsed.customers and decision.parsed.new_owner_ids
        assert decision.parsed.current_owner_ids
        assert all(name.strip() == name and name for name in decision.parsed.customers)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_any_instance_shape_is_decided_without_crashing(raw):
    instance = raw if isinstance(raw, dict) else {"formComponentValues": raw}

    decision = decide(instance, FIELDS)

    assert decision.state in (
        "open",
        "invalid",
        "active",
        "refused",
        "terminated",
        "canceled",
        "unmatched",
    )
