"""The agencies' API for releases held by peers' operators: `GET /local/v1/checks/{id}` and
its `/stream`."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import structlog
from aiohttp import web

from connector.approvals.awaiting import AWAITING, Awaited
from connector.errors import NotFound
from connector.server.events import EventStream
from connector.server.local_checks import LOCAL_CHECKS

log = structlog.get_logger(__name__)

# How often an open stream looks for releases come in: a read of one indexed table. The
# releases job that fetches them may run in another process of the node, so the table,
# not an in-memory signal, is what every process shares.
WATCH_S = 1.0


def _releases(request: web.Request, check_id: str, agency: str) -> list[Awaited]:
    """The check's releases, if this agency made it; the same 404 for an id with nothing
    awaited and for another agency's check."""
    releases = [a for a in request.app[AWAITING].for_request(check_id) if a.agency == agency]
    if not releases:
        raise NotFound("no check by that id awaits or received a release for this agency")
    return releases


def _document(check_id: str, agency: str, releases: list[Awaited]) -> dict[str, Any]:
    return {
        "id": check_id,
        "agency": agency,
        "complete": all(a.state != "pending" for a in releases),
        "releases": [a.to_json() for a in releases],
    }


async def get_check(request: web.Request) -> web.Response:
    """What became of a check's answers that waited for a peer's operator: each release,
    pending or as fetched (docs/local-api.md). Only the agency that asked sees it."""
    agency = request.app[LOCAL_CHECKS].agencies.authenticate(request)
    check_id = request.match_info["id"]
    doc = _document(check_id, agency.id, _releases(request, check_id, agency.id))
    return web.Response(body=orjson.dumps(doc), content_type="application/json")


async def get_check_stream(request: web.Request) -> web.StreamResponse:
    """The same, held open: the check as `GET` shows it (`check`), then each release once,
    when it is no longer pending (`release`), heartbeats while nothing happens, and `done`
    once none is pending — or at `approvals.stream_max_s`, or when the node stops
    (`complete` false: ask again)."""
    deps = request.app[LOCAL_CHECKS]
    agency = deps.agencies.authenticate(request)
    check_id = request.match_info["id"]
    releases = _releases(request, check_id, agency.id)
    stream = await EventStream.open(request)
    await stream.send("check", _document(check_id, agency.id, releases))
    shown = {(a.peer, a.approval): a.state for a in releases}
    loop = asyncio.get_running_loop()
    started = loop.time()
    end = started + deps.stream_max_s
    beat = started + deps.heartbeat_s
    ended = "complete"
    while "pending" in shown.values():
        now = loop.time()
        if now >= end:
            ended = "max_duration"
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(deps.closing.wait(), min(WATCH_S, end - now, beat - now))
        if deps.closing.is_set():
            ended = "closing"
            break
        for a in _releases(request, check_id, agency.id):
            key = (a.peer, a.approval)
            if shown.get(key) != a.state:
                shown[key] = a.state
                await stream.send("release", {"check": check_id, **a.to_json()})
        if loop.time() >= beat:
            await stream.heartbeat()
            beat = loop.time() + deps.heartbeat_s
    complete = "pending" not in shown.values()
    log.info(
        "release_stream_closed",
        agency=agency.id,
        check=check_id,
        ended=ended,
        seconds=round(loop.time() - started, 1),
    )
    await stream.send("done", {"complete": complete, "ended": ended})
    return await stream.close()


def add_release_routes(app: web.Application) -> None:
    app.router.add_get("/local/v1/checks/{id}", get_check)
    app.router.add_get("/local/v1/checks/{id}/stream", get_check_stream)
