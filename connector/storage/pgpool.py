"""The asyncpg pools a serving node's hot path reads and commits through on PostgreSQL."""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import URL


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing: asyncpg's own reset (`RESET ALL`, `UNLISTEN *`, ...) costs a round trip
    on every release, and the statements sent through these pools leave no session state
    (transaction-level locks only). An open transaction is still rolled back by asyncpg."""


async def open_pool(url: URL, *, max_size: int) -> asyncpg.Pool:
    """A pool on the database `url` names (any driver suffix dropped); prepared statements
    are cached per connection by asyncpg."""
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, reset=_keep_session)
