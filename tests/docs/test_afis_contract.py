"""records.md's AFIS contract is what the node sends and reads: the request shown is the
shape of the one DE sends the stand-in, and the response shown becomes the hit described."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from support import docs
from support.afis import StandIn, afis

from connector.demo import DEMO_FINGER, demo_print
from connector.inbound.afis import Afis
from connector.peers.client import peer_session
from connector.records.kinds.registry import KINDS
from connector.settings.config import AfisLink
from connector.vocabulary import Category

ROOT = Path(__file__).resolve().parents[2]


def example(name: str) -> Any:
    return orjson.loads(docs.example("records.md", name))


def _shape(value: Any) -> Any:
    """The keys and types of a JSON value, its strings' contents aside."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


async def test_the_request_shown_is_what_the_node_sends() -> None:
    stand_in = StandIn(prints={})
    check = KINDS[Category.FINGERPRINTS].parse_criteria(
        {"template": demo_print(1), "finger": DEMO_FINGER}
    )
    async with afis(stand_in), peer_session() as session:
        link = AfisLink(url=stand_in.url, insecure=True)
        assert await Afis(link=link, session=session).candidates(check, 10) == []
    (asked,) = stand_in.asked
    sent: Any = asked
    shown = example("afis-request")
    assert _shape(sent) == _shape(shown)
    assert sent["templates"][0]["finger"] == shown["templates"][0]["finger"] == DEMO_FINGER
    assert sent["limit"] == shown["limit"]


async def test_the_response_shown_becomes_a_hit_for_an_examiner() -> None:
    from aiohttp import web

    shown = example("afis-response")

    async def answer(request: web.Request) -> web.Response:
        return web.json_response(shown)

    app = web.Application()
    app.router.add_post("/", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        link = AfisLink(url=f"http://127.0.0.1:{runner.addresses[0][1]}/", insecure=True)
        check = KINDS[Category.FINGERPRINTS].parse_criteria({"template": demo_print(1)})
        async with peer_session() as session:
            (match,) = await Afis(link=link, session=session).candidates(check, 10)
    finally:
        await runner.cleanup()
    assert (match.record.id, match.score) == ("AFIS-FP-9", 0.91)
    assert match.reasons == ({"finger": 2, "afis": True, "verification_required": True},)
    assert dict(match.record.fields) == {
        "finger": 2,
        "case_reference": "DE-K-2026-51",
        "contact": "BKA ZD 24",
    }
