import json
import pickle

import pytest
from builders import CURRENT_OWNER_ID, CUSTOMERS_ID, NEW_OWNER_ID

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


BY_ID = FieldSpec(
    customers=CUSTOMERS_ID, new_owner=NEW_OWNER_ID, current_owner=CURRENT_OWNER_ID
)


def person(empl_id, name="王小明"):
    return {
        "emplId": empl_id,
        "name": name,
        "avatar": "",
        "selectDeptId": "",
        "selectDeptName": "",
    }


def picker(component_id, label, people, shown=None):
    names = ",".join(p["name"] for p in people)
    return {
        "id": component_id,
        "name": label,
        "componentType": "InnerContactField",
        "value": names if shown is None else shown,
        "bizAlias": "",
        "extValue": json.dumps(people, ensure_ascii=False),
    }


def customers_field(value, **overrides):
    entry = {
        "id": CUSTOMERS_ID,
        "name": "客户名称",
        "componentType": "TextareaField",
        "value": value,
        "bizAlias": "",
    }
    entry.update(overrides)
    return entry


def new_owner_field(*people, **overrides):
    people = people or (person("0165123456789012", "王小明"),)
    entry = picker(NEW_OWNER_ID, "需添加的负责人", list(people))
    entry.update(overrides)
    return entry


def current_owner_field(*people, **overrides):
    people = people or (person("2837465019283746", "李四"),)
    entry = picker(CURRENT_OWNER_ID, "选择任意当前客户负责人", list(people))
    entry.update(overrides)
    return entry


def form(customers=None, new_owner=None, current_owner=None, extra=()):
    """formComponentValues shaped like GET /v1.0/workflow/processInstances returns."""
    if customers is None:
        customers = customers_field("上海示例科技有限公司\n北京示范贸易有限公司")
    return [
        customers,
        new_owner or new_owner_field(),
        current_owner or current_owner_field(),
        *extra,
    ]


def invalid(form_values, fields=BY_ID, **kwargs) -> InvalidForm:
    with pytest.raises(InvalidForm) as caught:
        parse_request(form_values, fields, **kwargs)
    return caught.value


# A typical approval


def test_typical_approval_yields_customers_and_owner_ids():
    request = parse_request(form(), BY_ID)

    assert request == ParsedRequest(
        customers=("上海示例科技有限公司", "北京示范贸易有限公司"),
        new_owner_ids=("0165123456789012",),
        current_owner_ids=("2837465019283746",),
        raw_customers="上海示例科技有限公司\n北京示范贸易有限公司",
    )


def test_default_field_spec_finds_fields_by_their_labels():
    request = parse_request(form(), FieldSpec())

    assert request.customers == ("上海示例科技有限公司", "北京示范贸易有限公司")


def test_raw_customers_is_the_field_text_as_received():
    raw = " 上海示例科技有限公司\r\n\u200b北京示范贸易有限公司，"

    request = parse_request(form(customers_field(raw)), BY_ID)

    assert request.raw_customers == raw


def test_unrelated_odd_components_are_ignored():
    extra = [
        {
            "id": "TextNote_1",
            "componentType": "TextNote",
            "value": "请每行填写一个客户",
        },
        {"id": "DDAttachment_2", "name": "附件", "componentType": "DDAttachment"},
        {
            "id": "TextField_3",
            "name": "备注",
            "componentType": "TextField",
            "value": "null",
        },
        {
            "id": "DDDateRangeField_4",
            "name": '["开始时间","结束时间"]',
            "componentType": "DDDateRangeField",
            "value": '["2024-03-01","2024-03-31"]',
        },
        {"name": None, "id": 17, "bizAlias": ["x"], "value": {"a": 1}},
    ]

    request = parse_request(form(extra=extra), BY_ID)

    assert request.customers == ("上海示例科技有限公司", "北京示范贸易有限公司")


def test_non_object_entries_are_ignored():
    values = ["null", None, 3, [], *form()]

    request = parse_request(values, BY_ID)

    assert request.new_owner_ids == ("0165123456789012",)


# The form as a whole


@pytest.mark.parametrize("values", [None, {}, {"formComponentValues": []}, "[]", 7])
def test_form_values_that_are_not_a_list_are_invalid(values):
    error = invalid(values)

    assert error.field == "form"
    assert "must be a list" in error.reason


