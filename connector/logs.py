"""Structured logging (JSON, or console lines on a terminal); repeated events under a budget."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

import orjson
import structlog

Format = Literal["auto", "json", "console"]

log = structlog.get_logger(__name__)


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
        logger_factory=_One(structlog.PrintLogger(stream)),
        cache_logger_on_first_use=False,
    )


@dataclass(frozen=True, slots=True)
class _One:
    """A logger factory that hands out one PrintLogger: a PrintLogger holds only its stream,
    and every event (a log call binds its logger anew) would otherwise build another."""

    logger: structlog.PrintLogger

    def __call__(self, *args: Any) -> structlog.PrintLogger:
        return self.logger


TOP_KEYS = 5
"""How many of the keys with the most suppressed lines a summary names."""


@dataclass(slots=True)
class _Budget:
    window_start: float
    logged: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)


class RateLimitedLog:
    """One event that anyone who reaches a listener can cause, so could repeat until the disk
    is full. Each key (a remote address) gets `per_key` lines per `window_s`, and all keys
    together `total`; what is beyond is counted, by code, and summarised in one line
    (`<event>_suppressed`) when its window ends: one per key over its own budget, and one
    (key `*`, with the keys that sent most) for what the shared budget held back.

    Windows end on the next event, on `tick()`, or, while an event loop runs, on a timer the
    first suppressed line sets: a summary never waits for the attack to start again."""

    def __init__(
        self,
        event: str,
        *,
        clock: Callable[[], float],
        per_key: int = 30,
        total: int = 300,
        window_s: float = 60.0,
        max_keys: int = 10_000,
        key_field: str = "remote",
        count_field: str = "suppressed",
        level: str = "warning",
    ) -> None:
        self.event = event
        self.clock = clock
        self.per_key = per_key
        self.total = total
        self.window_s = window_s
        self.max_keys = max_keys
        self.key_field = key_field
        self.count_field = count_field
        self._emit: Callable[..., Any] = getattr(log, level)
        self._budgets: OrderedDict[str, _Budget] = OrderedDict()
        self._shared = _Budget(window_start=float("-inf"))
        self._shared_keys: Counter[str] = Counter()
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, key: str | None, code: str, **fields: Any) -> bool:
        """Log the event (True), or count it for a later summary (False)."""
        now, key = self.clock(), key or "-"
        if now - self._shared.window_start >= self.window_s:
            self._summarise_shared()
            self._shared = _Budget(window_start=now)
        budget = self._budgets.get(key)
        if budget is None or now - budget.window_start >= self.window_s:
            if budget is not None:
                self._summarise(key, budget)
            budget = _Budget(window_start=now)
            self._budgets[key] = budget
            self._budgets.move_to_end(key)
            while len(self._budgets) > self.max_keys:
                old_key, old = self._budgets.popitem(last=False)
                self._summarise(old_key, old)
        if budget.logged >= self.per_key:
            budget.suppressed[code] += 1
            self._wake_at(budget.window_start + self.window_s)
            return False
        if self._shared.logged >= self.total:
            self._shared.suppressed[code] += 1
            if key in self._shared_keys or len(self._shared_keys) < self.max_keys:
                self._shared_keys[key] += 1
            self._wake_at(self._shared.window_start + self.window_s)
            return False
        budget.logged += 1
        self._shared.logged += 1
        self._emit(self.event, **{self.key_field: key}, code=code, **fields)
        return True

    def tick(self) -> None:
        """Summarise every window that has ended."""
        now = self.clock()
        while self._budgets:
            key, budget = next(iter(self._budgets.items()))
            if now - budget.window_start < self.window_s:
                break
            del self._budgets[key]
            self._summarise(key, budget)
        if now - self._shared.window_start >= self.window_s:
            self._summarise_shared()

    def flush(self) -> None:
        """Summaries of every window still open (at shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for key, budget in self._budgets.items():
            self._summarise(key, budget)
        self._budgets.clear()
        self._summarise_shared()

    def _wake_at(self, when: float) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a script, a test): the next event or flush() tells
            return
        self._timer = loop.call_later(max(0.0, when - self.clock()) + 0.01, self._woken)

    def _woken(self) -> None:
        self._timer = None
        self.tick()
        pending = [b.window_start for b in self._budgets.values() if b.suppressed]
        if self._shared.suppressed:
            pending.append(self._shared.window_start)
        if pending:
            self._wake_at(min(pending) + self.window_s)

    def _summarise(self, key: str, budget: _Budget) -> None:
        if budget.suppressed:
            self._emit(
                f"{self.event}_suppressed",
                **{self.key_field: key, self.count_field: sum(budget.suppressed.values())},
                codes=dict(budget.suppressed),
                window_s=self.window_s,
            )
            budget.suppressed.clear()

    def _summarise_shared(self) -> None:
        if self._shared.suppressed:
            self._emit(
                f"{self.event}_suppressed",
                **{self.key_field: "*", self.count_field: sum(self._shared.suppressed.values())},
                codes=dict(self._shared.suppressed),
                keys=len(self._shared_keys),
                top=dict(self._shared_keys.most_common(TOP_KEYS)),
                window_s=self.window_s,
            )
            self._shared.suppressed.clear()
        self._shared_keys.clear()
