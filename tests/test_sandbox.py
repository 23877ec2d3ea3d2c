"""The sandbox answers like the real DingTalk, XBB and group robot, quirks included.

Everything here talks plain HTTP with `requests`, as fzr does, so the tests prove the
wire format rather than the emulator's internals.
"""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest
import requests

from fzrcli.sandbox import (
    MADE_UP_CODES,
    Sandbox,
    load_scenario,
    robot_sign,
    scenario_path,
    xbb_sign,
)
from fzrcli.sandbox import emulator

REFERENCE_TOKEN = "0123456789abcdef0123456789abcdef"
LI_SI = "2837465019283746"
WANG = "0165123456789012"
REFERENCE_CORPID = "ding0000example"
ROBOT_SECRET = "SECexample0123456789abcdef"
PROCESS_CODE = "PROC-0A1B2C3D-EXAMPLE"
NOW = 1_717_400_000.0  # a fixed moment, so throttles and windows are deterministic
DAY_MS = 86_400_000


class Clock:
    def __init__(self, now: float = NOW):
        self.now = now

    def __call__(self) -> float:
        return self.now


def scenario(**overrides) -> dict:
    """The reference's made-up tenant, small enough to read in one go."""
    base = {
        "users": {
            "0165123456789012": "王小明",
            "2837465019283746": "李四",
            "manager001": "赵敏",
            "0199887766554433": {"name": "陈静", "resigned": True},
            "fzr-bot": {"name": "fzr 助手", "xbb": False},
        },
        "dingtalk": {
            "app_key": "dingabc123xyz",
            "app_secret": "Zq3-example-secret-value",
            "process_code": PROCESS_CODE,
            "comment_user_id": "fzr-bot",
            "instances": [
                {
                    "id": "inst-approved",
                    "created": "-2h",
                    "finished": "-1h",
                    "originator": "0165123456789012",
                    "approver": "manager001",
                    "customers": "示例客户\r\n上海示例科技有限公司",
                    "new_owners": ["0165123456789012"],
                    "current_owners": ["2837465019283746"],
                },
                {"id": "inst-withdrawn", "created": "-90m", "status": "TERMINATED"},
                {"id": "inst-running", "created": "-10m", "customers": None},
            ],
        },
        "xbb": {
            "corpid": REFERENCE_CORPID,
            "token": REFERENCE_TOKEN,
            "operator": "manager001",
            "form_id": 1001,
            "customers": [
                {"dataId": 106037143, "name": "示例客户", "owners": [LI_SI]},
                {"dataId": 106037444, "name": "上海示例科技有限公司", "owners": []},
                {"dataId": 106037500, "name": "南京紫金山医药有限公司", "pool": True},
            ],
        },
        "robot": {"access_token": "robot-token", "secret": ROBOT_SECRET},
    }
    base.update(overrides)
    return base


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def sandbox(clock):
    with Sandbox(scenario(), clock=clock) as sb:
        yield sb


def dingtalk_token(sb: Sandbox) -> str:
    credentials = {"appKey": "dingabc123xyz", "appSecret": "Zq3-example-secret-value"}
    answer = requests.post(f"{sb.url}/v1.0/oauth2/accessToken", json=credentials)
    return answer.json()["accessToken"]


def list_ids(sb: Sandbox, token: str, **fields) -> requests.Response:
    body = {
        "processCode": PROCESS_CODE,
        "startTime": int(NOW * 1000) - DAY_MS,
        "nextToken": 0,
        "maxResults": 20,
        **fields,
    }
    headers = {"x-acs-dingtalk-access-token": token}
    path = "/v1.0/workflow/processes/instanceIds/query"
    return requests.post(sb.url + path, json=body, headers=headers)


def get_instance(sb: Sandbox, token: str, instance_id: str) -> requests.Response:
    headers = {"x-acs-dingtalk-access-token": token}
    params = {"processInstanceId": instance_id}
    path = "/v1.0/workflow/processInstances"
    return requests.get(sb.url + path, params=params, headers=headers)


