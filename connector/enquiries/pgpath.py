"""The enquiry log's serving path on PostgreSQL: the replay check and a group commit sent
straight through asyncpg, in as few round trips as the chain allows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy.engine import URL

from connector.enquiries.entry import GENESIS
from connector.enquiries.schema import enquiries
from connector.storage.pgpool import open_pool

_COLUMNS = [c.name for c in enquiries.columns]
_SEEN = "SELECT 1 FROM enquiries WHERE iss = $1 AND jti = $2 LIMIT 1"
_DISCLOSED_OF = "SELECT ref FROM disclosed_refs WHERE peer = $1 AND ref = ANY($2::text[])"
_HEAD = "SELECT seq, hash FROM enquiries ORDER BY seq DESC LIMIT 1"
_INSERT = (
    f"INSERT INTO enquiries ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(_COLUMNS) + 1))})"
)
_DISCLOSED = (
    "INSERT INTO disclosed_refs (peer, ref, first_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
)

# The rows of a batch chained from the head (seq, hash): the enquiry rows, and the
# (peer, ref) → first_at their answers disclosed.
Chain = Callable[[int, str], tuple[list[dict[str, Any]], Mapping[tuple[str, str], float]]]


class PgPath:
    """One asyncpg pool for the log's hot path. Each commit is BEGIN with the chain's lock
    (one round trip), the head, the rows in one pipelined executemany, the disclosed refs
    when there are any, COMMIT: the head is read only once the lock is held, in a statement
    of its own, so its snapshot sees the last commit of every other process."""

    def __init__(self, url: URL, *, chain_lock: int, max_size: int = 4) -> None:
        self._url = url
        self._max_size = max_size
        self._begin = f"BEGIN; SELECT pg_advisory_xact_lock({int(chain_lock)})"
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _ready(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:  # the first checks arrive together
                if self._pool is None:
                    self._pool = await open_pool(self._url, max_size=self._max_size)
        return self._pool

    async def seen(self, iss: str, jti: str) -> bool:
        """One indexed read outside any transaction: no BEGIN, no ROLLBACK."""
        pool = await self._ready()
        return await pool.fetchval(_SEEN, iss, jti) is not None

    async def disclosed(self, peer: str, refs: Sequence[str]) -> set[str]:
        """Which of these refs this peer has been given: one read, no transaction."""
        pool = await self._ready()
        return {r["ref"] for r in await pool.fetch(_DISCLOSED_OF, peer, list(refs))}

    async def append(self, chain: Chain) -> list[int]:
        """The batch `chain` builds from the head, committed in one transaction; asyncpg's
        error (UniqueViolationError on a used jti) when it is refused, nothing committed."""
        pool = await self._ready()
        async with pool.acquire() as conn:
            await conn.execute(self._begin)
            try:
                head = await conn.fetchrow(_HEAD)
                rows, given = chain(*((head["seq"], head["hash"]) if head else (0, GENESIS)))
                await conn.executemany(_INSERT, [[r[c] for c in _COLUMNS] for r in rows])
                if given:
                    await conn.executemany(
                        _DISCLOSED, [(p, ref, at) for (p, ref), at in given.items()]
                    )
                await conn.execute("COMMIT")
            except BaseException:
                if not conn.is_closed() and conn.is_in_transaction():
                    await conn.execute("ROLLBACK")
                raise
        return [r["seq"] for r in rows]

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
