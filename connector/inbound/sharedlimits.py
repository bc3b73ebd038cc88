"""Per-peer rate limits shared by every process serving the peer API, in one SQLite file."""

from __future__ import annotations

import contextlib
import sqlite3
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

from connector.inbound.ratelimit import Window
from connector.policy.model import Rate
from connector.storage.sqlite import create_private

__all__ = ["RATE_LIMITS_FILE", "SharedRateLimiter"]

# In the state directory, beside the enquiry log: the windows of the rules that ask for a
# rate, for as long as the node runs (emptied at each start).
RATE_LIMITS_FILE = Path("rate-limits.db")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    peer TEXT NOT NULL,
    rule TEXT NOT NULL,
    count INTEGER NOT NULL,
    per_seconds INTEGER NOT NULL,
    buckets TEXT NOT NULL,
    until REAL NOT NULL,
    PRIMARY KEY (peer, rule)
)
"""


class SharedRateLimiter:
    """RateLimiter's sliding windows (the same buckets, the same arithmetic: `Window`) kept
    in a SQLite file that all of a node's processes open, so `600/minute` is 600 a minute
    from the whole node, whichever process a peer's connection lands on.

    Each admission is one short write transaction (BEGIN IMMEDIATE: read the window, admit,
    write it back); the file is never synced (`synchronous=OFF`): windows are worth nothing
    after a crash, and a rule without a rate never reaches here. `clock` must be one every
    process reads alike (CLOCK_MONOTONIC is, on one host); that is why the supervisor
    empties the file at each start (`fresh`): a reboot restarts that clock."""

    def __init__(
        self,
        path: Path,
        clock: Callable[[], float],
        *,
        fresh: bool = False,
        sweep_every: float = 60.0,
    ) -> None:
        create_private(path)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(_SCHEMA)
        if fresh:
            self._db.execute("DELETE FROM windows")
        self._clock = clock
        self._sweep_every = sweep_every
        self._last_sweep = clock()

    def close(self) -> None:
        self._db.close()

    def try_acquire(self, key: tuple[str, str], rate: Rate) -> tuple[bool, float]:
        """As RateLimiter.try_acquire, counted across every process of the node."""
        with self._writing() as db:
            now = self._clock()
            window = self._read(db, key, rate) or Window.of(rate)
            allowed, retry_after = window.admit(now)
            if allowed:
                db.execute(
                    "INSERT OR REPLACE INTO windows VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        *key,
                        rate.count,
                        rate.per_seconds,
                        orjson.dumps(list(window.buckets)).decode(),
                        window.leaves(window.buckets[-1][0]),
                    ),
                )
            if now - self._last_sweep >= self._sweep_every:
                self._last_sweep = now
                db.execute("DELETE FROM windows WHERE until <= ?", (now,))
        return allowed, retry_after

    def retry_after(self, key: tuple[str, str], rate: Rate) -> float:
        """Seconds until `key` may be admitted again (0.0: now), admitting nothing."""
        window = self._read(self._db, key, rate)
        if window is None:
            return 0.0
        now = self._clock()
        window.expire(now)
        return window.retry_after(now) if window.total >= window.count else 0.0

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @staticmethod
    def _read(db: sqlite3.Connection, key: tuple[str, str], rate: Rate) -> Window | None:
        """The window kept for `key` while it counts for `rate` (a reload that changed the
        rate starts a fresh one, as in one process)."""
        row = db.execute(
            "SELECT count, per_seconds, buckets FROM windows WHERE peer = ? AND rule = ?", key
        ).fetchone()
        if row is None or (row[0], row[1]) != (rate.count, rate.per_seconds):
            return None
        window = Window.of(rate)
        window.buckets = deque([int(i), int(n)] for i, n in orjson.loads(row[2]))
        window.total = sum(n for _, n in window.buckets)
        return window