def xbb_raw(sb: Sandbox, api: str, raw: bytes, sign: str) -> requests.Response:
    headers = {"Content-Type": "application/json;charset=UTF-8", "sign": sign}
    return requests.post(f"{sb.url}/pro/v2/api/{api}", data=raw, headers=headers)


def xbb_post(sb: Sandbox, api: str, payload: dict) -> dict:
    body = {"corpid": REFERENCE_CORPID, "userId": "manager001", **payload}
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    answer = xbb_raw(sb, api, raw, xbb_sign(raw, REFERENCE_TOKEN))
    assert answer.status_code == 200
    return answer.json()


def robot_url(sb: Sandbox, timestamp: str, sign: str) -> str:
    query = {"access_token": "robot-token", "timestamp": timestamp, "sign": sign}
    return f"{sb.url}/robot/send?{urllib.parse.urlencode(query)}"


def find_by_name(sb: Sandbox, symbol: str, value: object) -> dict:
    condition = {"attr": "text_1", "symbol": symbol, "value": value}
    return xbb_post(sb, "customer/list", {"formId": 1001, "conditions": [condition]})


def distribute(sb: Sandbox, data_id: int, user_id: str, sub_type: int = 101) -> dict:
    request = {"dataIdList": [data_id], "businessUserId": user_id}
    request["subBusinessType"] = sub_type
    return xbb_post(sb, "customer/distribution", request)


MARKDOWN = {"msgtype": "markdown", "markdown": {"title": "fzr", "text": "#### 已处理"}}


# -- XBB signing -----------------------------------------------------------------------


def test_xbb_accepts_the_reference_compact_body_and_its_sign(sandbox):
    raw = (
        '{"corpid":"ding0000example","userId":"manager001","formId":1001,'
        '"conditions":[{"attr":"text_1","symbol":"equal","value":["示例客户"]}],'
        '"page":1,"pageSize":20}'
    ).encode()
    vector = "97bf868fa8520828966cc818534cc3e13c6e432137dc27ea0f7983b4402a092b"
    assert xbb_sign(raw, REFERENCE_TOKEN) == vector

    answer = xbb_raw(sandbox, "customer/list", raw, vector).json()

    assert answer["code"] == 1 and answer["success"] is True
    assert [row["dataId"] for row in answer["result"]["list"]] == [106037143]


def test_xbb_checks_the_exact_bytes_received(sandbox):
    condition = {"attr": "text_1", "symbol": "equal", "value": ["示例客户"]}
    payload = {"corpid": REFERENCE_CORPID, "userId": "manager001", "formId": 1001}
    payload.update(conditions=[condition], page=1, pageSize=20)
    default_bytes = json.dumps(payload).encode()
    compact_sign = "97bf868fa8520828966cc818534cc3e13c6e432137dc27ea0f7983b4402a092b"
    default_sign = "7f6726af03d0cfd716e3d3f037a4af1fd3b96ab3d644877c78798a689e87a674"

    signed_other_bytes = xbb_raw(sandbox, "customer/list", default_bytes, compact_sign)
    signed_these_bytes = xbb_raw(sandbox, "customer/list", default_bytes, default_sign)

    assert signed_other_bytes.json()["code"] == MADE_UP_CODES["bad_sign"][0]
    assert signed_these_bytes.json()["code"] == 1


def test_xbb_sign_keeps_leading_zeros(sandbox):
    raw = b'{"corpid":"ding0000example","userId":"manager001","dataId":106037444}'
    vector = "00486abc6be28e638b521abbab95de5259aafdbda7f61f50835de5c7d364b586"
    assert xbb_sign(raw, REFERENCE_TOKEN) == vector

    stripped = xbb_raw(sandbox, "customer/detail", raw, vector.lstrip("0")).json()
    padded = xbb_raw(sandbox, "customer/detail", raw, vector).json()

    assert stripped["code"] == MADE_UP_CODES["bad_sign"][0]
    assert padded["result"]["dataId"] == 106037444


