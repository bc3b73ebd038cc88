"""How each of our SQLite connections is set up: WAL, how durable a commit is, how long to wait."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal


def on_connect(
    *, synchronous: Literal["FULL", "NORMAL"], busy_ms: int, autocommit: bool = False
) -> Callable[[Any, Any], None]:
    """A SQLAlchemy `connect` listener. `autocommit` leaves transactions to our own BEGIN
    (the enquiry log takes the write lock up front), reads then need none."""

    def setup(dbapi_conn: Any, _record: Any) -> None:
        if autocommit:
            dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cur.close()

    return setup


def create_private(file: Path | None) -> None:
    """A database file not there yet is made empty, readable by its owner only, before
    SQLite opens it: it holds personal data, and SQLite gives its -wal and -shm files the
    same mode. An existing file is left as it is."""
    if file is None:
        return
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
