"""Composition of the local listener: agencies, the shared fan-out client, health, discovery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from connector.enquiries.log import EnquiryLog
from connector.node.node import Node
from connector.outbound.agencies import AgencyDirectory
from connector.outbound.fanout import FanOut
from connector.peers.breaker import Breakers
from connector.peers.client import peer_session
from connector.peers.discovery import Discovered, discovery_ctx
from connector.peers.health import HealthMonitor
from connector.peers.trust import TrustStore
from connector.records.store import RecordStore
from connector.server.local_api import make_local_app
from connector.server.local_checks import LocalChecks, add_routes
from connector.server.rejectlog import RejectionLog

FANOUT = web.AppKey("fanout", FanOut)
HEALTH = web.AppKey("health", HealthMonitor)
SESSION = web.AppKey("peer_session", aiohttp.ClientSession)
BREAKERS = web.AppKey("breakers", Breakers)
DISCOVERED = web.AppKey("discovered", Discovered)


def build_local_app(
    node: Node,
    *,
    records: Callable[[], RecordStore],
    enquiry_log: Callable[[], EnquiryLog],
    peer_port: Callable[[], int],
) -> web.Application:
    """The local listener's app. The record store and the enquiry log are the peer app's (one
    connection each, one group commit for both directions); they exist once its runner is set
    up, which the Service does first."""
    s = node.settings
    app = make_local_app(node.live, RejectionLog(clock=time.monotonic))
    app[BREAKERS] = Breakers(
        threshold=s.federation.breaker_threshold, cooldown=s.federation.breaker_cooldown_s
    )
    trust: Callable[[], TrustStore] = node.live.current_trust
    discovered: Discovered | None = None
    if s.discovery.mdns:
        discovered = Discovered(
            node=s.node, path=s.state_path(s.discovery.discovered_file), clock=node.clock
        )
        trust = discovered.view(node.live.current_trust)
    add_routes(
        app,
        LocalChecks(
            node=s.node,
            agencies=AgencyDirectory(s.state_path(s.federation.agencies_file)),
            policy=node.live.current_policy,
            trust=trust,
            store=records,
            fanout=lambda: app[FANOUT],
            default_deadline_ms=s.federation.deadline_ms,
        ),
    )

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        async with peer_session() as session:
            app[SESSION] = session
            yield

    async def fanout_ctx(app: web.Application) -> AsyncIterator[None]:
        fanout = node.fanout(app[SESSION], enquiry_log(), app[BREAKERS])
        app[FANOUT] = fanout
        yield
        await fanout.drain()  # queries in flight get their log rows before the log closes

    async def health_ctx(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        monitor = HealthMonitor(
            session=app[SESSION],
            trust=trust,
            breakers=app[BREAKERS],
            path=s.state_path(s.federation.health_file),
            node=s.node,
            clock=node.clock,
            monotonic=loop.time,
            timeout=s.outgoing.timeout,
            warn_days=s.federation.key_expiry_warning_days,
        )
        app[HEALTH] = monitor
        scheduler = AsyncIOScheduler(timezone=UTC)
        # A coroutine job runs on the event loop; the first run is at once, so `peers status`
        # has something to show and the connections to every peer are warm before a check.
        scheduler.add_job(
            monitor.run_once,
            "interval",
            seconds=s.federation.health_interval_s,
            id="peer-health",
            max_instances=1,
            coalesce=True,
            # Held up by a busy loop, a run runs late (once), not skipped.
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),
        )
        scheduler.start()
        yield
        scheduler.shutdown(wait=False)

    app.cleanup_ctx.extend([session_ctx, fanout_ctx, health_ctx])
    if discovered is not None:
        app[DISCOVERED] = discovered
        app.cleanup_ctx.append(discovery_ctx(node, discovered, peer_port))
    return app
