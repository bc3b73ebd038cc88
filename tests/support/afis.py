"""A small real AFIS on loopback, answering the contract of docs/records.md §Fingerprints with
the same bozorth3 matcher the connector uses; it can also fail (an error status, nonsense, or
an answer too slow)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from connector.records.fingerprints.iso19794 import read_template
from connector.records.fingerprints.matcher import Bozorth3, Prepared, decode_template

Failure = Literal["none", "status", "nonsense", "slow"]


@dataclass(slots=True, kw_only=True)
class StandIn:
    """The prints the AFIS holds (id → template, base64) and how it fails, if it does."""

    prints: dict[str, str]
    threshold: int = 6
    failure: Failure = "none"
    asked: list[dict[str, object]] = field(default_factory=list)
    # Served over TLS with this context (https://), else plain http on loopback.
    tls: ssl.SSLContext | None = None
    url: str = ""


async def _candidates(request: web.Request) -> web.Response:
    stand_in: StandIn = request.app[STAND_IN]
    body = await request.json()
    stand_in.asked.append(body)
    if stand_in.failure == "status":
        return web.json_response({"error": "index offline"}, status=503)
    if stand_in.failure == "nonsense":
        return web.json_response({"candidates": [{"id": "x y", "score": 7}]})
    if stand_in.failure == "slow":
        await asyncio.sleep(5)
    matcher: Bozorth3 = request.app[MATCHER]
    held: dict[str, Prepared] = request.app[HELD]
    out = []
    for asked in body["templates"]:
        finger = asked.get("finger")
        for view in read_template(decode_template(asked["template"])).views:
            probe = matcher.prepare(view)
            for record_id, print_ in held.items():
                if finger and print_.finger and finger != print_.finger:
                    continue
                score = matcher.score(probe, print_)
                if score >= stand_in.threshold:
                    out.append(
                        {
                            "id": record_id,
                            "score": round(score / (score + stand_in.threshold), 4),
                            "finger": print_.finger,
                            "case_reference": "AFIS-CASE-1",
                        }
                    )
    out.sort(key=lambda c: -float(c["score"]))  # type: ignore[arg-type]
    return web.json_response({"candidates": out[: int(body["limit"])]})


STAND_IN = web.AppKey("stand_in", StandIn)
MATCHER = web.AppKey("matcher", Bozorth3)
HELD = web.AppKey("held", dict)


@contextlib.asynccontextmanager
async def afis(stand_in: StandIn) -> AsyncIterator[StandIn]:
    """The stand-in, listening on a free loopback port; its url in `stand_in.url`."""
    app = web.Application()
    matcher = Bozorth3()
    app[STAND_IN] = stand_in
    app[MATCHER] = matcher
    app[HELD] = {
        record_id: matcher.prepare(read_template(decode_template(text)).views[0])
        for record_id, text in stand_in.prints.items()
    }
    app.router.add_post("/v1/candidates", _candidates)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=stand_in.tls)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if stand_in.tls is not None else "http"
    stand_in.url = f"{scheme}://127.0.0.1:{port}/v1/candidates"
    try:
        yield stand_in
    finally:
        await runner.cleanup()
