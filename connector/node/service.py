"""Composition root: builds every object from the settings and runs the node's lifecycles."""

from __future__ import annotations

import asyncio
import gc
import signal

import structlog
from aiohttp import web

from connector.errors import ConfigError
from connector.node.local_app import build_local_app
from connector.node.node import Node
from connector.node.peer_app import ENQUIRY_LOG, RECORDS, build_peer_app
from connector.node.sdnotify import SystemdNotifier
from connector.server.inflight import InFlight
from connector.server.peer_api import IDENTITY

log = structlog.get_logger(__name__)

# Node is imported from here by commands written before node/node.py held it.
__all__ = ["Node", "Service", "serve"]


# --- running ---------------------------------------------------------------------------------


class Service:
    """A running node: the peer listener (TLS) and the local listener."""

    def __init__(
        self, node: Node, *, notifier: SystemdNotifier | None = None, shutdown_timeout: float = 25.0
    ) -> None:
        self.node = node
        self.notifier = notifier or SystemdNotifier.from_env({})
        self.shutdown_timeout = shutdown_timeout
        self.inflight = InFlight()
        self.peer_app = build_peer_app(node, self.inflight)
        self.local_app = build_local_app(
            node,
            records=lambda: self.peer_app[RECORDS],
            enquiry_log=lambda: self.peer_app[ENQUIRY_LOG],
            peer_port=lambda: self.peer_port,
        )
        self._runners: list[web.AppRunner] = []
        self.peer_port = 0
        self.local_port = 0

    async def start(self) -> None:
        try:
            await self._start()
        except OSError as exc:
            await self.stop()
            raise ConfigError(
                f"cannot listen: {exc.strerror or exc}"
                f" ({exc.filename or 'check listen: in connector.yaml'})"
            ) from exc

    async def _start(self) -> None:
        s = self.node.settings
        peer_runner = web.AppRunner(
            self.peer_app, shutdown_timeout=self.shutdown_timeout, access_log=None
        )
        await peer_runner.setup()
        self._runners.append(peer_runner)
        await web.TCPSite(
            peer_runner,
            s.listen.peer.host,
            s.listen.peer.port,
            ssl_context=self.node.ssl_context(),
            backlog=1024,
        ).start()
        self.peer_port = int(peer_runner.addresses[0][1])
        local_runner = web.AppRunner(self.local_app, shutdown_timeout=5.0, access_log=None)
        await local_runner.setup()
        self._runners.append(local_runner)
        await web.TCPSite(local_runner, s.listen.local.host, s.listen.local.port).start()
        self.local_port = int(local_runner.addresses[0][1])
        if s.listen.peer.port == 0 and not s.public_url:
            self.peer_app[IDENTITY].url = f"https://{s.listen.peer.host}:{self.peer_port}"
        log.info(
            "node_started",
            node=s.node,
            peer_port=self.peer_port,
            local_port=self.local_port,
            policy=self.node.live.policy.digest,
            peers=sorted(self.node.live.trust.peers),
        )

    def reload(self) -> None:
        self.notifier.reloading()
        report = self.node.live.reload()
        log.info(
            "reloaded",
            policy_changed=report.policy_changed,
            peers_changed=report.peers_changed,
            problems=report.problems,
        )
        self.notifier.ready(
            status="degraded: " + "; ".join(report.problems) if report.problems else "ready"
        )

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, then close the databases."""
        self.node.live.draining = True
        if self._runners:
            peer_runner = self._runners[0]
            for site in list(peer_runner.sites):
                await site.stop()
            in_flight = self.inflight.count
            drained = await self.inflight.drain(self.shutdown_timeout)
            log.info("node_drained", requests=in_flight, complete=drained)
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        log.info("node_stopped", node=self.node.settings.node)


async def serve(node: Node, *, notifier: SystemdNotifier) -> None:
    """Run until SIGTERM or SIGINT; SIGHUP reloads policies and peers."""
    node.load_live()
    service = Service(node, notifier=notifier)
    await service.start()
    # Everything built so far lives as long as the process: keep it out of the collector's
    # full passes, which otherwise stall every request in flight for tens of milliseconds.
    gc.collect()
    gc.freeze()
    # A fan-out holds a few thousand young containers per hundred peers while its answers
    # come in (tasks, responses, claims), nearly all freed by reference counting. At the
    # default threshold (700) the collector walks that live set some twenty times per
    # fan-out to 196 peers, 35 µs of CPU per peer; at 20,000 it rarely runs mid-fan-out,
    # and the garbage it leaves for later is bounded by the threshold.
    gc.set_threshold(20_000, *gc.get_threshold()[1:])
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, service.reload)
    notifier.ready(status="ready")
    try:
        await stop.wait()
    finally:
        notifier.stopping()
        log.info("node_stopping", node=node.settings.node)
        await service.stop()
