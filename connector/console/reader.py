"""What the console reads from the enquiry log's database, in a thread of its own on
connections of its own: a page never holds the event loop, nor the log's commits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import orjson
from sqlalchemy import select

from connector.console.overview import Activity, Overview, summarize
from connector.enquiries.entry import Direction, LoggedEntry, VerifyReport
from connector.enquiries.log import EnquiryLog
from connector.enquiries.schema import enquiries
from connector.notify.outbox import Outbox, OutboxRow, State

T = TypeVar("T")

# A day of a busy node's rows takes a noticeable part of a second to read: the overview's
# figures are read at most this often, however many operators look.
FIGURES_TTL_S = 10.0


class Reader:
    """The log and the outbox opened as the commands open them (`enquiries list`,
    `notifications list`), used from one worker thread only."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="console-reader")
        self._log: EnquiryLog | None = None
        self._outbox: Outbox | None = None
        self._figures: tuple[float, Overview, bool] | None = None  # (read at, figures, cut)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def _the_log(self) -> EnquiryLog:
        if self._log is None:
            self._log = EnquiryLog.open(self.url)
        return self._log

    def _the_outbox(self) -> Outbox:
        if self._outbox is None:
            self._outbox = Outbox.open(self.url)
        return self._outbox

    async def enquiries(
        self,
        *,
        peer: str | None = None,
        since: float | None = None,
        direction: Direction | None = None,
        limit: int | None = None,
    ) -> list[LoggedEntry]:
        """The newest first, as `enquiries list --limit` reads them."""
        return await self._run(
            lambda: self._the_log().list(
                peer=peer, since=since, direction=direction, limit=limit, newest_first=True
            )
        )

    async def activity(self, *, since: float, limit: int) -> list[Activity]:
        """The newest rows since `since`, as much of each as the overview counts: a day of a
        busy node is read without its queries and hashes."""
        t = enquiries.c
        q = (
            select(t.at, t.peer, t.direction, t.checks, t.results)
            .where(t.at >= since)
            .order_by(t.seq.desc())
            .limit(limit)
        )

        def read() -> list[Activity]:
            conn = self._the_log().engine.connect()
            try:
                with conn.begin():
                    return [
                        Activity(
                            at=r.at,
                            peer=r.peer,
                            direction=r.direction,
                            checks=tuple(orjson.loads(r.checks)),
                            results=tuple(orjson.loads(r.results)),
                        )
                        for r in conn.execute(q)
                    ]
            finally:
                conn.close()

        return await self._run(read)

    async def day(self, *, now: float, monotonic: float, limit: int) -> tuple[Overview, bool]:
        """The last 24 hours' figures, and whether `limit` rows cut them short; read again
        when older than FIGURES_TTL_S."""
        cached = self._figures
        if cached is not None and monotonic - cached[0] < FIGURES_TTL_S:
            return cached[1], cached[2]
        rows = await self.activity(since=now - 86_400, limit=limit)
        figures = summarize(rows, now=now)
        self._figures = (monotonic, figures, len(rows) >= limit)
        return figures, len(rows) >= limit

    async def after(self, seq: int, *, limit: int) -> list[LoggedEntry]:
        """Rows appended after `seq`, oldest first: what the live feed shows next."""

        def read() -> list[LoggedEntry]:
            rows = self._the_log().list(limit=limit, newest_first=True)
            return [r for r in reversed(rows) if r.seq > seq]

        return await self._run(read)

    async def enquiry(self, enquiry_id: str) -> LoggedEntry | None:
        return await self._run(lambda: self._the_log().get(enquiry_id))

    async def verify(self) -> VerifyReport:
        """The chain and what it seals, as `enquiries verify` checks them (without
        witnesses, archives or the kept checkpoint, which the node checks at start)."""
        return await self._run(lambda: self._the_log().verify())

    async def notices(self, *, state: State | None, limit: int) -> list[OutboxRow]:
        return await self._run(lambda: self._the_outbox().list(state=state, limit=limit))

    async def notice_counts(self) -> dict[str, int]:
        return await self._run(lambda: self._the_outbox().counts())

    async def retry(self, notice_ids: list[str] | None, *, now: float) -> int:
        return await self._run(lambda: self._the_outbox().retry(notice_ids, now=now))

    async def close(self) -> None:
        def close() -> None:
            if self._log is not None:
                self._log.close()
            if self._outbox is not None:
                self._outbox.close()

        await self._run(close)
        self._pool.shutdown(wait=True)
