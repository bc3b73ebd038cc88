"""Helpers for tests that run on both database backends."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import create_engine

from connector.storage.urls import sync_url

DatabaseUrl = Callable[[str], str]
"""Makes a new empty database of the test's backend, named after its argument; its URL."""


def run_sql(url: str, sql: str) -> list[dict[str, object]]:
    """SQL straight into a database, past the connector: an intruder's edit, say."""
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            result = conn.exec_driver_sql(sql)
            return [dict(r._mapping) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()
