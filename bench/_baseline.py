"""The baseline: a plain aiohttp JSON handler, over TLS and plain HTTP, in a process of its own."""

from __future__ import annotations

import argparse
import asyncio
import ssl
from collections.abc import Sequence

from aiohttp import web

from bench._serve import until_signalled


async def handle(request: web.Request) -> web.Response:
    """Read the body and answer a small JSON document: the least an HTTP API can do."""
    body = await request.read()
    return web.json_response({"ok": True, "bytes": len(body)})


async def readyz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


def make_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 + 1)
    app.router.add_post("/v1/query", handle)
    app.router.add_get("/readyz", readyz)
    return app


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """The same settings as the node's peer listener (connector.node.node.Node.ssl_context)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


async def serve(*, tls_port: int, plain_port: int, cert: str, key: str) -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(
        runner, "127.0.0.1", tls_port, ssl_context=tls_context(cert, key), backlog=1024
    ).start()
    await web.TCPSite(runner, "127.0.0.1", plain_port, backlog=1024).start()
    await until_signalled(runner)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._baseline", description=__doc__)
    p.add_argument("--tls-port", type=int, required=True)
    p.add_argument("--plain-port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    a = p.parse_args(argv)
    asyncio.run(serve(tls_port=a.tls_port, plain_port=a.plain_port, cert=a.cert, key=a.key))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
