"""A deliberately slow webhook receiver: every POST waits `--delay` s, then answers 204.

Run in a process of its own on loopback by bench/notify_slow.py. GET /stats reports how many
notices arrived, how many distinct Idempotency-Keys they carried, and the most in flight at once.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import web

from bench._serve import until_signalled


@dataclass(slots=True)
class Stats:
    received: int = 0
    answered: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    body_bytes: int = 0
    keys: set[str] = field(default_factory=set)
    first_at: float | None = None
    last_at: float | None = None


STATS = web.AppKey("stats", Stats)
DELAY = web.AppKey("delay", float)


async def hook(request: web.Request) -> web.Response:
    stats = request.app[STATS]
    body = await request.read()
    now = asyncio.get_running_loop().time()
    stats.received += 1
    stats.body_bytes += len(body)
    stats.keys.add(request.headers.get("Idempotency-Key", ""))
    stats.first_at = now if stats.first_at is None else stats.first_at
    stats.in_flight += 1
    stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
    try:
        await asyncio.sleep(request.app[DELAY])
    finally:
        stats.in_flight -= 1
    stats.answered += 1
    stats.last_at = asyncio.get_running_loop().time()
    return web.Response(status=204)


async def stats_view(request: web.Request) -> web.Response:
    s = request.app[STATS]
    span = (s.last_at - s.first_at) if s.first_at is not None and s.last_at is not None else 0.0
    return web.json_response(
        {
            "received": s.received,
            "answered": s.answered,
            "distinct_keys": len(s.keys),
            "in_flight": s.in_flight,
            "max_in_flight": s.max_in_flight,
            "body_bytes": s.body_bytes,
            "span_s": span,
        }
    )


async def readyz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


def make_app(delay: float) -> web.Application:
    app = web.Application()
    app[STATS] = Stats()
    app[DELAY] = delay
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", stats_view)
    app.router.add_get("/readyz", readyz)
    return app


async def serve(*, port: int, delay: float) -> None:
    runner = web.AppRunner(make_app(delay), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    await until_signalled(runner)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._slow_hook", description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--delay", type=float, default=1.0, help="seconds before each 204")
    a = p.parse_args(argv)
    asyncio.run(serve(port=a.port, delay=a.delay))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
