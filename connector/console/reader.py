"""What the console reads from the enquiry log's database, in a thread of its own on
connections of its own: a page never holds the event loop, nor the log's commits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from connector.enquiries.entry import Direction, LoggedEntry, VerifyReport
from connector.enquiries.log import EnquiryLog
from connector.notify.outbox import Outbox, OutboxRow, State

T = TypeVar("T")


class Reader:
    """The log and the outbox opened as the commands open them (`enquiries list`,
    `notifications list`), used from one worker thread only."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="console-reader")
        self._log: EnquiryLog | None = None
        self._outbox: Outbox | None = None

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
