"""What admins change from the console: the same functions the commands call (`agencies`,
`notifications retry`, `maintenance`), each change recorded in the admin audit trail under
the operator's account."""

from __future__ import annotations

import asyncio
import hashlib

import structlog
from aiohttp import web

from connector.console.accounts import Role
from connector.console.pages import agencies
from connector.console.web import CONSOLE, audit, render, require
from connector.errors import ConnectorError, InvalidRequest, NotFound
from connector.outbound.agencies import rotate_agency, set_agency_enabled
from connector.peers.admin import update_peer
from connector.peers.trust import load_trust_store
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


def _digest(summary: str) -> str:
    return hashlib.sha256(summary.encode()).hexdigest()


async def repin(request: web.Request) -> web.Response:
    """A peer's key and certificate pinned anew, as `peers add --fetch --update` pins them:
    first what the peer presents now is shown (what a pinned key vouches for, and what must
    be compared with the peer's NCB by another channel); pinned only when the admin
    confirms that very summary, so a peer that changed between the two steps is not."""
    require(request, Role.ADMIN)
    console = request.app[CONSOLE]
    peer_id = request.match_info["peer"]
    known = load_trust_store(console.peers_file).get(peer_id)
    if known is None:
        raise NotFound(f"no trusted peer {peer_id}")
    form = await _form(request)
    confirmed = form.get("confirm", "")
    shown: list[str] = []

    def confirm(summary: str) -> bool:
        shown.append(summary)
        return bool(confirmed) and _digest(summary) == confirmed

    try:
        # update_peer fetches through asyncio.run: in a worker thread, off this loop.
        peer = await asyncio.to_thread(
            update_peer, console.peers_file, known, url=known.url, confirm=confirm
        )
    except ConnectorError as exc:
        return render(request, "repin.html", {"peer": known, "problem": exc.detail}, status=502)
    if peer is None:
        summary = shown[0] if shown else ""
        return render(
            request,
            "repin.html",
            {
                "peer": known,
                "problem": "changed" if confirmed else None,
                "summary": summary,
                "digest": _digest(summary),
            },
        )
    await audit(
        request,
        Action.PEER_UPDATED,
        peer.id,
        url=peer.url,
        keys=[k.key.kid for k in peer.keys],
        tls_fingerprint=peer.tls_fingerprint,
        insecure=peer.insecure,
    )
    log.info("console_peer_repinned", peer=peer.id, keys=[k.key.kid for k in peer.keys])
    raise web.HTTPSeeOther("/peers")


async def decide(request: web.Request) -> web.Response:
    """An approver's decision, through the approvals service like `approvals approve|deny`:
    the decision is a row of the enquiry log, then an entry of the admin audit trail naming
    the account; one decided meanwhile (409), a missing reason (422) are said on a page."""
    operator = require(request, Role.APPROVER)
    service = request.app[CONSOLE].approvals
    if service is None:
        raise NotFound("this node holds no approvals")
    form = await _form(request)
    verdict = form.get("verdict")
    if verdict not in ("approve", "deny"):
        raise InvalidRequest("choose approve or deny")
    approval_id = request.match_info["approval_id"]
    act = service.approve if verdict == "approve" else service.deny
    await act(approval_id, operator=operator.actor, reason=form.get("reason", ""))
    raise web.HTTPSeeOther("/approvals")
