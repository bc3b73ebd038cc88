"""One middleware renders every error as an RFC 9457 problem document and logs it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError
from aiohttp.typedefs import Handler, Middleware

from connector.errors import (
    PROBLEM_BASE,
    ConnectorError,
    MalformedRequest,
    PayloadTooLarge,
    ProtocolError,
    Unauthorized,
    UnsupportedContentEncoding,
)
from connector.server.rejectlog import RejectionLog

PROBLEM_MEDIA_TYPE = "application/problem+json"

REJECTIONS = web.AppKey("rejections", RejectionLog)
"""An app's RejectionLog, for the listener to log what it refuses before the app sees a
request (server/connections): one budget per address for both."""


def problem_response(error: ConnectorError, instance: str | None) -> web.Response:
    headers = {}
    retry_after = error.extra.get("retry_after")
    if isinstance(retry_after, int | float):
        headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="ncb-connector"'  # RFC 6750 §3
    return web.Response(
        status=error.status,
        body=orjson.dumps(error.problem(instance)),
        content_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _http_problem(exc: web.HTTPException, instance: str) -> web.Response:
    """aiohttp's own errors (404, 405, …) keep their status but take our problem format."""
    doc = {
        "type": PROBLEM_BASE + f"http_{exc.status}",
        "title": exc.reason,
        "status": exc.status,
        "detail": exc.reason,
        "code": f"http_{exc.status}",
        "instance": instance,
    }
    return web.Response(status=exc.status, body=orjson.dumps(doc), content_type=PROBLEM_MEDIA_TYPE)


_STATUS_PREFIX = re.compile(r"^\d{3}, message:\s*")
_ECHO = re.compile(r":?\s*b['\"].*$")


def parser_error(exc: BaseException | None, message: str | None = None) -> ProtocolError:
    """What aiohttp's HTTP parser refused (a request line, a header, the body's framing or
    encoding), as one of our errors: its first line, without the bytes it quotes back."""
    text = getattr(exc, "message", None) or message or (str(exc) if exc is not None else "")
    line = _STATUS_PREFIX.sub("", str(text).strip()).split("\n", 1)[0]
    line = _ECHO.sub("", line).strip().rstrip(":.").strip()[:160]
    cause = exc.__cause__ if exc is not None else None
    if isinstance(exc, ContentEncodingError) or isinstance(cause, ContentEncodingError):
        return UnsupportedContentEncoding(
            "the body's Content-Encoding is not supported: send it as is, or gzip or deflate"
        )
    return MalformedRequest(line or "not a valid HTTP/1.1 request")


def problem_middleware(rejections: RejectionLog) -> Middleware:
    """The middleware; rejections are logged through `rejections`, which bounds them."""

    def refuse(request: web.Request, error: ConnectorError) -> web.Response:
        rejections.rejected(
            remote=request.remote,
            path=request.path,
            status=error.status,
            code=error.code,
            detail=error.detail,
        )
        return problem_response(error, request.path)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ConnectorError as exc:
            if not exc.refusal:
                return problem_response(exc, request.path)
            return refuse(request, exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if isinstance(exc, web.HTTPRequestEntityTooLarge):
                return refuse(request, PayloadTooLarge("the request body is too large"))
            rejections.rejected(
                remote=request.remote,
                path=request.path,
                status=exc.status,
                code=f"http_{exc.status}",
                detail=exc.reason,
            )
            return _http_problem(exc, request.path)
        except (web.RequestPayloadError, HttpProcessingError) as exc:
            # A body that the parser refused once its handler was reading it (its chunks,
            # its length, its encoding).
            return refuse(request, parser_error(exc))
        except ConnectionError as exc:
            # The client went away while its body was read or its answer written: nobody
            # to answer, nothing to trace, and as many of them as anyone cares to close.
            rejections.disconnected(remote=request.remote, path=request.path, error=exc)
            return problem_response(ProtocolError("the connection was closed"), request.path)
        except Exception:
            rejections.failed(remote=request.remote, path=request.path)
            return problem_response(ConnectorError("an internal error occurred"), request.path)

    return middleware


def flush_rejections(rejections: RejectionLog) -> Callable[[web.Application], Awaitable[None]]:
    """An on_cleanup handler: the suppressed counts still open are logged at shutdown."""

    async def flush(_app: web.Application) -> None:
        rejections.flush()

    return flush