def test_xbb_refuses_a_wrong_sign_with_http_200_and_no_result(sandbox):
    raw = b'{"corpid":"ding0000example","dataId":106037143}'

    answer = xbb_raw(sandbox, "customer/detail", raw, "0" * 64)

    assert answer.status_code == 200
    code, msg = MADE_UP_CODES["bad_sign"]
    assert answer.json() == {"code": code, "msg": msg, "success": False}


# -- XBB data shapes -------------------------------------------------------------------


def test_owners_are_a_json_string_in_list_but_objects_in_detail(sandbox):
    listed = find_by_name(sandbox, "equal", ["示例客户"])
    detail = xbb_post(sandbox, "customer/detail", {"dataId": 106037143})

    row = listed["result"]["list"][0]
    assert row["data"]["ownerId"] == '["2837465019283746"]'
    assert row["data"]["coUserId"] == "[]"
    owners = detail["result"]["data"]["ownerId"]
    assert owners == [{"id": LI_SI, "name": "李四", "avatar": ""}]


def test_equal_is_byte_exact_and_like_is_substring(sandbox):
    def names(symbol: str, value: str) -> list[str]:
        rows = find_by_name(sandbox, symbol, [value])["result"]["list"]
        return [row["data"]["text_1"] for row in rows]

    assert names("equal", "示例客户 ") == []
    assert names("equal", "示例客户\u200b") == []
    assert names("like", "示例") == ["示例客户", "上海示例科技有限公司"]


def test_customer_list_refuses_a_scalar_value_and_oversized_pages(sandbox):
    refused = find_by_name(sandbox, "equal", "示例客户")
    too_big = xbb_post(sandbox, "customer/list", {"formId": 1001, "pageSize": 101})

    assert refused["code"] == too_big["code"] == MADE_UP_CODES["bad_parameter"][0]
    assert "result" not in refused


def test_unknown_data_id_is_code_100001(sandbox):
    answer = xbb_post(sandbox, "customer/detail", {"dataId": 999})

    assert answer == {"code": 100001, "msg": "表单数据不存在或已删除", "success": False}


def test_user_list_hides_resigned_staff_unless_asked(sandbox):
    wanted = {"userIdIn": ["0199887766554433"], "page": 1, "pageSize": 20}

    active = xbb_post(sandbox, "user/list", {**wanted, "delIgnore": 0})["result"]
    everyone = xbb_post(sandbox, "user/list", {**wanted, "delIgnore": 1})["result"]

    assert active["userList"] == [] and active["totalCount"] == 0
    assert [user["name"] for user in everyone["userList"]] == ["陈静"]


def test_distribution_appends_an_owner(sandbox):
    answer = distribute(sandbox, 106037143, WANG)

    assert answer["result"] == {"resultType": "success", "resultMsg": "分配成功"}
    assert sandbox.customer(106037143)["owners"] == [LI_SI, WANG]


def test_distribution_in_replace_mode_drops_existing_owners(clock):
    replacing = scenario()
    replacing["xbb"]["distribution"] = "replace"

    with Sandbox(replacing, clock=clock) as sb:
        distribute(sb, 106037143, WANG)

        assert sb.customer(106037143)["owners"] == [WANG]


def test_distribution_takes_a_pool_customer_out_of_the_pool(sandbox):
    distribute(sandbox, 106037500, WANG, sub_type=105)

    assert sandbox.customer(106037500) == {
        "dataId": 106037500,
        "name": "南京紫金山医药有限公司",
        "owners": [WANG],
        "pool": False,
    }


def test_distribution_refuses_a_resigned_user_and_changes_nothing(sandbox):
    answer = distribute(sandbox, 106037143, "0199887766554433")

    assert answer["code"] == MADE_UP_CODES["unknown_user"][0]
    assert sandbox.customer(106037143)["owners"] == [LI_SI]


def test_distribution_records_the_legacy_request_shape(sandbox):
    legacy = {"dataIdList": [106037444], "distributionUserIds": [WANG]}

    assert xbb_post(sandbox, "customer/distribution", legacy)["code"] == 1
    assert sandbox.distributions[0]["shape"] == "distributionUserIds"


