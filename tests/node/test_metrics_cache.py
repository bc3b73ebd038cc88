"""The figures /metrics reads from a database: read off the loop, at most once per
interval, one read at a time, and a scrape never waits on a slow read for long."""

from __future__ import annotations

import threading
import time

from connector.node.metrics import Cached


async def test_a_slow_read_answers_with_the_last_value_and_is_not_repeated() -> None:
    clock = [0.0]
    release = threading.Event()
    reads = []

    def read() -> int:
        reads.append(1)
        if len(reads) == 2:
            release.wait(5)  # the database is slow now
        return len(reads)

    cached = Cached(read, what="test", interval=5, timeout=0.05, monotonic=lambda: clock[0])
    await cached.refresh()
    assert (cached.value, len(reads)) == (1, 1)
    await cached.refresh()  # within the interval: no read
    assert len(reads) == 1
    clock[0] = 10
    started = time.monotonic()
    await cached.refresh()  # the slow read: the scrape gives up waiting, keeps the old value
    assert time.monotonic() - started < 1
    assert cached.value == 1
    clock[0] = 20
    await cached.refresh()  # the read still runs: no second one beside it
    assert len(reads) == 2
    release.set()
    await cached.close()
    assert cached.value == 2


async def test_a_failed_read_keeps_the_last_value() -> None:
    clock = [0.0]
    fail = [False]

    def read() -> str:
        if fail[0]:
            raise OSError("disk")
        return "ok"

    cached = Cached(read, what="test", interval=1, monotonic=lambda: clock[0])
    await cached.refresh()
    fail[0], clock[0] = True, 2
    await cached.refresh()
    assert cached.value == "ok"
