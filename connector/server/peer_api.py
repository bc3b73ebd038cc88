"""The peer API: query, release, identity, and witnessed checkpoints (docs/protocol.md §3)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from aiohttp import hdrs, web

from connector.approvals.release import Releaser
from connector.crypto.jws import Signer
from connector.errors import PayloadTooLarge, UnderMaintenance, UnsupportedMediaType
from connector.inbound.answering import Answerer
from connector.inbound.witnessing import Witness
from connector.protocol import JOSE_MEDIA_TYPE, MAX_TOKEN_BYTES, PublishedIdentity, sign_identity
from connector.server.headers import quiet
from connector.server.inflight import InFlight
from connector.server.problems import REJECTIONS, flush_rejections, problem_middleware
from connector.server.rejectlog import RejectionLog

ANSWERER = web.AppKey("answerer", Answerer)
WITNESS = web.AppKey("witness", Witness)
RELEASER = web.AppKey("releaser", Releaser)
Paused: TypeAlias = Callable[[], "tuple[str, float] | None"]
"""Why the node is under maintenance and the Retry-After to give, or None: it answers."""
PAUSED: web.AppKey[Paused] = web.AppKey("paused")


class IdentityToken:
    """The self-signed identity token, re-signed before it expires or when what it publishes
    changes (a rotation), rather than per request."""

    REFRESH_S = 60

    def __init__(
        self,
        *,
        signer: Signer,
        node: str,
        published: Callable[[], PublishedIdentity],
        url: str | None,
        clock: Callable[[], float],
    ) -> None:
        self._signer, self._node, self._published, self.url = signer, node, published, url
        self._clock = clock
        self._token = b""
        self._made = float("-inf")
        self._made_of: PublishedIdentity | None = None

    def current(self) -> bytes:
        now = self._clock()
        published = self._published()
        if now - self._made > self.REFRESH_S or published is not self._made_of:
            self._token = sign_identity(
                signer=self._signer,
                node=self._node,
                keys=list(published.keys),
                tls_fingerprint=published.tls_fingerprint,
                url=self.url,
                now=now,
                tls_fingerprints=published.tls_fingerprints,
                rotations=published.rotations,
            )
            self._made, self._made_of = now, published
        return self._token


IDENTITY = web.AppKey("identity", IdentityToken)


async def _token(request: web.Request, what: str) -> bytes:
    """The signed token a peer POSTs, before anything reads it: size and media type; and
    none at all while the node is under maintenance."""
    paused = request.app[PAUSED]()
    if paused is not None:
        raise UnderMaintenance(paused[0], retry_after=paused[1])
    if request.content_length is not None and request.content_length > MAX_TOKEN_BYTES:
        raise PayloadTooLarge(f"a {what} token is at most {MAX_TOKEN_BYTES} bytes")
    # The header as every peer sends it is compared as it stands; parsing it (parameters,
    # case) costs more than the rest of these checks, and is left to any other spelling.
    if (
        request.headers.get(hdrs.CONTENT_TYPE) != JOSE_MEDIA_TYPE
        and request.content_type != JOSE_MEDIA_TYPE
    ):
        raise UnsupportedMediaType(f"send the {what} token as {JOSE_MEDIA_TYPE}")
    return await request.read()


async def handle_query(request: web.Request) -> web.Response:
    answered = await request.app[ANSWERER].answer(await _token(request, "query"))
    return web.Response(body=answered.token, content_type=JOSE_MEDIA_TYPE)


async def handle_release(request: web.Request) -> web.Response:
    released = await request.app[RELEASER].release(await _token(request, "release"))
    return web.Response(body=released, content_type=JOSE_MEDIA_TYPE)


async def handle_checkpoint(request: web.Request) -> web.Response:
    receipt = await request.app[WITNESS].deposit(await _token(request, "checkpoint"))
    return web.Response(body=receipt, content_type=JOSE_MEDIA_TYPE)


async def handle_recall(request: web.Request) -> web.Response:
    witnessed = await request.app[WITNESS].recall(await _token(request, "recall"))
    return web.Response(body=witnessed, content_type=JOSE_MEDIA_TYPE)


async def handle_identity(request: web.Request) -> web.Response:
    return web.Response(body=request.app[IDENTITY].current(), content_type=JOSE_MEDIA_TYPE)


def make_peer_app(inflight: InFlight, rejections: RejectionLog) -> web.Application:
    # One byte over the limit is enough for aiohttp to refuse a body we would refuse anyway.
    app = web.Application(
        middlewares=[inflight.middleware, problem_middleware(rejections)],
        client_max_size=MAX_TOKEN_BYTES + 1,
    )
    app[REJECTIONS] = rejections
    app[PAUSED] = lambda: None
    app.on_cleanup.append(flush_rejections(rejections))
    app.router.add_post("/v1/query", handle_query)
    app.router.add_get("/v1/identity", handle_identity)
    app.router.add_post("/v1/release", handle_release)
    app.router.add_post("/v1/witness", handle_checkpoint)
    app.router.add_post("/v1/witness/recall", handle_recall)
    return quiet(app)