# -- DingTalk --------------------------------------------------------------------------


def test_token_is_reused_while_valid_and_refused_outside_the_header(sandbox):
    token = dingtalk_token(sandbox)
    path = sandbox.url + "/v1.0/workflow/processInstances"
    params = {"processInstanceId": "inst-approved"}

    bearer = {"Authorization": f"Bearer {token}"}
    in_query = requests.get(path, params={**params, "access_token": token})
    as_bearer = requests.get(path, params=params, headers=bearer)

    assert dingtalk_token(sandbox) == token
    for answer in (in_query, as_bearer):
        assert answer.status_code == 400
        assert answer.json()["code"] == "AuthenticationFailed.MissingParameter"
        assert set(answer.json()) == {"requestid", "code", "message"}


def test_token_refuses_a_form_encoded_body_and_bad_credentials(sandbox):
    path = sandbox.url + "/v1.0/oauth2/accessToken"
    credentials = {"appKey": "dingabc123xyz", "appSecret": "wrong"}

    form = requests.post(path, data=credentials)
    wrong = requests.post(path, json=credentials)

    assert form.status_code == wrong.status_code == 400
    assert "body is mandatory" in form.json()["message"]
    assert wrong.json()["code"] == "invalidClientIdOrSecret"


def test_expired_token_is_invalid_and_replaced(sandbox, clock):
    token = dingtalk_token(sandbox)
    clock.now += 7201

    refused = get_instance(sandbox, token, "inst-approved")

    assert refused.status_code == 400
    assert refused.json()["code"] == "InvalidAuthentication"
    assert dingtalk_token(sandbox) != token


def test_paging_answers_string_tokens_and_needs_numbers():
    instances = [{"id": f"i{n:02}", "created": f"-{60 - n}m"} for n in range(45)]
    paged = scenario()
    paged["dingtalk"]["instances"] = instances

    with Sandbox(paged, clock=Clock()) as sb:
        token = dingtalk_token(sb)
        pages = [list_ids(sb, token, nextToken=n).json()["result"] for n in (0, 20, 40)]
        as_string = list_ids(sb, token, nextToken="20")

    assert [page.get("nextToken") for page in pages] == ["20", "40", None]
    assert "nextToken" not in pages[2]
    assert sum((page["list"] for page in pages), []) == [i["id"] for i in instances]
    assert as_string.status_code == 400
    assert as_string.json()["code"] == "invalidParameter"


@pytest.mark.parametrize(("style", "expected"), [("empty", ""), ("null", None)])
def test_last_page_token_style_is_configurable(clock, style, expected):
    styled = scenario()
    styled["dingtalk"]["last_page_token"] = style

    with Sandbox(styled, clock=clock) as sb:
        result = list_ids(sb, dingtalk_token(sb)).json()["result"]

    assert "nextToken" in result and result["nextToken"] == expected


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"maxResults": 21}, "invalidMaxResults"),
        ({"startTime": int(NOW * 1000) - 121 * DAY_MS}, "invalidEndTime"),
        ({"processCode": ""}, "invalidProcessCode"),
    ],
)
def test_list_validates_its_request(sandbox, fields, code):
    answer = list_ids(sandbox, dingtalk_token(sandbox), **fields)

    assert answer.status_code == 400 and answer.json()["code"] == code


def test_list_status_filter_and_default(sandbox):
    token = dingtalk_token(sandbox)

    completed = list_ids(sandbox, token, statuses=["COMPLETED"]).json()["result"]
    everything = list_ids(sandbox, token).json()["result"]

    assert completed["list"] == ["inst-approved"]
    assert everything["list"] == ["inst-approved", "inst-withdrawn", "inst-running"]


