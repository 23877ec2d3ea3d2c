"""Finding the work with as few metered DingTalk calls as possible.

The listing API filters on *creation* time, and a request may be approved days after it
was submitted. Two kinds of listing, alternated one per pass, cover everything:

- the **inventory** lists ``RUNNING`` instances from the oldest open one to now. Ids new
  to it are remembered as open without fetching them; open ids it no longer returns have
  finished, so only those are fetched. That is how fzr learns that an instance finished
  without re-fetching every open instance on every pass.
- the **sweep** lists ``COMPLETED``/``TERMINATED`` instances created since the inventory
  *before* the latest one (minus an overlap). It catches requests that were submitted
  and decided between two inventories, so they never showed up as running.

An idle pass therefore costs one listing call. An instance is fetched when it is first
found finished and never again. A first run, ``--since``, and the first pass after the
active-hours schedule reopens do both listings at once (a full scan).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fzrcli.dingtalk import DingTalk
from fzrcli.store import FETCHED, OPEN, SEEN, Store
from fzrcli.timeutil import DAY_MS, now_ms

log = logging.getLogger(__name__)

OVERLAP_MS = 10 * 60_000  # listing visibility lag and clock skew, absorbed by ids
SPAN_MS = 119 * DAY_MS  # the API allows 120 days per window
LOOKBACK_MS = 364 * DAY_MS  # and a start no older than 365 days
RUNNING = ["RUNNING"]
DECIDED = ["COMPLETED", "TERMINATED"]
STATE_KEY = "scan"


@dataclass
class ScanResult:
    kind: str
    new_ids: int = 0
    to_fetch: int = 0


def scan(
    store: Store, dingtalk: DingTalk, since_ms: int | None, catch_up: bool = False
) -> ScanResult:
    """List what changed and mark every instance that must be fetched as ``seen``."""
    cursor = store.get_state(STATE_KEY)
    now = now_ms()
    if cursor is None or since_ms is not None or catch_up:
        start = since_ms if since_ms is not None else _fallback_start(cursor, now)
        result = _full_scan(store, dingtalk, start, now)
        cursor = {"last_inventory": now, "prev_inventory": now, "next": "sweep"}
    elif cursor["next"] == "inventory":
        result = _inventory(store, dingtalk, cursor["last_inventory"] - OVERLAP_MS, now)
        cursor = {
            "last_inventory": now,
            "prev_inventory": cursor["last_inventory"],
            "next": "sweep",
        }
    else:
        result = _sweep(store, dingtalk, cursor["prev_inventory"] - OVERLAP_MS, now)
        cursor = {**cursor, "next": "inventory"}
    # Only a listing that completed moves the cursor; ids noted so far are kept anyway.
    store.set_state(STATE_KEY, cursor)
    result.to_fetch = len(store.ids_in_state(SEEN))
    return result


def _fallback_start(cursor: dict | None, now: int) -> int:
    """Where a catch-up scan starts: the earliest point the alternation still owes."""
    if cursor:
        return cursor["prev_inventory"] - OVERLAP_MS
    return now - DAY_MS


def _full_scan(store: Store, dingtalk: DingTalk, start: int, now: int) -> ScanResult:
    inventory = _inventory(store, dingtalk, start, now)
    sweep = _sweep(store, dingtalk, start, now)
    return ScanResult("full scan", inventory.new_ids + sweep.new_ids)


def _inventory(store: Store, dingtalk: DingTalk, recent_start: int, now: int):
    open_rows = store.open_requests()
    oldest = min([recent_start] + [_created(row) for row in open_rows])
    start = _clamp(oldest, now, store, open_rows)
    running: set[str] = set()
    for window in windows(start, now):
        running.update(dingtalk.list_ids(*window, statuses=RUNNING))

    new_ids = 0
    with store.transaction():
        for instance_id in running:
            new_ids += store.note_seen(instance_id, recent_start, state=OPEN)
        for row in open_rows:
            if row["instance_id"] not in running and _created(row) >= start:
                store.mark_to_fetch(row["instance_id"], "no longer listed as running")
    return ScanResult("inventory", new_ids)


def _sweep(store: Store, dingtalk: DingTalk, start: int, now: int) -> ScanResult:
    start = max(start, now - LOOKBACK_MS)
    decided: list[str] = []
    for window in windows(start, now):
        decided.extend(dingtalk.list_ids(*window, statuses=DECIDED))

    states = store.request_states(decided)
    new_ids = 0
    with store.transaction():
        for instance_id in decided:
            state = states.get(instance_id)
            if state is None:
                new_ids += store.note_seen(instance_id, start, state=SEEN)
            elif state == OPEN:
                store.mark_to_fetch(instance_id, "listed as finished")
            elif state not in FETCHED and state != SEEN:
                log.warning("instance %s in unexpected state %s", instance_id, state)
    return ScanResult("sweep", new_ids)


def _created(row) -> int:
    return row["created_ms"] if row["created_ms"] is not None else row["created_lb_ms"]


def _clamp(start: int, now: int, store: Store, open_rows: list) -> int:
    """Open instances older than the API's look-back cannot be listed any more; they
    are fetched directly instead."""
    floor = now - LOOKBACK_MS
    if start >= floor:
        return start
    with store.transaction():
        for row in open_rows:
            if _created(row) < floor:
                store.mark_to_fetch(row["instance_id"], "too old to list")
    return floor


def windows(start: int, end: int) -> list[tuple[int, int]]:
    """Split [start, end] into slices the API accepts, oldest first."""
    slices = []
    while start < end:
        slices.append((start, min(end, start + SPAN_MS)))
        start += SPAN_MS
    return slices or [(end, end)]
