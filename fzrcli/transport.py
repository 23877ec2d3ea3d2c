"""The HTTP layer both clients share: pacing, bounded retries, call counting, redaction.

No URL, header or body ever reaches a log line or an exception text from here: request
failures are described by service, API name and error class only, because URLs can
carry tokens (the robot webhook) and bodies carry signed data.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, TypeVar

import requests

from fzrcli.errors import Failure, ServiceError

log = logging.getLogger(__name__)

T = TypeVar("T")


class Budget:
    """The time a pass may still spend; retries and pacing never sleep past it."""

    def __init__(self, seconds: float | None):
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float:
        if self.deadline is None:
            return float("inf")
        return max(0.0, self.deadline - time.monotonic())

    def spent(self) -> bool:
        return self.remaining() <= 0


class RateLimiter:
    """At most ``rate`` calls a second across threads, spaced evenly (no bursts)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate
        self.next_slot = 0.0
        self.lock = threading.Lock()

    def acquire(self, budget: Budget) -> None:
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next_slot)
            self.next_slot = slot + self.interval
        wait = slot - now
        if wait > budget.remaining():
            raise ServiceError("fzr", "pacing", Failure.RETRY, "pass time budget spent")
        if wait > 0:
            time.sleep(wait)

    def penalise(self, seconds: float) -> None:
        """After a throttle answer, hold every caller back, not just the one."""
        with self.lock:
            self.next_slot = max(self.next_slot, time.monotonic() + seconds)


@dataclass
class CallLog:
    """Calls made in this process, per service and API; what the runs table records."""

    counts: Counter = field(default_factory=Counter)
    metered: int = 0
    throttled: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, service: str, api: str, metered: bool) -> None:
        with self.lock:
            self.counts[(service, api)] += 1
            self.metered += int(metered)

    def record_throttle(self) -> None:
        with self.lock:
            self.throttled += 1

    def total(self, service: str) -> int:
        return sum(n for (svc, _), n in self.counts.items() if svc == service)

    def by_api(self) -> dict[str, int]:
        return {f"{svc}.{api}": n for (svc, api), n in sorted(self.counts.items())}


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes


class Transport:
    """One service's HTTP session; thread-safe, one requests.Session per thread."""

    def __init__(
        self,
        service: str,
        base_url: str,
        calls: CallLog,
        budget: Budget,
        timeout: tuple[float, float] = (5.0, 20.0),
    ):
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.calls = calls
        self.budget = budget
        self.timeout = timeout
        self.local = threading.local()

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def send(
        self,
        method: str,
        path: str,
        *,
        api: str,
        params: dict | None = None,
        body: bytes | None = None,
        headers: dict | None = None,
    ) -> Reply:
        url = path if path.startswith("http") else self.base_url + path
        if self.budget.spent():
            raise ServiceError(
                self.service, api, Failure.RETRY, "pass time budget spent"
            )
        read_timeout = min(self.timeout[1], max(1.0, self.budget.remaining()))
        started = time.monotonic()
        try:
            response = self.session().request(
                method,
                url,
                params=params,
                data=body,
                headers=headers,
                timeout=(self.timeout[0], read_timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            # The exception text holds the full URL (with any token in it): drop it.
            raise ServiceError(
                self.service,
                api,
                Failure.RETRY,
                f"network error ({type(exc).__name__})",
            ) from None
        log.debug(
            "%s %s %s: HTTP %s in %.0f ms %s",
            self.service,
            method,
            api,
            response.status_code,
            (time.monotonic() - started) * 1000,
            response.headers.get("x-acs-request-id", ""),
        )
        return Reply(response.status_code, dict(response.headers), response.content)


def call_with_retries(
    fn: Callable[[], T],
    *,
    budget: Budget,
    attempts: int = 4,
    limiter: RateLimiter | None = None,
    calls: CallLog | None = None,
    idempotent: bool = True,
) -> T:
    """Run ``fn`` again on RETRY-class failures: exponential backoff with full jitter,
    at least the service's own ``retry_after``, never past the pass budget.

    A write without an idempotency key passes ``idempotent=False``: then only a
    throttle answer, which proves the call was refused, is retried. A lost or garbled
    answer may hide a write that happened, so the caller checks before writing again.
    """

    def retryable(error: BaseException) -> bool:
        if not idempotent and not getattr(error, "retry_after", None):
            return False
        return _retryable(error, budget, calls)

    try:
        return fn()
    except ServiceError as error:
        if attempts <= 1 or not retryable(error):
            raise
        time.sleep(_delay(error, 1, budget, limiter))
    # tenacity is loaded only once something failed: an idle pass never needs it.
    from tenacity import Retrying, retry_if_exception, stop_after_attempt

    retrying = Retrying(
        retry=retry_if_exception(retryable),
        stop=stop_after_attempt(attempts - 1),
        wait=lambda state: _delay(
            state.outcome.exception(), state.attempt_number + 1, budget, limiter
        ),
        reraise=True,
    )
    return retrying(fn)


def _retryable(error: BaseException, budget: Budget, calls: CallLog | None) -> bool:
    if not isinstance(error, ServiceError) or error.kind is not Failure.RETRY:
        return False
    log.debug("retrying after: %s", error)
    if calls and error.retry_after:
        calls.record_throttle()
    return not budget.spent()


def _delay(
    error: BaseException, attempt: int, budget: Budget, limiter: RateLimiter | None
) -> float:
    """How long to wait before attempt ``attempt + 1``; gives up (re-raising) when the
    wait would run past the pass budget."""
    floor = getattr(error, "retry_after", None) or 0.0
    delay = max(floor, random.uniform(0, min(8.0, 0.5 * 2 ** (attempt - 1))))
    if floor and limiter:
        limiter.penalise(floor)
    if delay >= budget.remaining():
        raise error
    return delay
