"""Circuit breakers per peer: a peer that keeps failing is skipped until a probe finds it back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(slots=True)
class _Breaker:
    failures: int = 0
    opened_at: float | None = None
    cooldown: float = 0.0
    probing: bool = False


class Breakers:
    """After `threshold` failures in a row a peer's breaker opens: queries to it are answered
    `unreachable` at once, costing no signature, socket or wait. After `cooldown` seconds one
    query (or a health check) may probe it; success closes the breaker, failure reopens it
    with the cooldown doubled, up to `max_cooldown`. Time is passed in."""

    def __init__(
        self, *, threshold: int = 3, cooldown: float = 5.0, max_cooldown: float = 60.0
    ) -> None:
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self._peers: dict[str, _Breaker] = {}

    def state(self, peer: str, now: float) -> BreakerState:
        b = self._peers.get(peer)
        if b is None or b.opened_at is None:
            return "closed"
        return "half_open" if now - b.opened_at >= b.cooldown else "open"

    def allow(self, peer: str, now: float) -> bool:
        """Whether to send to `peer` now; in half-open state only one probe at a time."""
        b = self._peers.get(peer)
        if b is None or b.opened_at is None:
            return True
        if now - b.opened_at < b.cooldown or b.probing:
            return False
        b.probing = True
        return True

    def success(self, peer: str) -> None:
        self._peers.pop(peer, None)

    def failure(self, peer: str, now: float) -> None:
        b = self._peers.setdefault(peer, _Breaker())
        b.failures += 1
        if b.opened_at is not None:
            # A failed probe: wait longer before the next.
            b.cooldown = min(self.max_cooldown, max(b.cooldown, self.base_cooldown) * 2)
            b.opened_at, b.probing = now, False
        elif b.failures >= self.threshold:
            b.opened_at, b.cooldown = now, self.base_cooldown

    def snapshot(self, now: float) -> dict[str, BreakerState]:
        return {peer: self.state(peer, now) for peer in self._peers}
