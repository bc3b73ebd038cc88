"""What admins change from the console: the same functions the commands call (`agencies`,
`notifications retry`, `maintenance`), each change recorded in the admin audit trail under
the operator's account."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from connector.console.accounts import Role
from connector.console.pages import agencies
from connector.console.web import CONSOLE, audit, require
from connector.outbound.agencies import rotate_agency, set_agency_enabled
from connector.trail.entry import Action

log = structlog.get_logger(__name__)


async def _form(request: web.Request) -> dict[str, str]:
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}


async def retry_notices(request: web.Request) -> web.Response:
    require(request, Role.ADMIN)
    console = request.app[CONSOLE]
    form = await _form(request)
    notice = form.get("notice", "").strip()
    ids = [notice] if notice else None
    n = await console.reader.retry(ids, now=console.clock())
    if n:
        await audit(request, Action.NOTICES_RETRIED, notice or "dead", notices=n)
    raise web.HTTPSeeOther("/notifications?state=pending")


async def agency_state(request: web.Request) -> web.Response:
    require(request, Role.ADMIN)
    console = request.app[CONSOLE]
    agency_id = request.match_info["agency_id"]
    enabled = request.match_info["state"] == "enable"
    await asyncio.to_thread(
        set_agency_enabled, console.agencies_file, agency_id, enabled, now=console.clock()
    )
    await audit(request, Action.AGENCY_ENABLED if enabled else Action.AGENCY_DISABLED, agency_id)
    raise web.HTTPSeeOther("/agencies")


async def agency_rotate(request: web.Request) -> web.Response:
    """A new token, shown on this one response only (its hash alone is kept)."""
    require(request, Role.ADMIN)
    console = request.app[CONSOLE]
    agency_id = request.match_info["agency_id"]
    agency, token = await asyncio.to_thread(
        rotate_agency, console.agencies_file, agency_id, now=console.clock()
    )
    await audit(request, Action.AGENCY_ROTATED, agency.id)
    return await agencies(request, token=(agency.id, token))


async def maintenance(request: web.Request) -> web.Response:
    require(request, Role.ADMIN)
    console = request.app[CONSOLE]
    form = await _form(request)
    operator = require(request, Role.ADMIN)
    if form.get("switch") == "on":
        reason = form.get("reason", "").strip()[:200] or None
        await asyncio.to_thread(console.maintenance.on, operator.account.name, reason)
        await audit(request, Action.MAINTENANCE_ON, console.node, reason=reason)
    elif await asyncio.to_thread(console.maintenance.off):
        await audit(request, Action.MAINTENANCE_OFF, console.node)
    raise web.HTTPSeeOther("/")
