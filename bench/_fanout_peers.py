"""Many signing-and-verifying peers in one process, one loopback port each (bench/fanout.py).

Each peer verifies a query as a node does (kid pinned for the querier, signature, typ, aud,
time window, claims) and returns a signed no-hit answer; POST /plain answers unsigned JSON for
the baseline; GET /v1/identity serves the peer's identity token for the node's health job.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from bench._serve import until_signalled
from connector.crypto.jws import PublicKey, Signer, SigningKey
from connector.protocol import (
    JOSE_MEDIA_TYPE,
    CheckResult,
    digest,
    open_envelope,
    parse_query,
    sign_answer,
    sign_identity,
)
from connector.vocabulary import AnswerLevel


@dataclass(slots=True)
class PeerSide:
    id: str
    signer: Signer
    url: str


PEERS = web.AppKey("peers", dict)
CLIENT = web.AppKey("client", tuple)


def _peer(request: web.Request) -> PeerSide:
    port = request.transport.get_extra_info("sockname")[1] if request.transport else 0
    peer: PeerSide = request.app[PEERS][port]
    return peer


async def query(request: web.Request) -> web.Response:
    peer = _peer(request)
    token = await request.read()
    client_id, client_key = request.app[CLIENT]
    now = time.time()
    envelope = open_envelope(
        token,
        resolve_kid=lambda kid: (client_id, client_key) if kid == client_key.kid else None,
        me=peer.id,
        now=now,
    )
    q = parse_query(envelope)
    results = tuple(
        CheckResult(check=c.id, status="no_hit", level=AnswerLevel.FULL) for c in q.checks
    )
    answer = sign_answer(
        signer=peer.signer,
        iss=peer.id,
        aud=q.iss,
        in_reply_to=q.jti,
        query_digest=digest(token),
        enquiry="01BENCH0000000000000000000",
        results=results,
        now=now,
    )
    return web.Response(body=answer, content_type=JOSE_MEDIA_TYPE)


async def plain(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    out = {
        "peer": _peer(request).id,
        "results": [{"check": c["id"], "status": "no_hit"} for c in body["checks"]],
    }
    return web.Response(body=orjson.dumps(out), content_type="application/json")


async def identity(request: web.Request) -> web.Response:
    peer = _peer(request)
    token = sign_identity(
        signer=peer.signer,
        node=peer.id,
        keys=[peer.signer.public.jwk()],
        tls_fingerprint=None,
        url=peer.url,
        now=time.time(),
    )
    return web.Response(body=token, content_type=JOSE_MEDIA_TYPE)


async def serve(entries: list[dict[str, Any]], client: str, client_jwk: dict[str, str]) -> None:
    app = web.Application()
    app[CLIENT] = (client, PublicKey.from_jwk(client_jwk))
    app[PEERS] = {
        e["port"]: PeerSide(
            id=e["id"],
            signer=Signer(SigningKey.from_jwk(e["jwk"])),
            url=f"http://127.0.0.1:{e['port']}",
        )
        for e in entries
    }
    app.router.add_post("/v1/query", query)
    app.router.add_post("/plain", plain)
    app.router.add_get("/v1/identity", identity)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    for e in entries:
        await web.TCPSite(runner, "127.0.0.1", e["port"], backlog=256).start()
    await until_signalled(runner)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._fanout_peers", description=__doc__)
    p.add_argument("--spec", type=Path, required=True, help="JSON: [{id, port, jwk}]")
    p.add_argument("--client", required=True)
    p.add_argument("--client-jwk", required=True)
    a = p.parse_args(argv)
    entries = orjson.loads(a.spec.read_bytes())
    asyncio.run(serve(entries, a.client, orjson.loads(a.client_jwk)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
