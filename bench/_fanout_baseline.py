"""The baseline: a bare aiohttp client, one shared session, unsigned JSON to every peer.

POST /fanout (from bench/fanout.py) sends one plain request to each peer's /plain at once and
answers when the last reply is in, so the driver times it exactly as it times the node.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from bench._serve import until_signalled

URLS = web.AppKey("urls", list)
SESSION = web.AppKey("session", aiohttp.ClientSession)
BODY = orjson.dumps(
    {
        "checks": [
            {
                "id": "doc",
                "category": "travel_documents",
                "criteria": {"number": "DE1234567", "country": "DE"},
            }
        ]
    }
)


async def fanout(request: web.Request) -> web.Response:
    session = request.app[SESSION]

    async def one(url: str) -> int:
        async with session.post(
            url, data=BODY, headers={"Content-Type": "application/json"}
        ) as resp:
            await resp.read()
            return resp.status

    statuses = await asyncio.gather(*(one(u) for u in request.app[URLS]))
    return web.json_response({"ok": sum(1 for s in statuses if s == 200)})


async def readyz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


async def session_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    ) as session:
        app[SESSION] = session
        yield


async def serve(port: int, urls: list[str]) -> None:
    app = web.Application()
    app[URLS] = urls
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/fanout", fanout)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await until_signalled(runner)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._fanout_baseline", description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--urls", type=Path, required=True, help="JSON list of /plain URLs")
    a = p.parse_args(argv)
    asyncio.run(serve(a.port, orjson.loads(a.urls.read_bytes())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
