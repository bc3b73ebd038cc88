"""Structured logging: JSON lines when not on a terminal, readable console lines on one."""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import orjson
import structlog

Format = Literal["auto", "json", "console"]


def configure_logging(
    *, fmt: Format = "auto", level: str = "info", stream: TextIO | None = None
) -> None:
    stream = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if use_json:
        renderer = structlog.processors.JSONRenderer(
            serializer=lambda obj, **_: orjson.dumps(obj, default=str).decode()
        )
        shared.append(structlog.processors.format_exc_info)
    else:
        # No local variables in tracebacks: they would print tokens, records and passwords.
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(),
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False),
        )
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
