"""What asyncio and aiohttp report by themselves, as rate-limited events of our log.

The event loop's exception handler ("socket.accept() out of system resource", "Fatal error
on transport", "Task exception was never retrieved") and the `asyncio` and `aiohttp`
loggers print plain text with a traceback each time, once per connection when a listener
is attacked. Here each becomes one JSON line per kind (its message template) under a
budget, and the rest a count in `<event>_suppressed` (rejectlog.RateLimitedLog). A
traceback is kept for what is not an OSError: that one is a bug worth reading."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from connector.server.rejectlog import RateLimitedLog

LOGGERS = ("asyncio", "aiohttp")


class _Bridge(logging.Handler):
    def __init__(self, events: RateLimitedLog) -> None:
        super().__init__(level=logging.WARNING)
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        try:
            exc = record.exc_info[1] if record.exc_info else None
            fields: dict[str, Any] = {
                "logger": record.name,
                "library_level": record.levelname.lower(),
                "message": record.getMessage(),
            }
            if exc is not None:
                fields["error"] = f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, OSError):
                    fields["exc_info"] = exc
            self.events(str(record.msg), record.levelname.lower(), **fields)
        except Exception:  # a handler must never raise into the code that logs
            self.handleError(record)


def route_library_errors(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Send the loop's and the libraries' errors through budgets; returns the undo."""
    errors = RateLimitedLog(
        "loop_error",
        clock=time.monotonic,
        per_key=5,
        total=50,
        key_field="kind",
        count_field="errors",
        level="error",
    )
    library = RateLimitedLog(
        "library_log",
        clock=time.monotonic,
        per_key=5,
        total=50,
        key_field="kind",
        count_field="lines",
    )

    def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        message = str(context.get("message") or "unhandled exception in event loop")
        fields: dict[str, Any] = {"message": message}
        if isinstance(exc, BaseException):
            fields["error"] = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, OSError):
                fields["exc_info"] = exc
        code = type(exc).__name__ if isinstance(exc, BaseException) else "error"
        errors(message, code, **fields)

    previous = loop.get_exception_handler()
    loop.set_exception_handler(handler)
    bridge = _Bridge(library)
    saved: list[tuple[logging.Logger, bool]] = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate))
        logger.addHandler(bridge)
        logger.propagate = False

    def undo() -> None:
        loop.set_exception_handler(previous)
        for logger, propagate in saved:
            logger.removeHandler(bridge)
            logger.propagate = propagate
        errors.flush()
        library.flush()

    return undo
