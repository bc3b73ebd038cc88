"""The console's aiohttp app: templates, languages, the session and CSRF checks every
request passes, security headers, errors as pages, and recording what operators do."""

from __future__ import annotations

import asyncio
import gettext
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from connector.console.accounts import Account, Role
from connector.console.i18n import (
    LANGUAGE_COOKIE,
    language_of,
    load_catalogues,
    template_gettext,
)
from connector.console.overview import result_status
from connector.console.sessions import Session, same_token
from connector.console.sources import Console
from connector.enquiries.entry import utc_iso
from connector.errors import ConnectorError, FormExpired, NotAllowed
from connector.trail.entry import Action, Actor, Detail
from connector.trail.file import record

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
CONSOLE = web.AppKey("console", Console)
CATALOGUES: web.AppKey[dict[str, gettext.NullTranslations]] = web.AppKey("catalogues")
SESSION_COOKIE = "ncb_console"
# The login form's token is bound to this cookie: no session exists before the password.
VISITOR_COOKIE = "ncb_console_login"
# Paths a visitor without a session may ask for.
OPEN_PATHS = ("/login", "/static/", "/language")
_OPERATOR = "ncb_operator"
# Password checks at once: each takes Argon2's 64 MiB and a core for a tenth of a second,
# so a flood of logins waits its turn instead of exhausting the host's memory.
HASHING_AT_ONCE = 2
HASHING = web.AppKey("console_hashing", asyncio.Semaphore)

# Scripts and styles only from the console itself: an injected <script> or inline handler
# does not run even if a template were to let one through.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
        " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Operator:
    """Who sends this request: a live session and its account as the file says now."""

    session: Session
    account: Account

    @property
    def actor(self) -> Actor:
        return Actor(kind="console", name=self.account.name)


def operator_of(request: web.Request) -> Operator:
    found = request.get(_OPERATOR)
    if not isinstance(found, Operator):  # pragma: no cover - the middleware sets it
        raise NotAllowed("log in first")
    return found


def require(request: web.Request, role: Role) -> Operator:
    """The operator, when their role (read from the accounts file at this request, never
    from the form) allows `role`'s actions."""
    operator = operator_of(request)
    if not operator.account.role.allows(role):
        log.warning(
            "console_refused", account=operator.account.name, needs=role.value, path=request.path
        )
        raise NotAllowed(f"this needs the {role.value} role")
    return operator


async def audit(
    request: web.Request,
    action: Action,
    target: str,
    *,
    actor: Actor | None = None,
    **details: Detail,
) -> None:
    """What an operator did, in the admin audit trail (the same file and chain as the
    commands'), by their console account (`actor`: the account a login names, before it
    has a session); in a thread, since the append is synced."""
    console = request.app[CONSOLE]
    await asyncio.to_thread(
        record,
        console.trail_file,
        actor=actor or operator_of(request).actor,
        action=action,
        target=target,
        details=details,
        now=console.clock(),
    )


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    app = request.app
    catalogues = app[CATALOGUES]
    lang = language_of(request, catalogues)
    gettext_, ngettext_ = template_gettext(catalogues[lang])
    operator = request.get(_OPERATOR)
    role = operator.account.role if isinstance(operator, Operator) else None
    base: dict[str, Any] = {
        "node": app[CONSOLE].node,
        "lang": lang,
        "languages": sorted(catalogues),
        "gettext": gettext_,
        "ngettext": ngettext_,
        "operator": operator,
        "csrf": operator.session.csrf if isinstance(operator, Operator) else None,
        "can_approve": role is not None and role.allows(Role.APPROVER),
        "can_admin": role is not None and role.allows(Role.ADMIN),
        "path": request.path,
        "static_url": _static(app, "console.css"),
        "script_url": _static(app, "console.js"),
    }
    return aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)


def _static(app: web.Application, name: str) -> str:
    # With the file's digest in the URL: a new version is never read from a cache.
    return str(app.router["static"].url_for(filename=name))


def local_target(value: str | None) -> str:
    """Where to go after logging in: a path on this console, never another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ConnectorError as exc:
        if exc.status >= 500:
            log.error("console_failed", code=exc.code, detail=exc.detail, path=request.path)
        return render(
            request,
            "error.html",
            {"title": exc.title, "detail": exc.detail, "code": exc.code},
            status=exc.status,
        )


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(SECURITY_HEADERS)
        raise
    if not response.prepared:
        response.headers.update(SECURITY_HEADERS)
    return response


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request but the login page's needs a live session of an enabled account; every
    POST also needs that session's CSRF token in its form."""
    if request.path.startswith(OPEN_PATHS):
        return await handler(request)
    console = request.app[CONSOLE]
    session = console.sessions.touch(request.cookies.get(SESSION_COOKIE))
    account = None if session is None else console.accounts.get(session.account)
    if session is not None and (account is None or not account.enabled):
        console.sessions.end_account(session.account)
        session = None
    if session is None or account is None:
        if request.method == "GET":
            back = "" if request.path == "/" else "?" + urlencode({"next": request.path_qs})
            raise web.HTTPSeeOther("/login" + back)
        raise FormExpired("your session has ended: log in again, then send the form again")
    request[_OPERATOR] = Operator(session=session, account=account)
    if request.method == "POST":
        form = await request.post()
        given = form.get("csrf")
        if not same_token(session.csrf, given if isinstance(given, str) else None):
            log.warning("console_form_refused", account=account.name, path=request.path)
            raise FormExpired(
                "this form was not sent from this session's page: open the page again"
            )
    return await handler(request)


def set_cookie(response: web.StreamResponse, console: Console, name: str, value: str) -> None:
    response.set_cookie(
        name, value, path="/", httponly=True, samesite="Strict", secure=console.secure
    )


def utc(ts: float | None) -> str:
    return "-" if ts is None else utc_iso(ts)[:19].replace("T", " ")


def make_console_app(console: Console) -> web.Application:
    """The app, without its routes (`connector.console.routes.add_routes` adds them)."""
    app = web.Application(
        middlewares=[headers_middleware, errors_middleware, session_middleware],
        client_max_size=64 * 1024,
    )
    app[CONSOLE] = console
    app[CATALOGUES] = load_catalogues()
    app[HASHING] = asyncio.Semaphore(HASHING_AT_ONCE)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
    )
    env.filters["utc"] = utc
    env.globals["status_of"] = result_status
    env.policies["ext.i18n.trimmed"] = True
    # Replaced per request by the language's own (the render context's gettext).
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    app.router.add_static("/static/", HERE / "static", name="static", append_version=True)
    return app


def language_response(request: web.Request) -> web.Response:
    lang = request.query.get("lang", "")
    back = local_target(request.query.get("next"))
    response = web.HTTPSeeOther(back)
    if lang in request.app[CATALOGUES]:
        set_cookie(response, request.app[CONSOLE], LANGUAGE_COOKIE, lang)
    raise response
