import json
import time
import unicodedata

import pytest
from builders import CURRENT_OWNER_ID, CUSTOMERS_ID, NEW_OWNER_ID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fzrcli.forms import (
    FieldSpec,
    InvalidForm,
    ParsedRequest,
    clean_name,
    name_key,
    parse_request,
    query_variants,
    split_customer_names,
)

BY_ID = FieldSpec(CUSTOMERS_ID, NEW_OWNER_ID, CURRENT_OWNER_ID)

LINE_ENDINGS = "\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029"
SEPARATORS = LINE_ENDINGS + ",\uff0c|\uff5c"
DOCUMENTED_SUFFIXES = {
    "ltd", "ltd.", "limited", "inc", "inc.", "llc", "llc.", "co.", "co. ltd",
    "co. ltd.", "corp", "corp.", "gmbh",
}  # fmt: skip

# Characters that break naive parsers: separators, lookalikes, every kind of space,
# invisibles, case and width traps, combining marks that NFKC and casefold move.
TRICKY = (
    SEPARATORS
    + "、;\uff1b \t\u00a0\u3000\u2000\u2007\u200a\u202f\u205f"
    + "\u200b\u200c\u200d\u200e\u200f\u2060\u2064\ufeff\u00ad\u202e\u2066\x00\x7f"
    + "\u3164\uffa0\u115f\u1160\ud800"
    + "ßẞİıſǰΐ\u0301\u0308\u0345\u00a8\u2126ＡａＬｔｄ．"
    + "上海示例科技有限公司（）()"
    + "LtdIncoCrp. GmbH"
)

tricky_text = st.text(alphabet=st.sampled_from(TRICKY) | st.characters(), max_size=120)
any_text = st.text() | tricky_text

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | tricky_text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

field_refs = st.sampled_from(
    [CUSTOMERS_ID, NEW_OWNER_ID, CURRENT_OWNER_ID, "客户名称", "需添加的负责人", ""]
)
component_types = st.sampled_from(
    ["TextareaField", "TextField", "InnerContactField", "TableField", "TextNote", ""]
)
picked_people = st.lists(
    st.fixed_dictionaries(
        {"emplId": st.text(min_size=1, max_size=20) | st.integers() | json_values},
        optional={"name": st.text(max_size=5), "itemId": st.text(max_size=5)},
    ),
    max_size=4,
)
ext_values = (
    st.sampled_from(["null", "", "[]", "{}", "[" * 5_000, '[{"emplId":1e400}]'])
    | st.text(max_size=40)
    | json_values.map(json.dumps)
    | picked_people.map(json.dumps)
)
picker_values = picked_people.filter(bool).map(json.dumps) | ext_values
form_entries = st.fixed_dictionaries(
    {},
    optional={
        "id": field_refs | json_values,
        "name": field_refs | json_values,
        "bizAlias": field_refs | json_values,
        "componentType": component_types | json_values,
        "value": any_text | json_values,
        "extValue": ext_values | json_values,
    },
)
form_values = json_values | st.lists(form_entries | json_values, max_size=8)

# Names without separators, each starting with a CJK character so none is a bare
# legal suffix: joined by any separators they must come back one by one.
plain_names = st.builds(
    str.__add__,
    st.sampled_from("上北广深杭成武南"),
    st.text(st.characters(exclude_characters=SEPARATORS), max_size=20),
)


