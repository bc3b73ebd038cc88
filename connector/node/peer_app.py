"""Composition of the peer listener: answering, identity, witnessing, notices, sources' syncs."""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import AsyncIterator, Mapping

import aiohttp
import structlog
from aiohttp import web
from apscheduler.triggers.cron import CronTrigger

from connector.approvals.release import Releaser
from connector.approvals.service import APPROVALS, Approvals
from connector.enquiries.log import EnquiryLog
from connector.enquiries.witnessed import WitnessStore
from connector.errors import ConfigError
from connector.inbound.afis import Afis
from connector.inbound.answering import Answerer
from connector.inbound.ratelimit import Limiter, RateLimiter
from connector.inbound.witnessing import Witness
from connector.node.node import ENQUIRY_LOG, NODE, RECORDS, Node
from connector.node.scheduler import SCHEDULER, Scheduler
from connector.notify.channels import Channel, build_senders
from connector.notify.digest import channel_triggers, make_digest
from connector.notify.dispatcher import Dispatcher, RetryPolicy
from connector.notify.outbox import Outbox
from connector.peers.client import PeerClient, peer_session
from connector.peers.witnesses import Witnesses
from connector.records.store import RecordStore
from connector.server.inflight import InFlight
from connector.server.peer_api import (
    ANSWERER,
    IDENTITY,
    PAUSED,
    RELEASER,
    WITNESS,
    IdentityToken,
    make_peer_app,
)
from connector.server.rejectlog import RejectionLog
from connector.settings.config import Notifications
from connector.sources.model import Source, load_sources
from connector.sources.sync import sync
from connector.trail.entry import TRAIL_FILE

log = structlog.get_logger(__name__)

DISPATCHER = web.AppKey("dispatcher", Dispatcher)
NOTIFY_SESSION = web.AppKey("notify_session", aiohttp.ClientSession)
WITNESSES = web.AppKey("witnesses", Witnesses)
AFIS = web.AppKey("afis", Afis)


def build_peer_app(
    node: Node,
    inflight: InFlight,
    *,
    records: RecordStore,
    enquiry_log: EnquiryLog,
    scheduler: Scheduler,
    limiter: Limiter | None = None,
    jobs: bool = True,
) -> web.Application:
    """The peer listener's app, on the service's record store, enquiry log and scheduler.
    `limiter`: rate limits shared with other processes (default: this process's own);
    `jobs=False`, a worker process's app: it answers, and leaves delivering notices, syncing
    sources and sending checkpoints to the node's main process."""
    rejections = RejectionLog(clock=time.monotonic, counted=node.metrics.rejections_of("peer"))
    app = make_peer_app(inflight, rejections)
    app[NODE] = node
    app[RECORDS] = records
    app[ENQUIRY_LOG] = enquiry_log
    app[SCHEDULER] = scheduler
    app[PAUSED] = node.live.paused
    answering = functools.partial(answerer_ctx, limiter=limiter)
    if not jobs:
        app.cleanup_ctx.extend(
            [afis_ctx, answering, functools.partial(witness_ctx, send=False), watch_notices_ctx]
        )
        return app
    app.cleanup_ctx.extend(
        [
            afis_ctx,
            answering,
            witness_ctx,
            notifications_ctx,
            sources_ctx,
            approvals_ctx,
            watch_notices_ctx,
        ]
    )
    return app


# --- one cleanup_ctx generator per resource ---------------------------------------------------


async def afis_ctx(app: web.Application) -> AsyncIterator[None]:
    """The NCB's own AFIS, when connector.yaml names one: asked over a session of its own,
    kept alive between checks."""
    link = app[NODE].settings.fingerprints.afis
    if link is None:
        yield
        return
    async with peer_session(limit_per_host=8) as session:
        app[AFIS] = Afis(link=link, session=session)
        yield


async def answerer_ctx(
    app: web.Application, *, limiter: Limiter | None = None
) -> AsyncIterator[None]:
    node = app[NODE]
    monotonic = time.monotonic
    app[ANSWERER] = Answerer(
        node=node.settings.node,
        signer=node.signer,
        store=app[RECORDS],
        enquiry_log=app[ENQUIRY_LOG],
        policy=node.live.current_policy,
        trust=node.live.current_trust,
        limiter=RateLimiter(clock=monotonic) if limiter is None else limiter,
        clock=node.clock,
        digest_only=_digest_only(node.settings.notifications),
        hit_threshold=node.settings.matching.threshold,
        ref_checks=node.settings.matching.ref_checks,
        metrics=node.metrics,
        matching=node.settings.matching,
        afis=app.get(AFIS),
    )
    approvals = Approvals(
        node=node.settings.node,
        enquiry_log=app[ENQUIRY_LOG],
        trail=node.settings.state_path(TRAIL_FILE),
        clock=node.clock,
    )
    app[APPROVALS] = approvals
    app[RELEASER] = Releaser(
        node=node.settings.node,
        signer=node.signer,
        approvals=approvals,
        enquiry_log=app[ENQUIRY_LOG],
        trust=node.live.current_trust,
        clock=node.clock,
        retry_after=node.settings.approvals.poll_interval_s,
        polled=node.metrics.release_polled,
    )
    app[IDENTITY] = IdentityToken(
        signer=node.signer,
        node=node.settings.node,
        published=node.keyring.identity,
        url=node.settings.peer_url,
        clock=node.clock,
    )
    yield


