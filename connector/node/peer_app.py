"""Composition of the peer listener: answering, identity, notifications, sources, checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import structlog
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from connector.enquiries.checkpoints import sign_checkpoint
from connector.enquiries.log import EnquiryLog
from connector.errors import ConfigError
from connector.inbound.answering import Answerer
from connector.inbound.ratelimit import RateLimiter
from connector.node.node import Node
from connector.notify.channels import build_senders
from connector.notify.digest import digest_trigger, make_digest
from connector.notify.dispatcher import Dispatcher, RetryPolicy
from connector.notify.outbox import Outbox
from connector.records.store import RecordStore
from connector.server.inflight import InFlight
from connector.server.peer_api import ANSWERER, IDENTITY, IdentityToken, make_peer_app
from connector.server.rejectlog import RejectionLog
from connector.sources.model import Source, load_sources
from connector.sources.sync import sync

log = structlog.get_logger(__name__)

RECORDS = web.AppKey("records", RecordStore)
ENQUIRY_LOG = web.AppKey("enquiry_log", EnquiryLog)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
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