def test_empty_form_values_are_invalid():
    error = invalid([])

    assert (error.field, error.reason) == ("form", "the approval has no form values")


def test_invalid_form_reads_as_field_and_reason():
    error = InvalidForm("customers", "field 客户名称 is missing")

    assert str(error) == "customers: field 客户名称 is missing"


def test_invalid_form_survives_pickling():
    error = pickle.loads(pickle.dumps(InvalidForm("new_owner", "field X is empty")))

    assert (error.field, error.reason) == ("new_owner", "field X is empty")


# Finding fields


def test_field_is_found_by_component_id():
    request = parse_request(form(), BY_ID)

    assert request.current_owner_ids == ("2837465019283746",)


def test_field_is_found_by_biz_alias():
    values = form(
        customers=customers_field("杭州云栖网络有限公司", bizAlias="customers")
    )
    fields = FieldSpec("customers", NEW_OWNER_ID, CURRENT_OWNER_ID)

    request = parse_request(values, fields)

    assert request.customers == ("杭州云栖网络有限公司",)


def test_field_is_found_by_label_when_no_id_or_alias_matches():
    fields = FieldSpec("客户名称", NEW_OWNER_ID, CURRENT_OWNER_ID)

    request = parse_request(form(), fields)

    assert request.customers == ("上海示例科技有限公司", "北京示范贸易有限公司")


def test_renamed_label_is_still_found_by_component_id():
    values = form(
        customers=customers_field("广州示例物流有限公司", name="客户名称（每行一个）")
    )

    request = parse_request(values, BY_ID)

    assert request.customers == ("广州示例物流有限公司",)


def test_renamed_label_is_reported_missing_when_configured_by_label():
    values = form(
        customers=customers_field("广州示例物流有限公司", name="客户名称（每行一个）")
    )

    error = invalid(values, FieldSpec())

    assert error.field == "customers"
    assert error.reason == "field 客户名称 is missing"


def test_id_match_wins_over_another_field_with_that_label():
    decoy = {
        "id": "TextField_9",
        "name": CUSTOMERS_ID,
        "componentType": "TextField",
        "value": "错误的客户",
    }

    request = parse_request(form(extra=[decoy]), BY_ID)

    assert request.customers == ("上海示例科技有限公司", "北京示范贸易有限公司")


def test_label_shared_by_two_fields_is_ambiguous():
    twin = customers_field("深圳示例电子有限公司", id="TextareaField_OTHER")
    fields = FieldSpec("客户名称", NEW_OWNER_ID, CURRENT_OWNER_ID)

    error = invalid(form(extra=[twin]), fields)

    assert error.field == "customers"
    assert "ambiguous" in error.reason


def test_missing_new_owner_field_is_named():
    values = [customers_field("上海示例科技有限公司"), current_owner_field()]

    error = invalid(values)

    assert str(error) == f"new_owner: field {NEW_OWNER_ID} is missing"


def test_empty_biz_alias_never_matches_an_empty_spec():
    fields = FieldSpec("", NEW_OWNER_ID, CURRENT_OWNER_ID)

    error = invalid(form(), fields)

    assert error.field == "customers"


# Component types


def test_customers_as_table_field_are_rejected():
    table_schema = json.dumps(
        [
            {
                "componentName": "TextField",
                "props": {"id": "TextField_A", "label": "客户名称"},
            }
        ],
        ensure_ascii=False,
    )
    table = customers_field(table_schema, componentType="TableField")

    error = invalid(form(customers=table))

    assert error.field == "customers"
    assert "unsupported component type TableField" in error.reason


def test_customers_as_date_field_are_rejected():
    date = customers_field("2024-06-03", componentType="DDDateField")

    error = invalid(form(customers=date))

    assert "unsupported component type DDDateField" in error.reason


def test_customers_in_a_single_line_text_field_are_accepted():
    text = customers_field("成都示例软件有限公司", componentType="TextField")

    request = parse_request(form(customers=text), BY_ID)

    assert request.customers == ("成都示例软件有限公司",)


def test_picker_of_another_component_type_is_rejected():
    department = new_owner_field(componentType="DepartmentField")

    error = invalid(form(new_owner=department))

    assert error.field == "new_owner"
    assert "unsupported component type DepartmentField" in error.reason


