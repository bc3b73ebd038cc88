"""A webhook receiver on loopback that checks every notice's signature independently."""

from __future__ import annotations

import warnings
from typing import Any

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import OKPKey


class Receiver:
    """A webhook receiver on loopback that fails the first `fail_first` posts."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append((dict(request.headers), await request.read()))
        if len(self.posts) <= self.fail_first:
            return web.Response(status=503)
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        self.port = int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def verified(self, key: dict[str, str]) -> list[dict[str, Any]]:
        """Every delivered notice, its signature checked with an independent JOSE library."""
        out = []
        okp = OKPKey.import_key(dict[str, str | list[str]](key))
        for headers, body in self.posts:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                token = jwt.decode(body.decode(), okp, algorithms=["EdDSA"])
            assert token.header["typ"] == "ncb-notice+jwt"
            assert headers["Idempotency-Key"] == token.claims["jti"]
            out.append(token.claims)
        return out
