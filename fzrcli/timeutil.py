"""Times across two APIs: DingTalk filters in ms, v1.0 strings in UTC minutes, CRM in s.

Everything is stored in UTC; people see ``FZR_TIMEZONE`` with the zone named. The host's
own time zone never matters.
"""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

DAY_MS = 86_400_000


def now_ms() -> int:
    return int(time.time() * 1000)


def utc_iso(ms: int | None = None) -> str:
    moment = datetime.fromtimestamp(
        (now_ms() if ms is None else ms) / 1000, timezone.utc
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_to_ms(text: str) -> int:
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def parse_dingtalk_time(text: object) -> int | None:
    """A v1.0 time (``2024-06-03T01:15Z``, UTC, minutes; seconds accepted) as ms."""
    if not isinstance(text, str) or not text.strip():
        return None
    for pattern in ("%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            moment = datetime.strptime(text.strip(), pattern)
        except ValueError:
            continue
        return int(moment.replace(tzinfo=timezone.utc).timestamp() * 1000)
    return None


def local_text(ms: int | None, zone: ZoneInfo) -> str:
    """A time as people read it: ``2026-12-04 09:15 (Asia/Shanghai)``."""
    if ms is None:
        return "-"
    moment = datetime.fromtimestamp(ms / 1000, zone)
    return f"{moment:%Y-%m-%d %H:%M} ({zone.key})"


def start_of_day_ms(day: date, zone: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)


def today(zone: ZoneInfo) -> date:
    return datetime.now(zone).date()


RELATIVE = re.compile(r"^(\d{1,6})\s*([mhd])$")
EARLIEST, LATEST = date(2000, 1, 1), date(2100, 1, 1)


def parse_since(text: str, zone: ZoneInfo) -> int:
    """``today``, ``yesterday``, ``2d``/``6h``/``30m`` ago, or ``YYYY-MM-DD``, as ms."""
    value = text.strip().lower()
    if value in ("today", "yesterday"):
        offset = 0 if value == "today" else 1
        return start_of_day_ms(today(zone) - timedelta(days=offset), zone)
    match = RELATIVE.match(value)
    if match:
        unit = {"m": 60_000, "h": 3_600_000, "d": DAY_MS}[match[2]]
        since = now_ms() - int(match[1]) * unit
        if since < start_of_day_ms(EARLIEST, zone):
            raise ValueError(f"{text!r} reaches back before {EARLIEST.year}")
        return since
    since = start_of_day_ms(parse_day(value), zone)
    if since > now_ms():
        raise ValueError(f"{text!r} is in the future")
    return since


def parse_day(text: str) -> date:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date; use today, yesterday, 2d, 6h or YYYY-MM-DD"
        ) from None
    if not EARLIEST <= day < LATEST:
        raise ValueError(f"{text!r} is outside {EARLIEST.year}–{LATEST.year - 1}")
    return day


def resolve_day(text: str, zone: ZoneInfo) -> date:
    value = text.strip().lower()
    if value == "today":
        return today(zone)
    if value == "yesterday":
        return today(zone) - timedelta(days=1)
    return parse_day(value)
