"""Per-key rate limits (per peer, per policy rule) over a sliding window, in memory."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from connector.policy.model import Rate

__all__ = ["Limiter", "RateLimiter", "Window"]

# Each window is kept as this many buckets, so a key costs the same memory whether its
# rate is 5/second or 100000/day.
BUCKETS_PER_WINDOW = 64


@dataclass(slots=True, kw_only=True)
class Window:
    """The recent admissions of one key: (bucket index, count), oldest first."""

    count: int
    per_seconds: int
    width: float
    buckets: deque[list[int]] = field(default_factory=deque)
    total: int = 0

    @classmethod
    def of(cls, rate: Rate) -> Window:
        """An empty window for `rate`."""
        return cls(
            count=rate.count,
            per_seconds=rate.per_seconds,
            width=rate.per_seconds / BUCKETS_PER_WINDOW,
        )

    def fits(self, rate: Rate) -> bool:
        """Whether this window counts for `rate` (a policy reload may change it)."""
        return self.count == rate.count and self.per_seconds == rate.per_seconds

    def expire(self, now: float) -> None:
        # A bucket is dropped only once all of it has left the window, so admissions are
        # counted for slightly longer than `per_seconds`, never shorter.
        while self.buckets and self.leaves(self.buckets[0][0]) <= now:
            self.total -= self.buckets.popleft()[1]

    def leaves(self, index: int) -> float:
        """When bucket `index` has wholly left the window (one expression, so that waiting
        exactly `retry_after` always suffices)."""
        return (index + 1) * self.width + self.per_seconds

    def retry_after(self, now: float) -> float:
        """Seconds until enough of the window has expired to admit one more."""
        excess = self.total - self.count + 1
        for index, n in self.buckets:
            excess -= n
            if excess <= 0:
                leaves = self.leaves(index)
                wait = max(0.0, leaves - now)
                while now + wait < leaves:  # float rounding must not make the wait too short
                    wait = math.nextafter(wait, math.inf)
                return wait
        return 0.0  # pragma: no cover - only reached when total < count, i.e. not limited

    def admit(self, now: float) -> tuple[bool, float]:
        """One more admission if the budget allows: (allowed, retry_after seconds)."""
        self.expire(now)
        if self.total >= self.count:
            return False, self.retry_after(now)
        index = math.floor(now / self.width)
        if self.buckets and self.buckets[-1][0] >= index:
            # Same bucket, or a clock that stepped back: count it in the newest bucket,
            # which keeps it in the window at least as long.
            self.buckets[-1][1] += 1
        else:
            self.buckets.append([index, 1])
        self.total += 1
        return True, 0.0

    def idle(self, now: float) -> bool:
        self.expire(now)
        return not self.buckets


class Limiter(Protocol):
    """What the answerer asks of a rate limiter: in one process's memory (RateLimiter), or
    shared by all the processes serving the peer API (inbound/sharedlimits)."""

    def try_acquire(self, key: tuple[str, str], rate: Rate) -> tuple[bool, float]: ...

    def retry_after(self, key: tuple[str, str], rate: Rate) -> float: ...


class RateLimiter:
    """Sliding-window limiter: never more than `rate.count` admissions per key in any
    `rate.per_seconds` window.

    Admissions are counted in buckets of 1/64 of the window; a bucket counts until its
    end has left the window, which errs towards refusing, never towards exceeding the
    budget. Keys whose windows are empty are evicted, so memory follows the number of keys
    active in the last window. Meant for one event loop: no locking.
    """

    def __init__(self, clock: Callable[[], float], *, sweep_every: float = 60.0) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, str], Window] = {}
        self._sweep_every = sweep_every
        self._last_sweep = clock()

    def __len__(self) -> int:
        """How many keys are tracked right now."""
        return len(self._windows)

    def try_acquire(self, key: tuple[str, str], rate: Rate) -> tuple[bool, float]:
        """Admit one more for `key` if the budget allows: (allowed, retry_after seconds).

        A refusal consumes nothing. A key whose rate changed (a policy reload) starts a
        fresh window.
        """
        now = self._clock()
        self._maybe_sweep(now)
        window = self._windows.get(key)
        if window is None or not window.fits(rate):
            window = self._windows[key] = Window.of(rate)
        return window.admit(now)

    def retry_after(self, key: tuple[str, str], rate: Rate) -> float:
        """Seconds until `key` may be admitted again (0.0: now), admitting nothing."""
        window = self._windows.get(key)
        if window is None or not window.fits(rate):
            return 0.0
        now = self._clock()
        window.expire(now)
        return window.retry_after(now) if window.total >= window.count else 0.0

    def _maybe_sweep(self, now: float) -> None:
        if now - self._last_sweep < self._sweep_every:
            return
        self._last_sweep = now
        for key in [k for k, w in self._windows.items() if w.idle(now)]:
            del self._windows[key]