async def witness_ctx(app: web.Application, *, send: bool = True) -> AsyncIterator[None]:
    """Keeping the checkpoints peers send; sending ours to them, as a job of the node's
    scheduler, over a session of its own (a slow peer must not hold up an agency's check)."""
    node, scheduler = app[NODE], app[SCHEDULER]
    s = node.settings
    store = WitnessStore.open(s.enquiries_url)
    app[WITNESS] = Witness(
        node=s.node,
        signer=node.signer,
        store=store,
        trust=node.live.current_trust,
        clock=node.clock,
    )
    async with peer_session(limit_per_host=2) as session:
        if s.witness.send and send:
            witnesses = Witnesses(
                client=PeerClient(
                    session=session, signer=node.signer, node=s.node, clock=node.clock
                ),
                trust=node.live.current_trust,
                head=app[ENQUIRY_LOG].head,
            )
            app[WITNESSES] = witnesses
            # At once too: a node started on a log older than its witnesses hold hears so.
            scheduler.every(
                "witness", s.witness.interval_s, witnesses.run, at_once=True, skip_after=None
            )
        yield
    store.close()


async def approvals_ctx(app: web.Application) -> AsyncIterator[None]:
    """The `approvals` job: pending approvals past their deadline denied as expired, and
    reminders sent; at once too, so a node that was down catches up when it starts."""
    approvals = app[APPROVALS]

    async def job() -> None:
        await approvals.expire_due()
        approvals.remind_due()

    app[SCHEDULER].every(
        "approvals", app[NODE].settings.approvals.check_interval_s, job, at_once=True
    )
    yield


async def watch_notices_ctx(app: web.Application) -> AsyncIterator[None]:
    """Last in, first out: the watch searches denied answers still owe are done, and their
    notices committed, while the dispatcher that delivers them still runs."""
    yield
    await app[ANSWERER].drain()


async def notifications_ctx(app: web.Application) -> AsyncIterator[None]:
    """The outbox's dispatcher and the digests, as jobs of the node's scheduler; a commit
    that adds notices wakes the dispatcher at once."""
    node, scheduler = app[NODE], app[SCHEDULER]
    n = node.settings.notifications
    outbox = Outbox.open(node.settings.enquiries_url)
    released = outbox.release_leases(now=node.clock())
    if released:
        log.info("notifications_resumed", notices=released)
    async with aiohttp.ClientSession() as session:
        app[NOTIFY_SESSION] = session
        dispatcher = Dispatcher(
            outbox=outbox,
            senders=_senders(app, n),
            clock=node.clock,
            retry=_retry(n),
            per_channel=n.per_channel,
        )
        app[DISPATCHER] = dispatcher
        app[ENQUIRY_LOG].on_committed = dispatcher.wake
        # Held up by a busy loop, a pass runs late (once), not skipped.
        scheduler.every(
            "outbox", n.poll_interval_s, dispatcher.run_once, at_once=True, skip_after=None
        )
        _schedule_digests(app, _triggers(n), since=node.clock())
        yield
        # The service has stopped the scheduler: no pass is running.
        app[ENQUIRY_LOG].on_committed = None
        await dispatcher.close()  # before the session it sends through is closed
    outbox.close()


def reconfigure_notifications(app: web.Application, n: Notifications) -> None:
    """A reload's channels and delivery settings, from the dispatcher's next pass on; the
    old ones stay in force if the new ones do not build (a ConfigError names the channel).
    Deliveries in flight finish with the sender they started with."""
    if DISPATCHER not in app:  # a worker process: the main process delivers
        app[ANSWERER].digest_only = _digest_only(n)
        return
    senders = _senders(app, n)
    triggers = _triggers(n)
    dispatcher, scheduler = app[DISPATCHER], app[SCHEDULER]
    dispatcher.senders = senders
    dispatcher.retry = _retry(n)
    dispatcher.per_channel = n.per_channel
    app[ANSWERER].digest_only = _digest_only(n)
    scheduler.reschedule("outbox", n.poll_interval_s)
    for job in scheduler.jobs():
        if job.id.startswith("digest:"):
            scheduler.remove(job.id)
    _schedule_digests(app, triggers, since=app[NODE].clock())
    dispatcher.wake()  # notices held for a channel that now exists go out now


def _senders(app: web.Application, n: Notifications) -> dict[str, Channel]:
    node = app[NODE]
    return build_senders(
        n.channels,
        signer=node.signer,
        node=node.settings.node,
        session=app[NOTIFY_SESSION],
        clock=node.clock,
        base_dir=node.settings.base_dir,
        env=os.environ,
    )


def _retry(n: Notifications) -> RetryPolicy:
    return RetryPolicy(
        initial_s=n.retry_initial_s, max_s=n.retry_max_s, max_age_s=n.max_age_hours * 3600
    )


def _digest_only(n: Notifications) -> frozenset[str]:
    return frozenset(name for name, c in n.channels.items() if c.digest_only)


def _triggers(n: Notifications) -> dict[str, CronTrigger]:
    return channel_triggers({name: c.digest for name, c in n.channels.items()})


def _schedule_digests(
    app: web.Application, triggers: Mapping[str, CronTrigger], *, since: float
) -> None:
    for name, trigger in triggers.items():
        app[SCHEDULER].add(
            f"digest:{name}", trigger, functools.partial(_digest_job, app, name, since)
        )


async def _digest_job(app: web.Application, channel: str, started: float) -> None:
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
    """Each source of sources.yaml synced on its own interval, as a job of the node's
    scheduler. A sync runs in a worker thread with its own store connection: reading a
    national database takes seconds, and the loop keeps answering meanwhile."""
    node, scheduler = app[NODE], app[SCHEDULER]
    for source in load_sources(node.settings.path(node.settings.sources_file)).sources:
        scheduler.every(
            f"source:{source.name}",
            source.interval_s,
            functools.partial(_sync_job, node, source),
            at_once=True,
        )
    yield


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
