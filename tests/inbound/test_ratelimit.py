"""The rate limiter, driven by a fake clock: budgets per window, per key, and bounded memory."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.inbound.ratelimit import BUCKETS_PER_WINDOW, RateLimiter
from connector.policy import Rate


@dataclass
class FakeClock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


PER_MINUTE_3 = Rate.parse("3/minute")
KEY = ("DE", "wanted persons for border checks")


def test_admits_the_budget_then_refuses() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    assert [limiter.try_acquire(KEY, PER_MINUTE_3)[0] for _ in range(3)] == [True] * 3
    allowed, retry_after = limiter.try_acquire(KEY, PER_MINUTE_3)
    assert not allowed
    # The first admission's bucket leaves the window a little after one minute.
    assert 60.0 <= retry_after <= 60.0 + 60.0 / BUCKETS_PER_WINDOW


def test_retry_after_follows_the_oldest_admission() -> None:
    clock = FakeClock(now=0.0)
    limiter = RateLimiter(clock)
    for _ in range(3):
        assert limiter.try_acquire(KEY, PER_MINUTE_3)[0]
        clock.advance(10.0)
    allowed, retry_after = limiter.try_acquire(KEY, PER_MINUTE_3)  # at t=30
    assert not allowed
    assert retry_after == pytest.approx(30.0 + 60.0 / BUCKETS_PER_WINDOW)
    clock.advance(retry_after)
    assert limiter.try_acquire(KEY, PER_MINUTE_3)[0]
    assert not limiter.try_acquire(KEY, PER_MINUTE_3)[0]


def test_waiting_retry_after_is_enough_and_refusals_consume_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    for _ in range(3):
        limiter.try_acquire(KEY, PER_MINUTE_3)
    _, retry_after = limiter.try_acquire(KEY, PER_MINUTE_3)
    for _ in range(10):  # refused attempts do not push the window further out
        assert limiter.try_acquire(KEY, PER_MINUTE_3)[0] is False
    clock.advance(retry_after)
    # all three were admitted at once, so all three leave the window together
    assert [limiter.try_acquire(KEY, PER_MINUTE_3) for _ in range(3)] == [(True, 0.0)] * 3
    assert limiter.try_acquire(KEY, PER_MINUTE_3)[0] is False


def test_the_window_slides() -> None:
    clock = FakeClock(now=0.0)
    limiter = RateLimiter(clock)
    rate = Rate.parse("2/second")
    assert limiter.try_acquire(KEY, rate)[0]
    clock.advance(0.5)
    assert limiter.try_acquire(KEY, rate)[0]
    clock.advance(0.5)  # t=1.0: the first admission is exactly one second old
    assert not limiter.try_acquire(KEY, rate)[0]
    clock.advance(0.1)  # t=1.1: the first admission has left, the second has not
    assert limiter.try_acquire(KEY, rate)[0]
    assert not limiter.try_acquire(KEY, rate)[0]


@pytest.mark.parametrize(
    ("other_key"),
    [("FR", KEY[1]), (KEY[0], "another rule")],
)
def test_budgets_are_per_peer_and_per_rule(other_key: tuple[str, str]) -> None:
    limiter = RateLimiter(FakeClock())
    rate = Rate.parse("1/hour")
    assert limiter.try_acquire(KEY, rate)[0]
    assert not limiter.try_acquire(KEY, rate)[0]
    assert limiter.try_acquire(other_key, rate)[0]


def test_a_changed_rate_starts_a_fresh_window() -> None:
    limiter = RateLimiter(FakeClock())
    assert limiter.try_acquire(KEY, Rate.parse("1/day"))[0]
    assert not limiter.try_acquire(KEY, Rate.parse("1/day"))[0]
    assert limiter.try_acquire(KEY, Rate.parse("5/day"))[0]


def test_idle_keys_are_evicted() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock, sweep_every=10.0)
    rate = Rate.parse("5/second")
    for peer in ("AT", "BE", "CH", "DE"):
        limiter.try_acquire((peer, "r"), rate)
    assert len(limiter) == 4
    clock.advance(30.0)
    limiter.try_acquire(("FR", "r"), rate)
    assert len(limiter) == 1
    # a long window keeps its key while admissions are still inside it
    limiter.try_acquire(("IT", "r"), Rate.parse("1/hour"))
    clock.advance(600.0)
    limiter.try_acquire(("NL", "r"), rate)
    assert len(limiter) == 2


def test_memory_per_key_is_bounded() -> None:
    clock = FakeClock(now=0.0)
    limiter = RateLimiter(clock)
    rate = Rate.parse("100000/minute")
    for _ in range(20_000):
        clock.advance(0.01)
        assert limiter.try_acquire(KEY, rate)[0]
    window = limiter._windows[KEY]
    assert len(window.buckets) <= BUCKETS_PER_WINDOW + 2


@settings(max_examples=80, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=6),
    unit=st.sampled_from(["second", "minute"]),
    steps=st.lists(st.floats(min_value=0.0, max_value=1.5), min_size=1, max_size=120),
)
def test_never_more_than_count_in_any_window(count: int, unit: str, steps: list[float]) -> None:
    rate = Rate.parse(f"{count}/{unit}")
    clock = FakeClock(now=0.0)
    limiter = RateLimiter(clock)
    admitted: list[float] = []
    scale = rate.per_seconds  # steps are in fractions of the window
    for step in steps:
        clock.advance(step * scale / 4)
        allowed, retry_after = limiter.try_acquire(KEY, rate)
        if allowed:
            admitted.append(clock.now)
        else:
            assert retry_after > 0
    for i, start in enumerate(admitted):
        within = [t for t in admitted[i:] if t - start <= rate.per_seconds]
        assert len(within) <= count
    # liveness: once a whole window (and one bucket) has passed, the budget is back
    clock.advance(rate.per_seconds * (1 + 2 / BUCKETS_PER_WINDOW))
    assert all(limiter.try_acquire(KEY, rate)[0] for _ in range(count))


def test_retry_after_looks_without_admitting() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    assert limiter.retry_after(KEY, PER_MINUTE_3) == 0.0  # an unknown key
    for _ in range(3):
        assert limiter.retry_after(KEY, PER_MINUTE_3) == 0.0
        assert limiter.try_acquire(KEY, PER_MINUTE_3)[0]
    wait = limiter.retry_after(KEY, PER_MINUTE_3)
    assert wait == limiter.try_acquire(KEY, PER_MINUTE_3)[1] > 0
    clock.advance(wait)
    assert limiter.retry_after(KEY, PER_MINUTE_3) == 0.0
    assert limiter.try_acquire(KEY, PER_MINUTE_3)[0]
