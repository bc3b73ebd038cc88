"""Counts requests in flight so a stopping node can let them finish before it closes."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware


class InFlight:
    """Requests being handled now. Once draining, responses close their connection, so
    keep-alive clients reconnect elsewhere instead of sending more here."""

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def middleware(self) -> Middleware:
        @web.middleware
        async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.count += 1
            self._idle.clear()
            try:
                response = await handler(request)
                if self.draining:
                    response.force_close()
                return response
            finally:
                self.count -= 1
                if self.count == 0:
                    self._idle.set()

        return track

    async def drain(self, timeout: float) -> bool:
        """Wait until no request is in flight; False when the timeout ran out first."""
        self.draining = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        return self.count == 0