def test_missing_component_type_is_accepted():
    customers = customers_field("上海示例科技有限公司")
    del customers["componentType"]
    owner = new_owner_field()
    del owner["componentType"]

    request = parse_request(form(customers=customers, new_owner=owner), BY_ID)

    assert request.customers == ("上海示例科技有限公司",)


# Empty customers


@pytest.mark.parametrize("value", ["null", "", "   ", "\u3000\n", " null "])
def test_empty_customers_field_is_invalid(value):
    error = invalid(form(customers=customers_field(value)))

    assert error.field == "customers"
    assert error.reason == f"field {CUSTOMERS_ID} is empty"


def test_customers_field_without_value_key_is_invalid():
    customers = customers_field("x")
    del customers["value"]

    error = invalid(form(customers=customers))

    assert error.reason == f"field {CUSTOMERS_ID} is empty"


def test_customers_field_of_only_separators_and_invisibles_is_invalid():
    error = invalid(form(customers=customers_field("，,\r\n|\u200b\ufeff｜")))

    assert error.reason == f"field {CUSTOMERS_ID} has no customer names after cleaning"


def test_customers_value_that_is_not_text_is_invalid():
    error = invalid(form(customers=customers_field(["上海示例科技有限公司"])))

    assert error.reason == f"field {CUSTOMERS_ID} value is list, not text"


# Customer limit


def test_exactly_max_customers_is_accepted():
    names = "\n".join(f"示例客户{i:03d}有限公司" for i in range(5))

    request = parse_request(form(customers_field(names)), BY_ID, max_customers=5)

    assert len(request.customers) == 5


def test_more_than_max_customers_is_invalid_with_the_count():
    names = "\n".join(f"示例客户{i:03d}有限公司" for i in range(6))

    error = invalid(form(customers_field(names)), max_customers=5)

    assert error.field == "customers"
    assert "lists 6 customers; the limit is 5" in error.reason


def test_limit_counts_names_after_de_duplication():
    names = "\n".join(["上海示例科技有限公司"] * 300)

    request = parse_request(form(customers_field(names)), BY_ID)

    assert request.customers == ("上海示例科技有限公司",)


# Contact pickers


def test_empl_id_with_leading_zeros_is_kept_as_a_string():
    owner = new_owner_field(person("0012345678"))

    request = parse_request(form(new_owner=owner), BY_ID)

    assert request.new_owner_ids == ("0012345678",)


def test_alphanumeric_empl_id_is_kept_verbatim():
    owner = new_owner_field(person("manager007"))

    request = parse_request(form(new_owner=owner), BY_ID)

    assert request.new_owner_ids == ("manager007",)


def test_several_new_owners_are_all_returned_in_picked_order():
    owner = new_owner_field(
        person("0165123456789012", "王小明"), person("wangwu", "王五")
    )

    request = parse_request(form(new_owner=owner), BY_ID)

    assert request.new_owner_ids == ("0165123456789012", "wangwu")


def test_several_current_owners_are_all_returned():
    claim = current_owner_field(
        person("2837465019283746", "李四"), person("011", "赵六")
    )

    request = parse_request(form(current_owner=claim), BY_ID)

    assert request.current_owner_ids == ("2837465019283746", "011")


def test_person_picked_twice_is_returned_once():
    owner = new_owner_field(
        person("wangwu", "王五"), person("011", "赵六"), person("wangwu")
    )

    request = parse_request(form(new_owner=owner), BY_ID)

    assert request.new_owner_ids == ("wangwu", "011")


def test_extra_keys_on_picked_people_are_ignored():
    owner = new_owner_field({"emplId": "wangwu", "name": "王五", "itemId": "x1"})

    request = parse_request(form(new_owner=owner), BY_ID)

    assert request.new_owner_ids == ("wangwu",)


def test_integer_empl_id_is_accepted_as_text():
    owner = new_owner_field(extValue='[{"emplId": 165123456789012, "name": "王小明"}]')

    request = parse_request(form(new_owner=owner), BY_ID)

    assert request.new_owner_ids == ("165123456789012",)


def test_empty_new_owner_picker_is_invalid():
    owner = new_owner_field(value="null")
    del owner["extValue"]

    error = invalid(form(new_owner=owner))

    assert str(error) == f"new_owner: field {NEW_OWNER_ID} is empty"


def test_new_owner_picker_with_empty_list_is_invalid():
    owner = new_owner_field(value="", extValue="[]")

    error = invalid(form(new_owner=owner))

    assert error.reason == f"field {NEW_OWNER_ID} is empty"