def looks_clean(name: str) -> bool:
    no_invisibles = all(
        ch == " "
        or not (ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Cs"))
        for ch in name
    )
    no_fillers = not set(name) & set("\u115f\u1160\u3164\uffa0")
    return no_invisibles and no_fillers and name == name.strip() and "  " not in name


def assert_well_formed(names: list[str]) -> None:
    for name in names:
        assert name
        assert looks_clean(name)
        assert not set(name) & set(LINE_ENDINGS + "|\uff5c")
        # A comma survives only when the legal-suffix rule joined what follows it.
        fragments = name.replace("\uff0c", ",").split(",")
        assert all(name_key(rest) in DOCUMENTED_SUFFIXES for rest in fragments[1:])

    keys = [name_key(name) for name in names]
    assert len(keys) == len(set(keys))


def people(*empl_ids):
    return json.dumps([{"emplId": e, "name": "王小明"} for e in empl_ids])


def valid_form(customers_text, new_owner_ext, current_owner_ext="[]"):
    return [
        {"id": CUSTOMERS_ID, "name": "客户名称", "componentType": "TextareaField",
         "value": customers_text, "bizAlias": ""},
        {"id": NEW_OWNER_ID, "name": "需添加的负责人",
         "componentType": "InnerContactField", "value": "王小明", "bizAlias": "",
         "extValue": new_owner_ext},
        {"id": CURRENT_OWNER_ID, "name": "选择任意当前客户负责人",
         "componentType": "InnerContactField", "value": "李四", "bizAlias": "",
         "extValue": current_owner_ext},
    ]  # fmt: skip


@st.composite
def damaged_forms(draw):
    """A valid form with keys dropped or replaced, shuffled among junk entries."""
    entries = []
    customers = draw(plain_names | any_text)
    new_owners, current_owners = draw(st.lists(picker_values, min_size=2, max_size=2))
    for entry in valid_form(customers, new_owners, current_owners):
        for key in draw(
            st.lists(st.sampled_from(sorted(entry)), max_size=2, unique=True)
        ):
            if draw(st.booleans()):
                del entry[key]
            else:
                entry[key] = draw(json_values | any_text | ext_values)
        entries.append(entry)
    entries += draw(st.lists(form_entries | json_values, max_size=3))
    return draw(st.permutations(entries))


# Names


@settings(max_examples=800, deadline=None)
@given(any_text)
def test_split_names_are_clean_distinct_and_free_of_separators(text):
    assert_well_formed(split_customer_names(text))


@settings(max_examples=200, deadline=None)
@given(any_text)
def test_splitting_a_split_list_again_changes_nothing(text):
    names = split_customer_names(text)

    assert split_customer_names("\n".join(names)) == names


@settings(max_examples=200, deadline=None)
@given(
    st.lists(plain_names, min_size=1, max_size=20),
    st.lists(st.sampled_from(SEPARATORS), min_size=1, max_size=3),
    st.sampled_from(["", " ", "\u3000", "\u200b", "\ufeff\u00a0"]),
)
def test_names_joined_by_any_separators_come_back_in_order(names, separators, padding):
    text = "".join(
        f"{padding}{name}{padding}{separators[i % len(separators)]}"
        for i, name in enumerate(names)
    )

    expected = []
    for name in map(clean_name, names):
        if name and name_key(name) not in map(name_key, expected):
            expected.append(name)
    assert split_customer_names(text) == expected


@settings(max_examples=500, deadline=None)
@given(any_text)
def test_clean_name_is_idempotent_and_leaves_nothing_invisible(text):
    cleaned = clean_name(text)

    assert clean_name(cleaned) == cleaned
    assert looks_clean(cleaned)


@settings(max_examples=500, deadline=None)
@given(any_text)
def test_name_key_is_idempotent_and_ignores_cleaning(text):
    key = name_key(text)

    assert name_key(key) == key
    assert name_key(clean_name(text)) == key
    assert looks_clean(key)


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from("ABCabcxyz 0123上海科技有限公司"), max_size=30))
def test_name_key_ignores_width_and_case(text):
    full_width = "".join(
        chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else "\u3000" if ch == " " else ch
        for ch in text
    )

    assert name_key(full_width) == name_key(text)
    assert name_key(text.upper()) == name_key(text.lower())


@settings(max_examples=500, deadline=None)
@given(any_text)
def test_query_variants_are_distinct_clean_spellings_of_the_same_key(text):
    variants = query_variants(text)

    assert variants == ([clean_name(text)] if clean_name(text) else []) + variants[1:]
    assert len(variants) == len(set(variants)) <= 4
    assert all(v and looks_clean(v) for v in variants)
    assert all(name_key(v) == name_key(text) for v in variants)