def test_instance_get_keeps_the_platform_quirks(sandbox):
    token = dingtalk_token(sandbox)

    approved = get_instance(sandbox, token, "inst-approved").json()
    withdrawn = get_instance(sandbox, token, "inst-withdrawn").json()["result"]
    running = get_instance(sandbox, token, "inst-running").json()["result"]

    assert approved["success"] == "true"
    result = approved["result"]
    assert (result["status"], result["result"]) == ("COMPLETED", "agree")
    assert result["createTime"] == "2024-06-03T05:33Z"  # UTC, minute precision
    form = {field["name"]: field for field in result["formComponentValues"]}
    assert form["客户名称"]["value"] == "示例客户\r\n上海示例科技有限公司"
    picked = json.loads(form["需添加的负责人"]["extValue"])
    assert picked[0]["emplId"] == "0165123456789012"
    assert withdrawn["status"] == "TERMINATED" and "result" not in withdrawn
    assert "finishTime" not in running
    empty = {field["name"]: field for field in running["formComponentValues"]}
    assert empty["客户名称"]["value"] == "null" and "extValue" not in empty["客户名称"]


def test_unknown_instance_is_400_process_instance_not_exist(sandbox):
    answer = get_instance(sandbox, dingtalk_token(sandbox), "nope")

    assert answer.status_code == 400
    assert answer.json()["code"] == "processInstanceNotExist"


def test_comment_is_kept_as_an_add_remark_record(sandbox):
    token = dingtalk_token(sandbox)

    def comment(text: str, user_id: str = "fzr-bot") -> dict:
        body = {"processInstanceId": "inst-approved", "text": text}
        body["commentUserId"] = user_id
        headers = {"x-acs-dingtalk-access-token": token}
        path = sandbox.url + "/v1.0/workflow/processInstances/comments"
        return requests.post(path, json=body, headers=headers).json()

    assert comment("fzr：已添加") == {"result": True, "success": True}
    assert comment("长" * 1025)["code"] == "invalidInstanceCommentText"
    assert comment("hi", user_id="ghost")["code"] == "userNotExist"
    assert sandbox.comments("inst-approved") == ["fzr：已添加"]
    records = get_instance(sandbox, token, "inst-approved").json()["result"]
    remark = records["operationRecords"][-1]
    assert remark["type"] == "ADD_REMARK" and remark["result"] == "NONE"
    assert remark["remark"] == "fzr：已添加"


def test_qps_limit_refuses_the_21st_call_in_a_second_unbilled(clock):
    limited = scenario(limits={"enforce_rate_limits": True})

    with Sandbox(limited, clock=clock) as sb:
        token = dingtalk_token(sb)
        answers = [get_instance(sb, token, "inst-approved") for _ in range(21)]

        assert [answer.status_code for answer in answers] == [200] * 20 + [403]
        assert sb.count(api="instances.get", metered=True) == 20


def test_monthly_quota_stops_metered_calls_but_not_tokens(clock):
    with Sandbox(scenario(limits={"monthly_quota": 2}), clock=clock) as sb:
        token = dingtalk_token(sb)
        answers = [get_instance(sb, token, "inst-approved") for _ in range(3)]

        assert [answer.status_code for answer in answers] == [200, 200, 403]
        assert answers[2].json()["code"] == "Forbidden.AccessDenied.ApiCountLimitForOrg"
        assert dingtalk_token(sb) == token
        assert sb.quota_used == 2


# -- robot -----------------------------------------------------------------------------


def test_robot_signature_matches_the_reference_vector(clock):
    vector = "+cxnz7PMkHTgYGZLYfiu2juTRMk8MZfdVOdDh8s0utc="
    quoted = "%2Bcxnz7PMkHTgYGZLYfiu2juTRMk8MZfdVOdDh8s0utc%3D"
    assert robot_sign(ROBOT_SECRET, "1700000000000") == vector
    assert urllib.parse.quote_plus(vector) == quoted
    clock.now = 1_700_000_000.0

    with Sandbox(scenario(), clock=clock) as sb:
        accepted = requests.post(robot_url(sb, "1700000000000", vector), json=MARKDOWN)

        assert accepted.json() == {"errcode": 0, "errmsg": "ok"}
        assert sb.robot_messages == [MARKDOWN]


