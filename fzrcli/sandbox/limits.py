"""Sliding-window rate limits, as the emulated platforms enforce them."""

from __future__ import annotations

from collections import deque


class Window:
    """At most `limit` events in any `seconds`-long span."""

    def __init__(self, limit: int, seconds: float):
        self.limit = limit
        self.seconds = seconds
        self.events: deque[float] = deque()

    def allow(self, now: float) -> bool:
        """Record the event only if it fits (platforms that do not count refusals)."""
        self._forget(now)
        if len(self.events) >= self.limit:
            return False
        self.events.append(now)
        return True

    def hit(self, now: float) -> bool:
        """Record the event either way (platforms where refused calls still count)."""
        self._forget(now)
        self.events.append(now)
        return len(self.events) <= self.limit

    def _forget(self, now: float) -> None:
        while self.events and self.events[0] <= now - self.seconds:
            self.events.popleft()
