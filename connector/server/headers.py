"""Response headers both listeners share: none that names the software serving them."""

from __future__ import annotations

from aiohttp import web


async def drop_server_header(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """An on_response_prepare handler: aiohttp's `Server` names Python and aiohttp with
    their versions, which helps only someone looking for a known flaw."""
    response.headers.popall("Server", None)


def quiet(app: web.Application) -> web.Application:
    """The app, its responses sent without a `Server` header."""
    app.on_response_prepare.append(drop_server_header)
    return app