def test_empty_current_owner_picker_is_invalid():
    claim = current_owner_field(value="null", extValue="null")

    error = invalid(form(current_owner=claim))

    assert error.field == "current_owner"
    assert "current-owner claim cannot be checked" in error.reason


def test_display_names_without_ext_value_are_never_used():
    owner = new_owner_field(value="王小明")
    del owner["extValue"]

    error = invalid(form(new_owner=owner))

    assert (
        error.reason
        == f"field {NEW_OWNER_ID} shows names but its extValue carries no user ids"
    )


def test_broken_ext_value_json_is_invalid():
    owner = new_owner_field(extValue='[{"emplId": "0165123456789012", "name": "王小明"')

    error = invalid(form(new_owner=owner))

    assert error.reason == f"field {NEW_OWNER_ID} extValue is not valid JSON"


def test_deeply_nested_ext_value_is_invalid_not_a_crash():
    owner = new_owner_field(extValue="[" * 65_535)

    error = invalid(form(new_owner=owner))

    assert error.reason == f"field {NEW_OWNER_ID} extValue is not valid JSON"


@pytest.mark.parametrize(
    ("ext_value", "reason"),
    [
        ('{"emplId": "wangwu"}', "extValue is JSON dict, not a list"),
        ('"wangwu"', "extValue is JSON str, not a list"),
        ('["wangwu"]', "has a picked person without an emplId"),
        ('[{"name": "王五"}]', "has a picked person without an emplId"),
        ('[{"emplId": null}]', "has an unusable emplId None"),
        ('[{"emplId": ""}]', "has an unusable emplId ''"),
        ('[{"emplId": 1.65e15}]', "has an unusable emplId 1650000000000000.0"),
        ('[{"emplId": true}]', "has an unusable emplId True"),
        ('[{"emplId": -3}]', "has an unusable emplId -3"),
        ('[{"emplId": {"id": "wangwu"}}]', "has an unusable emplId {'id': 'wangwu'}"),
    ],
)
def test_ext_value_of_the_wrong_shape_is_invalid(ext_value, reason):
    owner = new_owner_field(extValue=ext_value)

    error = invalid(form(new_owner=owner))

    assert error.field == "new_owner"
    assert error.reason == f"field {NEW_OWNER_ID} {reason}"


def test_reason_quotes_a_huge_bad_value_briefly():
    owner = new_owner_field(extValue=json.dumps([{"emplId": [0] * 20_000}]))

    error = invalid(form(new_owner=owner))

    assert error.reason.startswith(f"field {NEW_OWNER_ID} has an unusable emplId [0, 0")
    assert len(error.reason) < 120


def test_ext_value_that_is_already_decoded_is_invalid():
    owner = new_owner_field(extValue=[person("wangwu")])

    error = invalid(form(new_owner=owner))

    assert error.reason == f"field {NEW_OWNER_ID} extValue is list, not a JSON string"


# Splitting customer lists


def test_crlf_lists_leave_no_carriage_returns():
    names = split_customer_names("上海示例科技有限公司\r\n北京示范贸易有限公司\r\n")

    assert names == ["上海示例科技有限公司", "北京示范贸易有限公司"]


@pytest.mark.parametrize(
    "separator",
    ["\n", "\r\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
    + [",", "\uff0c", "|", "\uff5c"],
)
def test_every_separator_splits_names(separator):
    text = f"上海示例科技有限公司{separator}北京示范贸易有限公司"

    assert split_customer_names(text) == [
        "上海示例科技有限公司",
        "北京示范贸易有限公司",
    ]


@pytest.mark.parametrize("inside", ["、", ";", "\uff1b"])
def test_enumeration_comma_and_semicolons_stay_inside_names(inside):
    name = f"中国示例工程（集团）有限公司{inside}第一分公司"

    assert split_customer_names(name) == [name]


def test_mixed_separators_and_blank_lines_give_each_name_once():
    text = "\n\n上海示例科技有限公司，北京示范贸易有限公司 | 广州示例物流有限公司\n\n,,"

    assert split_customer_names(text) == [
        "上海示例科技有限公司",
        "北京示范贸易有限公司",
        "广州示例物流有限公司",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Acme Co., Ltd.",
        "Acme Co.,Ltd.",
        "Acme Co.，Ltd.",
        "Acme Holdings, Inc.",
        "Acme Holdings, LLC",
        "Acme Trading, LIMITED",
        "Acme Maschinenbau, GmbH",
        "Acme, Corp.",
        "Acme, Co., Ltd.",
    ],
)
def test_legal_suffix_after_a_comma_stays_with_its_name(text):
    assert split_customer_names(text) == [text]


