"""The one error policy of fzr.

Every failure a service can produce is sorted into exactly one class, and each class is
handled in exactly one place:

- ``RETRY``: throttling, 5xx, dropped connections, timeouts. Retried inside the pass
  with bounded exponential backoff and jitter; when the budget is spent the step is left
  pending for the next pass (CRM items) or the pass stops (DingTalk listing).
- ``TOKEN``: the DingTalk access token was refused. Renewed once and the call retried
  once; a second refusal aborts the pass.
- ``FATAL``: something only the admin can fix (credentials, a missing app permission, an
  IP whitelist, the monthly quota, an IP ban). The pass stops at once with a message
  that names what to fix; state is left as it was.
- ``PERMANENT``: the service refused this one thing (record gone, unknown user). The
  item or request gets the service's own message as its outcome; the pass goes on.

``README.md`` carries the same catalogue for operators.
"""

from __future__ import annotations

from enum import Enum


class Failure(str, Enum):
    RETRY = "retry"
    TOKEN = "token"
    FATAL = "fatal"
    PERMANENT = "permanent"


class FzrError(Exception):
    """An error with a message for the operator; the CLI prints it, no traceback."""

    exit_code = 1


class ConfigError(FzrError):
    """Settings are missing or malformed; nothing was contacted."""

    exit_code = 2

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "configuration problems:\n" + "\n".join(f"  - {p}" for p in problems)
        )


class UsageError(FzrError):
    """A command-line value that cannot be used."""

    exit_code = 2


class BusyError(FzrError):
    """Another pass holds the lock."""

    exit_code = 3


class ServiceError(FzrError):
    """A failed call to DingTalk, the CRM or the robot, already classified."""

    def __init__(
        self,
        service: str,
        api: str,
        kind: Failure,
        message: str,
        *,
        code: str = "",
        status: int | None = None,
        request_id: str = "",
        retry_after: float | None = None,
    ):
        self.service = service
        self.api = api
        self.kind = kind
        self.code = code
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        self.detail = message
        super().__init__(self._describe())

    def _describe(self) -> str:
        code = f" [{self.code}]" if self.code else ""
        http = f" (HTTP {self.status})" if self.status else ""
        rid = f" request id {self.request_id}" if self.request_id else ""
        return f"{self.service} {self.api}{code}{http}: {self.detail}{rid}"


class PassAborted(FzrError):
    """The pass stopped early; what was committed stays, the rest waits."""

    def __init__(self, message: str, cause: ServiceError | None = None, report=None):
        self.cause = cause
        self.report = report  # what the pass did before it stopped
        super().__init__(message)


class WritesHalted(FzrError):
    """CRM writes are halted after owners vanished; a human must look first."""
