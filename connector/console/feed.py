"""The live feed: one look at the log per interval while anyone watches, each new row sent
to every open page as a server-sent event, with the counters beside it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog
from aiohttp import web

from connector.console.pages import feed_item
from connector.console.sources import Console
from connector.console.web import CONSOLE, SESSION_COOKIE

log = structlog.get_logger(__name__)

QUEUE_EVENTS = 256  # a page that falls this far behind is closed; the browser reconnects
BATCH_ROWS = 200
KEEPALIVE_S = 15.0


class Feed:
    """Subscribers' queues and the task that fills them. The task runs only while a page is
    open: an idle console reads nothing."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._queues: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._last_seq: int | None = None
        self._wake = asyncio.Event()

    async def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A queue of what is appended from now on: the log's head is read first, so a
        row committed once this returns is sent."""
        if self._last_seq is None:
            await self._look()
        q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_EVENTS)
        self._queues.add(q)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="console-feed")
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._queues.discard(q)

    async def _run(self) -> None:
        console = self.console
        while self._queues:
            try:
                await self._look()
            except Exception as exc:  # a database that fails now may answer at the next look
                log.warning("console_feed_failed", error=str(exc))
            await asyncio.sleep(console.feed_interval_s)
        self._task = None

    async def _look(self) -> None:
        reader = self.console.reader
        if self._last_seq is None:
            newest = await reader.enquiries(limit=1)
            self._last_seq = newest[0].seq if newest else 0
            return
        rows = await reader.after(self._last_seq, limit=BATCH_ROWS)
        if not rows:
            return
        self._last_seq = rows[-1].seq
        events = [{"event": "enquiry", "data": feed_item(r)} for r in rows]
        for q in list(self._queues):
            for ev in events:
                try:
                    q.put_nowait(ev)
                except asyncio.QueueFull:
                    self._queues.discard(q)
                    with contextlib.suppress(asyncio.QueueFull):
                        q.put_nowait(None)
                    break

    def end_streams(self) -> None:
        """Each open stream ends (the node stops: its handlers must not hold the stop)."""
        for q in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)
        self._queues.clear()

    async def close(self) -> None:
        self.end_streams()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


FEED = web.AppKey("console_feed", Feed)


async def feed_ctx(app: web.Application) -> AsyncIterator[None]:
    feed = Feed(app[CONSOLE])
    app[FEED] = feed
    yield
    await feed.close()


async def end_streams(app: web.Application) -> None:
    app[FEED].end_streams()


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def events(request: web.Request) -> web.StreamResponse:
    """`text/event-stream`: `enquiry` events, one per row appended to the log. The stream
    ends with the session (logout, idle timeout, account disabled)."""
    console = request.app[CONSOLE]
    session_id = request.cookies.get(SESSION_COOKIE, "")
    feed = request.app[FEED]
    q = await feed.subscribe()
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    try:
        await response.write(b"retry: 3000\n\n")
        while console.sessions.alive(session_id):
            try:
                ev = await asyncio.wait_for(q.get(), KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if ev is None:
                break
            await response.write(_event(ev["event"], ev["data"]))
    except ConnectionResetError:
        pass  # the page was closed
    finally:
        feed.unsubscribe(q)
    return response
