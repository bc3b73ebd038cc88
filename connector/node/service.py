"""Composition root: builds every object from the settings and runs the node's lifecycles."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import structlog
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from connector.crypto.jws import Signer
from connector.crypto.keyfiles import certificate_fingerprint, read_signing_key
from connector.enquiries.checkpoints import sign_checkpoint
from connector.enquiries.log import EnquiryLog
from connector.errors import ConfigError
from connector.inbound.answering import Answerer
from connector.inbound.ratelimit import RateLimiter
from connector.node.live import LiveState
from connector.node.local_app import build_local_app
from connector.node.sdnotify import SystemdNotifier
from connector.notify.channels import build_senders
from connector.notify.digest import digest_trigger, make_digest
from connector.notify.dispatcher import Dispatcher, RetryPolicy
from connector.notify.outbox import Outbox
from connector.outbound.asking import Asker
from connector.peers.client import PeerClient
from connector.records.store import RecordStore
from connector.server.inflight import InFlight
from connector.server.peer_api import ANSWERER, IDENTITY, IdentityToken, make_peer_app
from connector.server.rejectlog import RejectionLog
from connector.settings.config import Settings
from connector.sources.model import Source, load_sources
from connector.sources.sync import sync

log = structlog.get_logger(__name__)

RECORDS = web.AppKey("records", RecordStore)
ENQUIRY_LOG = web.AppKey("enquiry_log", EnquiryLog)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """What every part of a node is built from: settings, identity, live policy and peers."""

    settings: Settings
    signer: Signer
    tls_fingerprint: str
    live: LiveState
    clock: Callable[[], float]

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] = time.time) -> Node:
        signer = Signer(read_signing_key(settings.path(settings.key_file)))
        try:
            cert = settings.path(settings.tls.cert).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the TLS certificate: {exc}") from exc
        live = LiveState(
            policy_dir=settings.path(settings.policy_dir),
            peers_file=settings.path(settings.peers_file),
            channels=frozenset(settings.notifications.channels),
        )
        return cls(
            settings=settings,
            signer=signer,
            tls_fingerprint=certificate_fingerprint(cert),
            live=live,
            clock=clock,
        )

    def load_live(self) -> None:
        """At start there is no older version to keep: a broken file stops the node."""
        for name, channel in self.settings.notifications.channels.items():
            if channel.digest:
                try:
                    digest_trigger(channel.digest)
                except ConfigError as exc:
                    raise ConfigError(f"notifications.channels.{name}: {exc.detail}") from exc
        report = self.live.reload()
        if report.problems:
            raise ConfigError(
                "; ".join(f"{k}: {v}" for k, v in report.problems.items()), problems=report.problems
            )

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        s = self.settings
        ctx.load_cert_chain(s.path(s.tls.cert), s.path(s.tls.key))
        return ctx

    def open_records(self, *, serving: bool = False) -> RecordStore:
        return RecordStore.open(self.settings.records_url, serving=serving)

    def open_enquiry_log(self, *, serving: bool = False) -> EnquiryLog:
        db = self.settings.databases
        return EnquiryLog.open(
            self.settings.enquiries_url,
            commit_delay=db.commit_delay_ms / 1000,
            max_batch=db.commit_max_rows,
            serving=serving,
        )

    @contextlib.asynccontextmanager
    async def asker(self) -> AsyncIterator[Asker]:
        """An Asker with its own client session and log handle, for commands and tests."""
        enquiry_log = self.open_enquiry_log()
        try:
            async with aiohttp.ClientSession() as session:
                client = PeerClient(
                    session=session,
                    signer=self.signer,
                    node=self.settings.node,
                    clock=self.clock,
                    timeout=self.settings.outgoing.timeout,
                )
                yield Asker(
                    node=self.settings.node,
                    client=client,
                    enquiry_log=enquiry_log,
                    policy=self.live.current_policy,
                    trust=self.live.current_trust,
                    clock=self.clock,
                    query_lifetime=self.settings.outgoing.query_lifetime,
                )
        finally:
            enquiry_log.close()


NODE = web.AppKey("node", Node)


# --- one cleanup_ctx generator per resource ---------------------------------------------------


async def records_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[NODE].open_records(serving=True)
    outdated = store.keys_outdated()
    if outdated:
        log.warning(
            "search_keys_outdated",
            categories=[c.value for c in outdated],
            hint="run `ncb-connector db upgrade` (or `records reindex`)",
        )
    app[RECORDS] = store
    yield
    await store.aclose()


async def enquiry_log_ctx(app: web.Application) -> AsyncIterator[None]:
    enquiry_log = app[NODE].open_enquiry_log(serving=True)
    app[ENQUIRY_LOG] = enquiry_log
    yield
    await enquiry_log.aclose()


async def answerer_ctx(app: web.Application) -> AsyncIterator[None]:
    node = app[NODE]
    monotonic = time.monotonic
    app[ANSWERER] = Answerer(
        node=node.settings.node,
        signer=node.signer,
        store=app[RECORDS],
        enquiry_log=app[ENQUIRY_LOG],
        policy=node.live.current_policy,
        trust=node.live.current_trust,
        limiter=RateLimiter(clock=monotonic),
        clock=node.clock,
        digest_only=frozenset(
            name for name, c in node.settings.notifications.channels.items() if c.digest_only
        ),
        hit_threshold=node.settings.matching.threshold,
        ref_checks=node.settings.matching.ref_checks,
    )
    app[IDENTITY] = IdentityToken(
        signer=node.signer,
        node=node.settings.node,
        tls_fingerprint=node.tls_fingerprint,
        url=node.settings.peer_url,
        clock=node.clock,
    )
    yield


async def policy_watch_ctx(app: web.Application) -> AsyncIterator[None]:
    """Policy and peers files are polled, so an edit takes effect without a signal."""
    node = app[NODE]
    interval = node.settings.policy_reload_interval

    async def watch() -> None:
        while True:
            await asyncio.sleep(interval)
            node.live.reload_if_changed()

    task = asyncio.create_task(watch()) if interval > 0 else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def checkpoint_ctx(app: web.Application) -> AsyncIterator[None]:
    """The log's head goes to the journal every minute and at exit: outside the database, so
    `enquiries verify --expect` can later prove that no newest rows were removed."""
    enquiry_log, node = app[ENQUIRY_LOG], app[NODE]
    last: list[tuple[int, str]] = [(-1, "")]

    def checkpoint() -> None:
        head = enquiry_log.head()
        if head != last[0]:
            last[0] = head
            log.info(
                "enquiry_log_checkpoint",
                seq=head[0],
                hash=head[1],
                expect=f"{head[0]}:{head[1]}",
                signed=sign_checkpoint(
                    node.signer, node=node.settings.node, seq=head[0], head=head[1], at=node.clock()
                ),
            )

    async def every_minute() -> None:
        while True:
            checkpoint()
            await asyncio.sleep(CHECKPOINT_INTERVAL_S)

    task = asyncio.create_task(every_minute())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    checkpoint()


CHECKPOINT_INTERVAL_S = 60.0


async def notifications_ctx(app: web.Application) -> AsyncIterator[None]:
    """The outbox's dispatcher and the digests, as APScheduler jobs; a commit that adds
    notices wakes the dispatcher at once."""
    node = app[NODE]
    n = node.settings.notifications
    outbox = Outbox.open(node.settings.enquiries_url)
    released = outbox.release_leases(now=node.clock())
    if released:
        log.info("notifications_resumed", notices=released)
    async with aiohttp.ClientSession() as session:
        senders = build_senders(
            n.channels,
            signer=node.signer,
            node=node.settings.node,
            session=session,
            clock=node.clock,
            base_dir=node.settings.base_dir,
            env=os.environ,
        )
        dispatcher = Dispatcher(
            outbox=outbox,
            senders=senders,
            clock=node.clock,
            retry=RetryPolicy(
                initial_s=n.retry_initial_s, max_s=n.retry_max_s, max_age_s=n.max_age_hours * 3600
            ),
            per_channel=n.per_channel,
        )
        app[DISPATCHER] = dispatcher
        app[ENQUIRY_LOG].on_committed = dispatcher.wake
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.add_job(
            dispatcher.run_once,
            "interval",
            seconds=n.poll_interval_s,
            id="outbox",
            max_instances=1,
            coalesce=True,
            # Held up by a busy loop, a run runs late (once), not skipped.
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),
        )
        started = node.clock()
        for name, channel in n.channels.items():
            if channel.digest:
                scheduler.add_job(
                    _digest_job,
                    digest_trigger(channel.digest),
                    id=f"digest:{name}",
                    args=(app, name, started),
                    max_instances=1,
                    coalesce=True,
                )
        scheduler.start()
        yield
        scheduler.shutdown(wait=False)
        app[ENQUIRY_LOG].on_committed = None
        await dispatcher.close()  # before the session it sends through is closed
    outbox.close()


async def _digest_job(app: web.Application, channel: str, started: float) -> None:
    # A coroutine, so APScheduler runs it on the event loop, never in a worker thread beside
    # the loop's own use of the enquiry log's connection.
    node = app[NODE]
    notice = make_digest(
        app[ENQUIRY_LOG],
        channel=channel,
        node=node.settings.node,
        clock=node.clock,
        first_since=started,
    )
    log.info(
        "notification_digest_queued",
        channel=channel,
        notice=notice.id,
        enquiries=notice.body.get("enquiries"),
    )


async def sources_ctx(app: web.Application) -> AsyncIterator[None]:
    """Each source of sources.yaml synced on its own interval, as an APScheduler job. A sync
    runs in a worker thread with its own store connection: reading a national database
    takes seconds, and the loop keeps answering meanwhile."""
    node = app[NODE]
    sources = load_sources(node.settings.path(node.settings.sources_file)).sources
    if not sources:
        yield
        return
    scheduler = AsyncIOScheduler(timezone=UTC)
    for source in sources:
        scheduler.add_job(
            _sync_job,
            "interval",
            seconds=source.interval_s,
            id=f"source:{source.name}",
            args=(node, source),
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
    scheduler.start()
    yield
    scheduler.shutdown(wait=False)


async def _sync_job(node: Node, source: Source) -> None:
    def run() -> None:
        store = RecordStore.open(node.settings.records_url)
        try:
            sync(source, store, clock=node.clock)
        finally:
            store.close()

    try:
        await asyncio.to_thread(run)
    except ConfigError as exc:  # the source's message names it; never a traceback
        log.error("source_sync_failed", source=source.name, error=str(exc))


def build_peer_app(node: Node, inflight: InFlight) -> web.Application:
    app = make_peer_app(inflight, RejectionLog(clock=time.monotonic))
    app[NODE] = node
    app.cleanup_ctx.extend(
        [
            records_ctx,
            enquiry_log_ctx,
            checkpoint_ctx,
            answerer_ctx,
            notifications_ctx,
            policy_watch_ctx,
            sources_ctx,
        ]
    )
    return app


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
