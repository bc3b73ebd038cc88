"""Rejections, disconnections and failed requests, each logged under a RateLimitedLog budget."""

from __future__ import annotations

import sys
from collections.abc import Callable

from connector.logs import RateLimitedLog

__all__ = ["RateLimitedLog", "RejectionLog"]


class RejectionLog:
    """Rejections are logged before anything is authenticated, so anyone who can reach the
    listener could fill the disk with them: `per_window` lines per remote address per
    `window_s`, `total` for all addresses together, and the rest counted by code in
    `request_rejected_suppressed`. A client that goes away while its request is read or
    answered is `client_disconnected`, and an error of ours while handling a request
    `request_failed` (with its traceback), each under the same kind of budget. `counted`,
    when given, is told the problem code of every refusal and failure, logged or not."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        per_window: int = 30,
        window_s: float = 60.0,
        total: int = 300,
        max_remotes: int = 10_000,
        counted: Callable[[str], None] | None = None,
    ) -> None:
        self.counted = counted
        self._rejected = RateLimitedLog(
            "request_rejected",
            clock=clock,
            per_key=per_window,
            total=total,
            window_s=window_s,
            max_keys=max_remotes,
            count_field="rejected",
        )
        self._disconnected = RateLimitedLog(
            "client_disconnected",
            clock=clock,
            per_key=5,
            total=50,
            window_s=window_s,
            max_keys=max_remotes,
            count_field="disconnected",
            level="info",
        )

        self._failed = RateLimitedLog(
            "request_failed",
            clock=clock,
            per_key=5,
            total=50,
            window_s=window_s,
            max_keys=max_remotes,
            count_field="failed",
            level="error",
        )

    def rejected(
        self, *, remote: str | None, path: str, status: int, code: str, detail: str
    ) -> None:
        if self.counted is not None:
            self.counted(code)
        self._rejected(remote, code, path=path, status=status, detail=detail)

    def disconnected(self, *, remote: str | None, path: str, error: BaseException) -> None:
        self._disconnected(remote, "client_disconnected", path=path, error=str(error) or None)

    def failed(self, *, remote: str | None, path: str) -> None:
        """Inside an `except` block: the exception being handled is the one logged."""
        exc = sys.exc_info()[1]
        if self.counted is not None:
            self.counted("internal")  # what the client was told: 500 `internal`
        code = type(exc).__name__ if exc is not None else "error"
        self._failed(remote, code, path=path, exc_info=True)

    def flush(self) -> None:
        """Summaries of every window still open (at shutdown)."""
        self._rejected.flush()
        self._disconnected.flush()
        self._failed.flush()
