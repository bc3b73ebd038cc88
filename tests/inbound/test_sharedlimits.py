"""Rate limits shared by a node's processes: one file, the same windows as in one process."""

from __future__ import annotations

import random
from pathlib import Path

from connector.inbound.ratelimit import RateLimiter
from connector.inbound.sharedlimits import SharedRateLimiter
from connector.policy import Rate

PER_MINUTE_5 = Rate.parse("5/minute")
KEY = ("FR", "documents for FR")


class Clock:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


def test_two_processes_share_one_budget(tmp_path: Path) -> None:
    clock = Clock()
    # Two connections to one file, as two worker processes hold them.
    a = SharedRateLimiter(tmp_path / "limits.db", clock, fresh=True)
    b = SharedRateLimiter(tmp_path / "limits.db", clock)
    admitted = [(a if i % 2 else b).try_acquire(KEY, PER_MINUTE_5)[0] for i in range(8)]
    assert admitted == [True] * 5 + [False] * 3
    assert b.retry_after(KEY, PER_MINUTE_5) > 59
    assert a.try_acquire(("FR", "another rule"), PER_MINUTE_5)[0]  # a key of its own
    clock.now += 61.0
    assert b.try_acquire(KEY, PER_MINUTE_5) == (True, 0.0)
    # A reload that changes the rate starts a fresh window, as in one process.
    assert a.try_acquire(KEY, Rate.parse("1/minute"))[0]
    a.close()
    b.close()


def test_the_same_answers_as_one_process(tmp_path: Path) -> None:
    clock = Clock()
    alone = RateLimiter(clock)
    shared = SharedRateLimiter(tmp_path / "limits.db", clock, fresh=True)
    rng = random.Random(17)
    for _ in range(400):
        clock.now += rng.choice([0.0, 0.5, 3.0, 11.0])
        key = ("FR", rng.choice(["a", "b"]))
        assert shared.try_acquire(key, PER_MINUTE_5) == alone.try_acquire(key, PER_MINUTE_5)
    shared.close()


def test_the_main_process_starts_on_empty_windows(tmp_path: Path) -> None:
    clock = Clock()
    before = SharedRateLimiter(tmp_path / "limits.db", clock)
    for _ in range(5):
        before.try_acquire(KEY, PER_MINUTE_5)
    before.close()
    # After a reboot the monotonic clock starts again: windows from before would count for
    # hours. The main process empties them at its start.
    clock.now = 10.0
    after = SharedRateLimiter(tmp_path / "limits.db", clock, fresh=True)
    assert after.try_acquire(KEY, PER_MINUTE_5) == (True, 0.0)
    assert (tmp_path / "limits.db").stat().st_mode & 0o777 == 0o600
    after.close()
