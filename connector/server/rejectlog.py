"""How often a rejected request is logged: every one, up to a budget per remote address."""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _Budget:
    window_start: float
    logged: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)


class RejectionLog:
    """Rejections are logged before anything is authenticated, so anyone who can reach the
    listener could fill the disk with them. Each remote address gets `per_window` log lines
    per `window_s`; what is beyond is counted and summarised in one line
    (`request_rejected_suppressed`, with counts by code) when its window ends."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        per_window: int = 30,
        window_s: float = 60.0,
        max_remotes: int = 10_000,
    ) -> None:
        self.clock = clock
        self.per_window = per_window
        self.window_s = window_s
        self.max_remotes = max_remotes
        self._budgets: OrderedDict[str, _Budget] = OrderedDict()

    def rejected(
        self, *, remote: str | None, path: str, status: int, code: str, detail: str
    ) -> None:
        now, key = self.clock(), remote or "-"
        budget = self._budgets.get(key)
        if budget is None or now - budget.window_start >= self.window_s:
            if budget is not None:
                self._summarise(key, budget)
            budget = _Budget(window_start=now)
            self._budgets[key] = budget
            self._budgets.move_to_end(key)
            while len(self._budgets) > self.max_remotes:
                old_key, old = self._budgets.popitem(last=False)
                self._summarise(old_key, old)
        if budget.logged < self.per_window:
            budget.logged += 1
            log.warning(
                "request_rejected",
                path=path,
                status=status,
                code=code,
                detail=detail,
                remote=remote,
            )
        else:
            budget.suppressed[code] += 1

    def flush(self) -> None:
        """Summaries of every window still open (at shutdown)."""
        for key, budget in self._budgets.items():
            self._summarise(key, budget)
        self._budgets.clear()

    def _summarise(self, remote: str, budget: _Budget) -> None:
        if budget.suppressed:
            log.warning(
                "request_rejected_suppressed",
                remote=remote,
                rejected=sum(budget.suppressed.values()),
                codes=dict(budget.suppressed),
                window_s=self.window_s,
            )
            budget.suppressed.clear()
