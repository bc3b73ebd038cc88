"""Composition of the local listener: agencies, the shared fan-out client, health, discovery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from connector.enquiries.log import EnquiryLog
from connector.node.node import Node
from connector.outbound.agencies import AgencyDirectory
from connector.outbound.fanout import FanOut, PeerOutcome
from connector.outbound.prepare import Prepared, prepare
from connector.outbound.request import Request
from connector.peers.breaker import Breakers
from connector.peers.client import PeerClient
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


def peer_session(*, limit_per_host: int = 16) -> aiohttp.ClientSession:
    """One session for every peer: connections are kept alive (60 s, under aiohttp's server
    default of 75 s) and reused; no global cap, since a fan-out to 196 peers needs 196."""
    connector = aiohttp.TCPConnector(
        limit=0, limit_per_host=limit_per_host, keepalive_timeout=60, ttl_dns_cache=300
    )
    return aiohttp.ClientSession(connector=connector)


def make_fanout(
    node: Node, session: aiohttp.ClientSession, enquiry_log: EnquiryLog, breakers: Breakers
) -> FanOut:
    s = node.settings
    loop = asyncio.get_running_loop()
    client = PeerClient(
        session=session,
        signer=node.signer,
        node=s.node,
        clock=node.clock,
        timeout=s.outgoing.timeout,
    )
    return FanOut(
        node=s.node,
        client=client,
        enquiry_log=enquiry_log,
        breakers=breakers,
        clock=node.clock,
        monotonic=loop.time,
        peer_timeout=s.outgoing.timeout,
        query_lifetime=s.outgoing.query_lifetime,
    )


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
        fanout = make_fanout(node, app[SESSION], enquiry_log(), app[BREAKERS])
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


async def search_once(
    node: Node,
    request: Request,
    *,
    peers: Sequence[str] | Literal["*"],
    deadline_s: float,
    on_update: Callable[[Prepared, Mapping[str, PeerOutcome]], None],
) -> tuple[Prepared, dict[str, PeerOutcome]]:
    """One agency check from a command line, outside the running node: its own session,
    breakers and database handles, the same policy, log and verification."""
    enquiry_log = node.open_enquiry_log()
    store = node.open_records()
    try:
        async with peer_session() as session:
            fanout = make_fanout(node, session, enquiry_log, Breakers())
            prepared = await prepare(
                node=node.settings.node,
                request=request,
                peers=peers,
                policy=node.live.current_policy(),
                trust=node.live.current_trust(),
                store=store,
            )
            outcomes: dict[str, PeerOutcome] = {}
            on_update(prepared, outcomes)
            async for o in fanout.run(
                request,
                prepared.plans,
                trust=prepared.trust,
                policy_digest=prepared.policy_digest,
                deadline_s=deadline_s,
            ):
                outcomes[o.peer] = o
                on_update(prepared, outcomes)
            return prepared, outcomes
    finally:
        store.close()
        enquiry_log.close()