# Whole forms


@settings(
    max_examples=800,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(form_values | damaged_forms(), st.integers(min_value=1, max_value=300))
def test_any_form_values_parse_or_raise_invalid_form(values, max_customers):
    try:
        request = parse_request(values, BY_ID, max_customers)
    except InvalidForm as error:
        assert error.field in ("customers", "new_owner", "current_owner", "form")
        assert error.reason and len(error.reason) < 200
        return

    assert isinstance(request, ParsedRequest)
    assert 1 <= len(request.customers) <= max_customers
    assert_well_formed(list(request.customers))
    for ids in (request.new_owner_ids, request.current_owner_ids):
        assert ids and all(isinstance(i, str) and i.strip() for i in ids)
        assert len(ids) == len(set(ids))


@settings(max_examples=400, deadline=None)
@given(picker_values | json_values, picker_values | json_values)
def test_any_picker_ext_values_parse_or_raise_invalid_form(new_ext, current_ext):
    values = valid_form("上海示例科技有限公司", new_ext, current_ext)
    try:
        request = parse_request(values, BY_ID)
    except InvalidForm as error:
        assert error.field in ("new_owner", "current_owner")
        return

    assert request.new_owner_ids and request.current_owner_ids


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(min_size=1, max_size=20).filter(str.strip), min_size=1, max_size=6
    ),
    st.lists(st.integers(min_value=0, max_value=10**30), min_size=1, max_size=3),
)
def test_picked_empl_ids_survive_exactly_and_once(text_ids, number_ids):
    ext = people(*text_ids)
    current = people(*number_ids)

    request = parse_request(valid_form("上海示例科技有限公司", ext, current), BY_ID)

    assert request.new_owner_ids == tuple(dict.fromkeys(text_ids))
    assert request.current_owner_ids == tuple(dict.fromkeys(map(str, number_ids)))


# Size limits: a DingTalk value holds at most 65,535 characters.

MAX_VALUE = 65_535
TIME_BOUND = 2.0


def timed_parse(values, **kwargs):
    started = time.perf_counter()
    try:
        result = parse_request(values, BY_ID, **kwargs)
    except InvalidForm as error:
        result = error
    return result, time.perf_counter() - started


@settings(max_examples=10, deadline=None)
@given(
    st.integers(min_value=200, max_value=2_000), st.sampled_from(["\n", "\r\n", "，"])
)
def test_hundreds_of_customers_parse_quickly(count, separator):
    text = separator.join(f"示例客户{i:04d}有限公司" for i in range(count))

    request, seconds = timed_parse(
        valid_form(text, people("wangwu"), people("011")), max_customers=count
    )

    assert len(request.customers) == count
    assert seconds < TIME_BOUND


@pytest.mark.parametrize(
    "pattern",
    [
        "上海示例科技有限公司{i}\r\n",
        "Acme {i} Co., Ltd., ",
        "x,Ltd.,",
        "\u200b\u3000\ufeff",
        "ＡＢＣ科技{i}｜",
        "深",
        "ß\u0301",
    ],
)
def test_a_full_size_customers_value_is_handled_quickly(pattern):
    text = "".join(pattern.format(i=i) for i in range(MAX_VALUE))[:MAX_VALUE]

    result, seconds = timed_parse(
        valid_form(text, people("wangwu"), people("011")), max_customers=MAX_VALUE
    )

    assert isinstance(result, (ParsedRequest, InvalidForm))
    assert seconds < TIME_BOUND


def test_a_full_size_picker_value_is_handled_quickly():
    valid = people(*(f"{i:016d}" for i in range(1_000)))
    cut_short = people(*(f"{i:016d}" for i in range(2_000)))[:MAX_VALUE]
    assert len(valid) <= MAX_VALUE

    for ext in (valid, cut_short, "[" * MAX_VALUE, "9" * MAX_VALUE):
        result, seconds = timed_parse(valid_form("上海示例科技有限公司", ext, ext))

        assert isinstance(result, (ParsedRequest, InvalidForm))
        assert seconds < TIME_BOUND