def test_robot_refuses_a_bad_signature_and_a_stale_timestamp(sandbox):
    now_ms = str(int(NOW * 1000))
    stale_ms = str(int(NOW * 1000) - 3_600_001)

    forged_url = robot_url(sandbox, now_ms, "bm90IGEgc2lnbg==")
    stale_url = robot_url(sandbox, stale_ms, robot_sign(ROBOT_SECRET, stale_ms))

    forged = requests.post(forged_url, json=MARKDOWN)
    stale = requests.post(stale_url, json=MARKDOWN)

    assert forged.status_code == 200
    assert forged.json() == {"errcode": 310000, "errmsg": "sign not match"}
    assert stale.json() == {"errcode": 310000, "errmsg": "invalid timestamp"}
    assert sandbox.robot_messages == []


def test_robot_allows_twenty_messages_a_minute(sandbox):
    now_ms = str(int(NOW * 1000))
    url = robot_url(sandbox, now_ms, robot_sign(ROBOT_SECRET, now_ms))

    codes = [requests.post(url, json=MARKDOWN).json()["errcode"] for _ in range(21)]

    assert codes == [0] * 20 + [410100]


# -- faults ----------------------------------------------------------------------------


def test_throttle_fault_lets_calls_through_first_and_is_not_billed(sandbox):
    rule = {"service": "dingtalk", "api": "instances.get", "kind": "throttle"}
    sandbox.add_fault({**rule, "after": 1, "times": 2})
    token = dingtalk_token(sandbox)

    answers = [get_instance(sandbox, token, "inst-approved") for _ in range(4)]

    assert [answer.status_code for answer in answers] == [200, 403, 403, 200]
    assert sandbox.count(api="instances.get", metered=True) == 2


def test_drop_fault_closes_the_connection_unanswered(sandbox):
    sandbox.add_fault({"service": "xbb", "kind": "drop"})

    with pytest.raises(requests.ConnectionError):
        xbb_post(sandbox, "customer/detail", {"dataId": 106037143})

    assert sandbox.calls[-1].status == 0
    assert xbb_post(sandbox, "customer/detail", {"dataId": 106037143})["code"] == 1


def test_write_lost_applies_the_distribution_then_drops(sandbox):
    rule = {"service": "xbb", "api": "customer.distribution", "kind": "write_lost"}
    sandbox.add_fault(rule)

    with pytest.raises(requests.ConnectionError):
        distribute(sandbox, 106037444, WANG)

    assert sandbox.customer(106037444)["owners"] == [WANG]


def test_token_invalid_fault_revokes_the_issued_token(sandbox):
    token = dingtalk_token(sandbox)
    sandbox.add_fault({"service": "dingtalk", "kind": "token_invalid"})

    refused = get_instance(sandbox, token, "inst-approved")
    renewed = dingtalk_token(sandbox)

    assert refused.status_code == 400
    assert refused.json()["code"] == "InvalidAuthentication"
    assert renewed != token
    assert get_instance(sandbox, renewed, "inst-approved").status_code == 200


def test_cursor_stuck_fault_repeats_page_and_token(sandbox):
    sandbox.add_fault({"service": "dingtalk", "kind": "cursor_stuck", "times": None})
    token = dingtalk_token(sandbox)

    first = list_ids(sandbox, token, maxResults=1).json()["result"]
    again = list_ids(sandbox, token, maxResults=1, nextToken=1).json()["result"]

    assert first == again == {"list": ["inst-approved"], "nextToken": "1"}


def test_gateway_faults_answer_non_json(sandbox):
    token = dingtalk_token(sandbox)
    sandbox.add_fault({"service": "xbb", "kind": "server_error"})
    sandbox.add_fault({"service": "dingtalk", "kind": "ip_ban_html"})
    sandbox.add_fault({"service": "dingtalk", "kind": "malformed_json", "after": 1})
    raw = b'{"corpid":"ding0000example","dataId":106037143}'
    sign = xbb_sign(raw, REFERENCE_TOKEN)

    bad_gateway = xbb_raw(sandbox, "customer/detail", raw, sign)
    banned = get_instance(sandbox, token, "inst-approved")
    garbled = list_ids(sandbox, token)

    assert bad_gateway.status_code == 502 and bad_gateway.text.startswith("<html>")
    assert banned.headers["Content-Type"].startswith("text/html")
    assert garbled.status_code == 200
    with pytest.raises(ValueError):
        garbled.json()


