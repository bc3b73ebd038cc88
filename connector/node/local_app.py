"""Composition of the local listener: the agencies' API and its fan-out, peer health, discovery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from connector.approvals.awaiting import AWAITING, Awaiting
from connector.enquiries.log import EnquiryLog
from connector.node.metrics import peers_view
from connector.node.node import ENQUIRY_LOG, NODE, RECORDS, Node
from connector.node.scheduler import SCHEDULER, Scheduler
from connector.outbound.agencies import AgencyDirectory
from connector.outbound.fanout import FanOut
from connector.peers.breaker import Breakers
from connector.peers.client import PeerClient, peer_session
from connector.peers.discovery import Announcement, Discovered, discovery_ctx
from connector.peers.health import HealthMonitor
from connector.peers.trust import TrustStore
from connector.records.store import RecordStore
from connector.server.gate import GATE, AgencyGate
from connector.server.local_api import make_local_app
from connector.server.local_checks import LOCAL_CHECKS, MAX_BODY, LocalChecks, add_routes
from connector.server.local_releases import add_release_routes
from connector.server.problems import REJECTIONS
from connector.server.rejectlog import RejectionLog

FANOUT = web.AppKey("fanout", FanOut)
HEALTH = web.AppKey("health", HealthMonitor)
SESSION = web.AppKey("peer_session", aiohttp.ClientSession)
BREAKERS = web.AppKey("breakers", Breakers)
DISCOVERED = web.AppKey("discovered", Discovered)
# The trust store in force, with the addresses discovery found when it is on.
TRUST: web.AppKey[Callable[[], TrustStore]] = web.AppKey("trust")


def build_local_app(
    node: Node,
    *,
    records: RecordStore,
    enquiry_log: EnquiryLog,
    scheduler: Scheduler,
    peer_port: int,
) -> web.Application:
    """The local listener's app, on the service's record store, enquiry log (one group
    commit for both directions) and scheduler; `peer_port`: where the peer listener
    listens, which discovery announces."""
    s = node.settings
    gate = AgencyGate(
        AgencyDirectory(s.state_path(s.federation.agencies_file)),
        failures=s.federation.auth_failures,
        window_s=s.federation.auth_failure_window_s,
        clock=time.monotonic,
    )
    rejections = RejectionLog(clock=time.monotonic, counted=node.metrics.rejections_of("local"))
    app = make_local_app(
        node.live,
        rejections,
        gate,
        hosts=s.federation.local_hosts,
        max_body=MAX_BODY,
        metrics=node.metrics,
    )
    app[REJECTIONS] = rejections  # for what the listener refuses before the app
    app[NODE] = node
    app[RECORDS] = records
    app[ENQUIRY_LOG] = enquiry_log
    app[SCHEDULER] = scheduler
    app[BREAKERS] = Breakers(
        threshold=s.federation.breaker_threshold, cooldown=s.federation.breaker_cooldown_s
    )
    app[TRUST] = node.live.current_trust
    add_routes(app)
    add_release_routes(app)
    app.on_shutdown.append(_end_streams)
    app.cleanup_ctx.extend([session_ctx, fanout_ctx, local_checks_ctx, health_ctx, releases_ctx])
    if s.discovery.mdns:
        discovered = Discovered(
            node=s.node, path=s.state_path(s.discovery.discovered_file), clock=node.clock
        )
        app[DISCOVERED] = discovered
        app[TRUST] = discovered.view(node.live.current_trust)
        announcement = Announcement(
            node=s.node,
            kid=node.signer.kid,
            host=s.listen.peer.host,
            port=peer_port,
            interfaces=tuple(s.discovery.interfaces),
        )
        app.cleanup_ctx.append(discovery_ctx(announcement, discovered, node.live.current_trust))
    return app


# --- one cleanup_ctx generator per resource ---------------------------------------------------


async def session_ctx(app: web.Application) -> AsyncIterator[None]:
    async with peer_session() as session:
        app[SESSION] = session
        yield


async def fanout_ctx(app: web.Application) -> AsyncIterator[None]:
    node = app[NODE]
    fanout = node.fanout(app[SESSION], app[ENQUIRY_LOG], app[BREAKERS], metrics=node.metrics)
    app[FANOUT] = fanout
    yield
    await fanout.drain()  # queries in flight get their log rows before the log closes


async def _end_streams(app: web.Application) -> None:
    """Open release streams end (`done`, `ended` closing) before the listener waits for
    its handlers, so a stopping node does not wait for them."""
    checks = app.get(LOCAL_CHECKS)
    if checks is not None:
        checks.closing.set()


async def local_checks_ctx(app: web.Application) -> AsyncIterator[None]:
    """What the agencies' API works with, once the fan-out exists."""
    s = app[NODE].settings
    app[LOCAL_CHECKS] = LocalChecks(
        node=s.node,
        agencies=app[GATE],
        policy=app[NODE].live.current_policy,
        trust=app[TRUST],
        store=app[RECORDS],
        fanout=app[FANOUT],
        default_deadline_ms=s.federation.deadline_ms,
        heartbeat_s=s.approvals.stream_heartbeat_s,
        stream_max_s=s.approvals.stream_max_s,
    )
    yield


async def releases_ctx(app: web.Application) -> AsyncIterator[None]:
    """The `releases` job: the releases peers hold for their operators asked for until
    decided (protocol.md §15.2); first at once, so a restarted node resumes where it was."""
    node = app[NODE]
    s = node.settings
    awaiting = Awaiting(
        node=s.node,
        client=PeerClient(
            session=app[SESSION],
            signer=node.signer,
            node=s.node,
            clock=node.clock,
            timeout=s.outgoing.timeout,
        ),
        enquiry_log=app[ENQUIRY_LOG],
        trust=app[TRUST],
        clock=node.clock,
        poll_interval=s.approvals.poll_interval_s,
        agency_channels=s.approvals.agency_channels,
        agency_active=app[GATE].directory.active,
    )
    app[AWAITING] = awaiting
    app[SCHEDULER].every("releases", s.approvals.poll_interval_s, awaiting.run, at_once=True)
    yield


async def health_ctx(app: web.Application) -> AsyncIterator[None]:
    node = app[NODE]
    s = node.settings
    monitor = HealthMonitor(
        session=app[SESSION],
        trust=app[TRUST],
        breakers=app[BREAKERS],
        path=s.state_path(s.federation.health_file),
        node=s.node,
        clock=node.clock,
        monotonic=asyncio.get_running_loop().time,
        timeout=s.outgoing.timeout,
        warn_days=s.federation.key_expiry_warning_days,
        repin=node.live.repin,
    )
    app[HEALTH] = monitor
    app[FANOUT].on_answered = monitor.exchanged
    node.metrics.view(
        "peers",
        peers_view(
            trust=app[TRUST],
            breakers=app[BREAKERS],
            health=monitor,
            monotonic=asyncio.get_running_loop().time,
        ),
    )
    # The first run is at once, so `peers status` has something to show and the connections
    # to every peer are warm before a check; held up by a busy loop, a run runs late (once).
    app[SCHEDULER].every(
        "peer-health",
        s.federation.health_interval_s,
        monitor.run_once,
        at_once=True,
        skip_after=None,
    )
    yield
    node.metrics.unview("peers")
    app[FANOUT].on_answered = None
