"""Active hours: when `fzr sync` may spend metered DingTalk calls.

A schedule is one or more ``DAYS HH:MM-HH:MM`` entries separated by ``;``, read in
``FZR_TIMEZONE``: ``Mon-Fri 08:00-20:00; Sat 09:00-12:00``. Outside it a pass does
nothing; the scan cursor stays put, so the first pass after the schedule opens catches
up on everything created meanwhile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ENTRY = re.compile(
    r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?(?:,[a-z]{3}(?:-[a-z]{3})?)*)\s+"
    r"(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})$"
)


@dataclass(frozen=True)
class Window:
    days: frozenset[int]
    start: time
    end: time

    def contains(self, moment: datetime) -> bool:
        clock = moment.time()
        return moment.weekday() in self.days and self.start <= clock < self.end


@dataclass(frozen=True)
class Schedule:
    windows: tuple[Window, ...]

    def is_open(self, moment: datetime) -> bool:
        return any(window.contains(moment) for window in self.windows)


def parse_schedule(text: str) -> Schedule:
    entries = [part.strip().lower() for part in text.split(";") if part.strip()]
    if not entries:
        raise ValueError("has no entries; expected e.g. 'Mon-Fri 08:00-20:00'")
    return Schedule(tuple(_parse_entry(entry) for entry in entries))


def _parse_entry(entry: str) -> Window:
    match = ENTRY.match(re.sub(r"\s+", " ", entry))
    if not match:
        raise ValueError(f"entry {entry!r} is not like 'Mon-Fri 08:00-20:00'")
    start, end = _clock(match["start"]), _clock(match["end"])
    if end <= start:
        raise ValueError(f"entry {entry!r} ends before it starts")
    return Window(_days(match["days"]), start, end)


def _days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for span in text.split(","):
        first, _, last = span.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"unknown day in {span!r}; use Mon … Sun")
        lo, hi = DAYS.index(first), DAYS.index(last or first)
        days.update(
            range(lo, hi + 1) if lo <= hi else [*range(lo, 7), *range(0, hi + 1)]
        )
    return frozenset(days)


def _clock(text: str) -> time:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours == 24 and minutes == 0:
        return time.max
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ValueError(f"{text!r} is not a time of day")
    return time(hours, minutes)
