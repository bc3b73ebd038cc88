"""An agency's stream of events: one JSON object a line, or server-sent events if asked."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"


class EventStream:
    """A response the local API writes events to as they happen: `{"event": NAME, …}` a
    line (`application/x-ndjson`), or, when the request accepts `text/event-stream`, an SSE
    event NAME whose data is the rest."""

    def __init__(self, request: web.Request) -> None:
        self.sse = SSE in request.headers.get("Accept", "")
        self.response = web.StreamResponse(
            headers={"Content-Type": SSE if self.sse else NDJSON, "Cache-Control": "no-store"}
        )

    @classmethod
    async def open(cls, request: web.Request) -> EventStream:
        stream = cls(request)
        await stream.response.prepare(request)
        return stream

    async def send(self, event: str, data: dict[str, Any]) -> None:
        if self.sse:
            await self.response.write(
                b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
            )
        else:
            await self.response.write(orjson.dumps({"event": event, **data}) + b"\n")

    async def heartbeat(self) -> None:
        """Something on an idle connection, so proxies and clients keep it: an SSE comment,
        which EventSource ignores, or a `heartbeat` line."""
        if self.sse:
            await self.response.write(b": heartbeat\n\n")
        else:
            await self.response.write(b'{"event":"heartbeat"}\n')

    async def close(self) -> web.StreamResponse:
        await self.response.write_eof()
        return self.response
