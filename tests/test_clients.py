"""Client details that must match the real services byte for byte."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest
from builders import approved, scenario

from fzrcli.errors import FzrError
from fzrcli.scan import SPAN_MS, windows
from fzrcli.store import MIGRATIONS, Store
from fzrcli.xbb import owner_ids

TOKEN = "0123456789abcdef0123456789abcdef"


def sign(payload: dict) -> str:
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(raw + TOKEN.encode()).hexdigest()


def test_crm_signature_matches_the_reference_vectors(make_sandbox, make_fzr):
    body = {
        "corpid": "ding0000example",
        "userId": "manager001",
        "formId": 1001,
        "conditions": [{"attr": "text_1", "symbol": "equal", "value": ["示例客户"]}],
        "page": 1,
        "pageSize": 20,
    }
    assert sign(body) == (
        "97bf868fa8520828966cc818534cc3e13c6e432137dc27ea0f7983b4402a092b"
    )
    padded = {"corpid": "ding0000example", "userId": "manager001", "dataId": 106037444}
    assert sign(padded) == (
        "00486abc6be28e638b521abbab95de5259aafdbda7f61f50835de5c7d364b586"
    )


def test_crm_calls_sign_exactly_the_bytes_sent(make_sandbox, make_fzr):
    sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
    fzr = make_fzr(sandbox)

    run = fzr("sync")

    assert run.code == 0, run.stderr
    crm = [c for c in sandbox.calls if c.service == "xbb"]
    assert crm and all(c.status == 200 for c in crm)
    assert fzr.items() == {("i-1", "上海示例科技有限公司"): "assigned"}


@pytest.mark.parametrize(
    "raw, expected",
    [
        ('["u1","0042"]', ["u1", "0042"]),
        ([{"id": "u1", "name": "李四", "avatar": ""}], ["u1"]),
        (["u1", 42], ["u1", "42"]),
        ("[]", []),
        ("", []),
        (None, []),
        ("null", []),
    ],
)
def test_owners_are_read_in_every_shape(raw, expected):
    assert owner_ids(raw) == expected


@pytest.mark.parametrize("raw", ["not json", '{"id": "u1"}', [{"name": "x"}], 5])
def test_unreadable_owners_are_an_error_not_an_empty_list(raw):
    with pytest.raises(ValueError):
        owner_ids(raw)


def test_long_windows_are_split_into_slices_the_api_accepts():
    day = 86_400_000
    slices = windows(0, 300 * day)

    assert slices[0][0] == 0 and slices[-1][1] == 300 * day
    assert all(end - start <= SPAN_MS for start, end in slices)
    assert all(a[1] == b[0] for a, b in zip(slices, slices[1:]))


def test_since_far_back_lists_in_slices_and_clamps_to_a_year(make_sandbox, make_fzr):
    old = approved("i-old", "上海示例科技有限公司", created="-200d", finished="-199d")
    sandbox = make_sandbox(scenario(old))
    fzr = make_fzr(sandbox)

    run = fzr("sync", "--since", "400d")

    assert run.code == 0, run.stderr
    assert fzr.items() == {("i-old", "上海示例科技有限公司"): "assigned"}
    bodies = [c.request for c in sandbox.calls if c.api == "instances.list"]
    assert all(b["endTime"] - b["startTime"] <= 120 * 86_400_000 for b in bodies)
    assert len(bodies) >= 6  # two listings, each over at least three slices


def test_store_migrates_a_new_file_to_the_latest_schema(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    version = store.db.execute("PRAGMA user_version").fetchone()[0]
    store.close()

    assert version == len(MIGRATIONS)


def test_store_refuses_a_file_from_a_newer_fzr(tmp_path):
    path = tmp_path / "s.sqlite3"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()

    with pytest.raises(FzrError, match="written by a newer fzr"):
        Store(path)


def test_plain_sync_and_sync_with_options_behave_alike(make_sandbox, make_fzr):
    results = []
    for args in (["sync"], ["-q", "sync"]):
        sandbox = make_sandbox(scenario(approved("i-1", "上海示例科技有限公司")))
        fzr = make_fzr(sandbox)
        run = fzr(*args)
        results.append((run.code, fzr.items(), run.stdout.split(";")[0]))
    assert results[0] == results[1]
