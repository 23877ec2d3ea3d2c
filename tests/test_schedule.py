"""Active-hours schedules (pure)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from fzrcli.schedule import parse_schedule

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def test_weekday_hours_open_and_close_at_the_edges():
    schedule = parse_schedule("Mon-Fri 08:00-20:00")

    assert schedule.is_open(at("2026-12-04T08:00"))  # a Friday
    assert schedule.is_open(at("2026-12-04T19:59"))
    assert not schedule.is_open(at("2026-12-04T20:00"))
    assert not schedule.is_open(at("2026-12-05T10:00"))  # Saturday


def test_several_entries_and_wrapping_day_ranges():
    schedule = parse_schedule("Sat 09:00-12:00; Fri-Mon 22:00-24:00")

    assert schedule.is_open(at("2026-12-05T09:30"))
    assert schedule.is_open(at("2026-12-06T23:00"))  # Sunday, inside Fri-Mon
    assert not schedule.is_open(at("2026-12-08T23:00"))  # Tuesday


@pytest.mark.parametrize(
    "text",
    ["", "weekdays", "Mon-Fri 20:00-08:00", "Mon-Fri 25:00-26:00", "Foo 08:00-09:00"],
)
def test_malformed_schedules_are_refused(text):
    with pytest.raises(ValueError):
        parse_schedule(text)
