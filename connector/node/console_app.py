"""Composition of the console listener: the operator console on the node's state in force,
its files, its admin audit trail and a reader of its enquiry log."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web

from connector.approvals.service import Approvals
from connector.console.accounts import AccountDirectory
from connector.console.reader import Reader
from connector.console.routes import build_console
from connector.console.sessions import Sessions
from connector.console.sources import Console, Maintenance
from connector.console.web import CONSOLE, session_middleware
from connector.inbound.ratelimit import RateLimiter
from connector.logs import RateLimitedLog
from connector.node.maintenance import MAINTENANCE_FILE, switch_off, switch_on
from connector.node.maintenance import Maintenance as Switched
from connector.node.node import Node
from connector.server.connections import ConnectionLimits
from connector.server.gate import host_middleware
from connector.settings.config import Listeners
from connector.trail.entry import TRAIL_FILE

# A few operators, each with a few tabs and one live stream per tab.
CONSOLE_MAX_CONNECTIONS = 256
CONSOLE_MAX_PER_ADDRESS = 64
CONSOLE_BACKLOG = 64


def console_limits(listen: Listeners) -> ConnectionLimits:
    """The console listener's caps, and the timeouts both other listeners have. A live
    stream is a response its handler writes, so it has no deadline but the session's."""
    t = listen.timeouts
    console = listen.console
    total = (console.max_connections if console else None) or CONSOLE_MAX_CONNECTIONS
    return ConnectionLimits(
        max_connections=total,
        max_per_address=min(
            total,
            (console.max_connections_per_address if console else None) or CONSOLE_MAX_PER_ADDRESS,
        ),
        tls_handshake_s=t.tls_handshake_s,
        header_s=t.header_s,
        body_s=t.body_s,
        keepalive_s=t.keepalive_s,
        backlog=CONSOLE_BACKLOG,
    )


def build_console_app(node: Node, *, approvals: Approvals | None) -> web.Application:
    """The console on `node`; `approvals`: the peer app's service, on the log the node
    serves (a decision commits through its group commit)."""
    s = node.settings
    listener = s.listen.console
    assert listener is not None
    maintenance_path = s.state_path(MAINTENANCE_FILE)

    def maintenance_on(account: str, reason: str | None) -> None:
        switch_on(
            maintenance_path,
            Switched(since=node.clock(), login=f"console:{account}", sudo_user=None, reason=reason),
        )

    console = Console(
        node=s.node,
        secure=s.console_tls,
        clock=node.clock,
        monotonic=time.monotonic,
        accounts=AccountDirectory(s.state_path(s.console.users_file)),
        sessions=Sessions(idle_timeout_s=s.console.idle_timeout_s, clock=time.monotonic),
        failures=RateLimiter(time.monotonic),
        login_failures=s.console.login_failures,
        login_window_s=s.console.login_window_s,
        refusals=RateLimitedLog("console_login_refused", clock=time.monotonic, per_key=10),
        reader=Reader(s.enquiries_url),
        policy=node.live.current_policy,
        trust=node.live.current_trust,
        problems=lambda: node.live.problems,
        health_file=s.state_path(s.federation.health_file),
        peers_file=s.path(s.peers_file),
        agencies_file=s.state_path(s.federation.agencies_file),
        trail_file=s.state_path(TRAIL_FILE),
        maintenance=Maintenance(
            status=lambda: node.live.maintenance,
            on=maintenance_on,
            off=lambda: switch_off(maintenance_path),
        ),
        rejections=lambda: int(
            sum(
                sample.value
                for metric in node.metrics.rejections.collect()
                for sample in metric.samples
                if sample.name.endswith("_total")
            )
        ),
        certificate_expires=lambda: node.keyring.certificate_expires(),
        approvals=approvals,
    )
    app = build_console(console)
    # Before the session is looked at: a page another site's name reaches (DNS rebinding)
    # is refused whatever it carries.
    app.middlewares.insert(
        app.middlewares.index(session_middleware),
        host_middleware(s.console.hosts, setting="console.hosts"),
    )
    app.cleanup_ctx.append(reader_ctx)
    return app


async def reader_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[CONSOLE].reader.close()