def test_full_width_legal_suffix_is_recognised():
    assert split_customer_names("Acme Co.,Ｌｔｄ．") == ["Acme Co.,Ｌｔｄ．"]


def test_legal_suffix_rejoin_keeps_the_following_names_apart():
    text = "Acme Co., Ltd., 上海示例科技有限公司, Beta Inc."

    assert split_customer_names(text) == [
        "Acme Co., Ltd.",
        "上海示例科技有限公司",
        "Beta Inc.",
    ]


def test_legal_suffix_on_its_own_line_is_not_joined():
    assert split_customer_names("Acme Co.\nLtd.") == ["Acme Co.", "Ltd."]


def test_leading_legal_suffix_has_nothing_to_join_and_stays_a_name():
    assert split_customer_names("Ltd., Acme") == ["Ltd.", "Acme"]


def test_word_merely_starting_like_a_suffix_is_its_own_name():
    assert split_customer_names("Acme, Incubator") == ["Acme", "Incubator"]


# Cleaning names


@pytest.mark.parametrize(
    "invisible",
    ["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060", "\u2061", "\u2064"]
    + ["\ufeff", "\u00ad", "\u202e", "\u2066", "\x00", "\x07", "\x7f", "\u3164"],
)
def test_invisible_characters_are_removed_everywhere(invisible):
    text = f"{invisible}上海{invisible}示例科技有限公司{invisible}"

    assert clean_name(text) == "上海示例科技有限公司"


@pytest.mark.parametrize(
    "space",
    ["\u00a0", "\u3000", "\u2000", "\u2007", "\u200a", "\u202f", "\u205f", "\t"],
)
def test_unicode_spaces_become_one_plain_space(space):
    assert (
        clean_name(f"{space}深圳 {space}示例{space}{space}电子{space}")
        == "深圳 示例 电子"
    )


def test_inner_single_spaces_are_kept():
    assert clean_name("  Acme Trading  Co.  ") == "Acme Trading Co."


def test_bom_and_ideographic_space_at_the_edges_are_stripped():
    assert (
        clean_name("\ufeff\u3000北京示范贸易有限公司\u3000\r") == "北京示范贸易有限公司"
    )


def test_clean_name_keeps_full_width_letters_for_display():
    assert clean_name("ＡＢＣ科技") == "ＡＢＣ科技"


# Name keys and de-duplication


@pytest.mark.parametrize(
    "variant",
    [
        "ＡＢＣ科技有限公司",
        "abc科技有限公司",
        "ABC科技有限公司\u200b",
        " ABC科技有限公司\u3000",
    ],
)
def test_names_differing_in_width_case_or_edges_share_a_key(variant):
    assert name_key(variant) == name_key("ABC科技有限公司")


def test_names_differing_in_inner_spacing_share_a_key():
    assert name_key("ABC\u3000\u3000科技") == name_key("ABC 科技")


def test_different_names_have_different_keys():
    assert name_key("上海示例科技有限公司") != name_key("上海示例科技股份有限公司")


def test_duplicates_differing_in_width_case_or_spaces_keep_the_first_spelling():
    text = "ＡＢＣ科技有限公司\nabc科技有限公司\n ABC科技有限公司 \nA B C科技有限公司"

    assert split_customer_names(text) == ["ＡＢＣ科技有限公司", "A B C科技有限公司"]


def test_name_key_folds_full_case():
    assert name_key("STRASSE GmbH") == name_key("straße gmbh")


# Query variants


def test_full_width_name_is_also_queried_in_half_width():
    assert query_variants("ＡＢＣ科技") == ["ＡＢＣ科技", "ABC科技"]


def test_plain_name_is_queried_once():
    assert query_variants("上海示例科技有限公司") == ["上海示例科技有限公司"]


def test_query_variants_are_cleaned():
    assert query_variants("\u200b（株）示例\u3000商事 ") == [
        "（株）示例 商事",
        "(株)示例 商事",
    ]


def test_empty_name_has_no_query_variants():
    assert query_variants(" \u200b ") == []