def test_permission_fault_names_the_scope(sandbox):
    token = dingtalk_token(sandbox)
    sandbox.add_fault({"service": "dingtalk", "kind": "permission_denied"})

    answer = list_ids(sandbox, token)

    assert answer.status_code == 403
    assert "[Workflow.Instance.Read]" in answer.json()["message"]


def test_wrong_shape_fault_turns_the_list_into_a_string(sandbox):
    sandbox.add_fault({"service": "xbb", "api": "customer.list", "kind": "wrong_shape"})

    answer = xbb_post(sandbox, "customer/list", {"formId": 1001})

    assert answer["code"] == 1 and isinstance(answer["result"]["list"], str)


def test_an_unknown_fault_kind_is_refused(sandbox):
    with pytest.raises(ValueError):
        sandbox.add_fault({"service": "robot", "kind": "cursor_stuck"})


# -- the Python API --------------------------------------------------------------------


def test_calls_are_counted_by_service_api_and_metering(sandbox):
    token = dingtalk_token(sandbox)
    get_instance(sandbox, token, "inst-approved")
    xbb_post(sandbox, "customer/detail", {"dataId": 106037143})

    assert sandbox.count(service="dingtalk") == 2
    assert sandbox.count(api="token", metered=False) == 1
    assert sandbox.count(metered=True) == 1
    assert sandbox.calls[-1].request["dataId"] == 106037143
    sandbox.reset_calls()
    assert sandbox.calls == []


def test_added_and_finished_instances_show_up(sandbox, clock):
    instance_id = sandbox.add_instance(created="-5m", customers="示例客户")
    token = dingtalk_token(sandbox)
    running = get_instance(sandbox, token, instance_id).json()["result"]
    assert "finishTime" not in running

    sandbox.finish_instance(instance_id, result="refuse")

    result = get_instance(sandbox, token, instance_id).json()["result"]
    assert (result["status"], result["result"]) == ("COMPLETED", "refuse")
    assert result["finishTime"] == "2024-06-03T07:33Z"


def test_bundled_demo_serves_and_points_fzr_at_itself():
    assert scenario_path("demo").name == "demo.json"

    with Sandbox(load_scenario("demo")) as sb:
        url, env = sb.url, sb.env()
        credentials = {
            "appKey": env["FZR_DINGTALK_APP_KEY"],
            "appSecret": env["FZR_DINGTALK_APP_SECRET"],
        }
        path = "/v1.0/oauth2/accessToken"
        token = requests.post(sb.url + path, json=credentials).json()["accessToken"]
        start_ms = int(time.time() * 1000) - 3 * DAY_MS
        body = {"processCode": env["FZR_PROCESS_CODE"], "startTime": start_ms}
        body.update(nextToken=0, maxResults=20)
        headers = {"x-acs-dingtalk-access-token": token}
        path = "/v1.0/workflow/processes/instanceIds/query"
        listed = requests.post(sb.url + path, json=body, headers=headers).json()

    assert env["FZR_DINGTALK_BASE_URL"] == env["FZR_XBB_BASE_URL"] == url
    assert url.startswith("http://127.0.0.1:")
    assert env["FZR_ROBOT_WEBHOOK"].startswith(f"{url}/robot/send?access_token=")
    assert {"FZR_COMMENT_USER_ID", "FZR_ROBOT_SECRET"} <= set(env)
    assert len(listed["result"]["list"]) == 11


def test_serve_prints_export_lines(monkeypatch, capsys):
    monkeypatch.setattr(emulator, "wait_for_interrupt", lambda: None)

    emulator.serve("empty")

    lines = capsys.readouterr().out.splitlines()
    assert "export FZR_XBB_CORPID=ding0000demo" in lines
    assert all(line.startswith("export FZR_") for line in lines)
