"""Small scenario builders so each test states only what matters to it."""

from __future__ import annotations

import copy

ALICE = "0165123456789012"  # leading zero: ids are strings
BOB = "2837465019283746"
CAROL = "manager007"
DAVE = "0099887766554433"
BOT = "fzr-bot"

# Component ids of the approval form, as the reference's examples name them.
CUSTOMERS_ID = "TextareaField_1K334ML768QO0"
NEW_OWNER_ID = "InnerContactField_1R9B45BYVYE80"
CURRENT_OWNER_ID = "InnerContactField_0QW7Z1C3XYZ40"

USERS = {ALICE: "王小明", BOB: "李四", CAROL: "张经理", DAVE: "赵六", BOT: "fzr 助手"}

CUSTOMERS = [
    {"dataId": 101, "name": "上海示例科技有限公司", "owners": [BOB]},
    {"dataId": 102, "name": "北京示范贸易有限公司", "owners": [BOB, CAROL]},
    {"dataId": 103, "name": "广州样板实业有限公司", "owners": [CAROL]},
    {"dataId": 104, "name": "深圳同名电子有限公司", "owners": [BOB]},
    {"dataId": 105, "name": "深圳同名电子有限公司", "owners": [CAROL]},
    {"dataId": 106, "name": "杭州公海物流有限公司", "owners": [], "pool": True},
    {"dataId": 107, "name": "成都已有客户有限公司", "owners": [BOB, ALICE]},
]


def approved(
    instance_id: str,
    customers: str,
    new=(ALICE,),
    current=(BOB,),
    created="-2h",
    finished="-1h",
    **extra,
) -> dict:
    return {
        "id": instance_id,
        "created": created,
        "finished": finished,
        "status": "COMPLETED",
        "result": "agree",
        "originator": ALICE,
        "customers": customers,
        "new_owners": list(new),
        "current_owners": list(current),
        **extra,
    }


def running(instance_id: str, customers: str, created="-3h", **extra) -> dict:
    return {
        "id": instance_id,
        "created": created,
        "status": "RUNNING",
        "originator": ALICE,
        "customers": customers,
        "new_owners": [ALICE],
        "current_owners": [BOB],
        **extra,
    }


def scenario(*instances: dict, customers=None, comments=True, **sections) -> dict:
    data = {
        "users": dict(USERS),
        "dingtalk": {"instances": [copy.deepcopy(i) for i in instances]},
        "xbb": {
            "customers": copy.deepcopy(CUSTOMERS if customers is None else customers)
        },
    }
    if comments:
        data["dingtalk"]["comment_user_id"] = BOT
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return data
