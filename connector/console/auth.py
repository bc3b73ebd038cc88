"""Logging in and out: the password (Argon2) and second factor checked off the loop, failed
attempts limited per account and per address, a new session id at each login."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from connector.console.accounts import ACCOUNT_NAME, password_matches, totp_matches
from connector.console.sessions import Sessions
from connector.console.web import (
    CONSOLE,
    HASHING,
    SESSION_COOKIE,
    VISITOR_COOKIE,
    audit,
    local_target,
    operator_of,
    render,
    set_cookie,
)
from connector.errors import FormExpired
from connector.policy.model import Rate
from connector.trail.entry import Action, Actor

log = structlog.get_logger(__name__)


async def login_page(request: web.Request) -> web.Response:
    return _login_form(request, problem=None, status=200)


def _login_form(request: web.Request, *, problem: str | None, status: int) -> web.Response:
    console = request.app[CONSOLE]
    visitor = request.cookies.get(VISITOR_COOKIE) or Sessions.new_visitor()
    response = render(
        request,
        "login.html",
        {
            "login_token": console.sessions.login_token(visitor),
            "next": local_target(request.query.get("next")),
            "problem": problem,
        },
        status=status,
    )
    set_cookie(response, console, VISITOR_COOKIE, visitor)
    return response


async def login(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    form = await request.post()
    token = form.get("login_token")
    if not console.sessions.login_token_ok(
        request.cookies.get(VISITOR_COOKIE), token if isinstance(token, str) else None
    ):
        raise FormExpired("this login form is not from this browser's visit: open the page again")
    name = str(form.get("name", "")).strip().lower()
    password = str(form.get("password", ""))
    code = str(form.get("code", ""))
    address = request.remote or "-"
    target = name if ACCOUNT_NAME.match(name) else "?"
    rate = Rate(
        count=console.login_failures,
        per_seconds=console.login_window_s,
        text=f"{console.login_failures}/{console.login_window_s}s",
    )
    keys = (("console-account", target), ("console-address", address))
    wait = max(console.failures.retry_after(k, rate) for k in keys)
    if wait > 0:
        # Not recorded in the trail: whoever reaches the listener could fill it. The
        # failures that led here are.
        console.refusals(address, "locked", account=target, retry_after=round(wait, 1))
        response = _login_form(request, problem="locked", status=429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    account = console.accounts.get(target)
    async with request.app[HASHING]:
        ok = await asyncio.to_thread(password_matches, account, password)
    why = None
    if not ok:
        why = "password"
    elif account is None or not account.enabled:
        why = "disabled"
    elif not totp_matches(account, code, now=console.clock()):
        why = "code"
    if why is not None:
        for k in keys:
            console.failures.try_acquire(k, rate)
        await audit(
            request,
            Action.CONSOLE_LOGIN_REFUSED,
            target,
            actor=Actor(kind="console", name=target),
            address=address,
            reason=why,
        )
        console.refusals(address, why, account=target)
        return _login_form(request, problem="refused", status=401)
    assert account is not None
    # Recorded before the session exists: nobody acts in the console unrecorded.
    await audit(
        request,
        Action.CONSOLE_LOGIN,
        account.name,
        actor=Actor(kind="console", name=account.name),
        address=address,
        role=account.role.value,
    )
    # A new id whatever cookie came with the request: an id planted before the login is
    # never the one the login gives.
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        console.sessions.end(old)
    session = console.sessions.start(account.name)
    log.info("console_login", account=account.name, address=address)
    response = web.HTTPSeeOther(local_target(str(form.get("next", "/"))))
    set_cookie(response, console, SESSION_COOKIE, session.id)
    response.del_cookie(VISITOR_COOKIE, path="/")
    raise response


async def logout(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    operator = operator_of(request)
    console.sessions.end(operator.session.id)
    await audit(request, Action.CONSOLE_LOGOUT, operator.account.name)
    log.info("console_logout", account=operator.account.name)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response
