"""The running node: start, stop, reload, systemd notifications; `serve` runs it until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import signal
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import structlog
from aiohttp import web

from connector.approvals.service import APPROVALS
from connector.enquiries.archive import Archiver
from connector.enquiries.checkpoints import Checkpoints
from connector.enquiries.continuity import Admin
from connector.enquiries.log import EnquiryLog
from connector.errors import ConfigError
from connector.inbound.sharedlimits import RATE_LIMITS_FILE, SharedRateLimiter
from connector.logs import configure_logging
from connector.node.console_app import build_console_app, console_limits
from connector.node.keyring import expiry
from connector.node.local_app import build_local_app
from connector.node.metrics import Backlogs, node_view
from connector.node.node import Node
from connector.node.peer_app import build_peer_app, reconfigure_notifications
from connector.node.readiness import ReadinessChecks
from connector.node.scheduler import Scheduler
from connector.node.sdnotify import SystemdNotifier
from connector.node.worker_metrics import sum_workers
from connector.node.workers import Brief, Workers
from connector.records.store import RecordStore
from connector.server.connections import GuardedSite, listener_limits
from connector.server.inflight import InFlight
from connector.server.liblog import route_library_errors
from connector.server.peer_api import ANSWERER, IDENTITY
from connector.settings.changes import SettingsChanges, settings_changes
from connector.settings.config import Settings
from connector.storage.urls import sqlite_file
from connector.trail.entry import TRAIL_FILE
from connector.trail.watch import TrailWatch

log = structlog.get_logger(__name__)


CHECKPOINT_INTERVAL_S = 60.0
# How soon a running node notices its log file removed or replaced when idle; a commit
# looks too, so no answer leaves whose row went to a lost file.
LOG_WATCH_INTERVAL_S = 2.0
# How soon a running node notices an entry recorded in the admin audit trail, or the trail
# changed: a stat() each time, the file read only when it changed.
TRAIL_WATCH_INTERVAL_S = 5.0
# How soon a running node follows `keys rotate` and `keys renew-tls`, and each step of a
# rotation under way: one stat() of rotation.json otherwise.
KEYRING_INTERVAL_S = 1.0
# An expiring certificate is said once a day, not at every check.
EXPIRY_REMINDER_S = 86_400.0


class Service:
    """A running node. It opens the record store and the enquiry log once, for both
    listeners (one connection each, one group commit for both directions), and owns the
    scheduler that runs every periodic job; the peer listener (TLS) answers peers, the
    local listener serves agencies and health."""

    def __init__(
        self,
        node: Node,
        *,
        notifier: SystemdNotifier | None = None,
        shutdown_timeout: float = 25.0,
        reread: Callable[[], Settings] | None = None,
        config: Path | None = None,
        worker: int = 0,
        peer_port: int | None = None,
    ) -> None:
        self.node = node
        # 0: the node's main process; above: a worker process serving only the peer API on
        # `peer_port`, the port the main process bound (docs/architecture.md §6).
        self.worker = worker
        self._worker_port = peer_port
        # connector.yaml, for the worker processes to reread on SIGHUP.
        self.config = config
        self.workers: Workers | None = None
        # connector.yaml read again on reload; None: policies and peers only.
        self.reread = reread
        # The settings in force: those the node started with, and a reload's reloadable edits.
        self.settings = node.settings
        self.notifier = notifier or SystemdNotifier.from_env({})
        self.shutdown_timeout = shutdown_timeout
        self.inflight = InFlight()
        self.scheduler = Scheduler()
        self._resources = contextlib.AsyncExitStack()
        self._runners: list[web.AppRunner] = []
        self.peer_port = 0
        self.local_port = 0
        self.console_port = 0  # 0 also when listen.console is absent
        self._warned_expiry = float("-inf")

    # Set before start() when an admin accepts a log that does not hold the kept checkpoint.
    new_log: Admin | None = None

    # Made by start(): what the service opened and the two apps built on it.
    records: RecordStore
    enquiry_log: EnquiryLog
    peer_app: web.Application
    local_app: web.Application
    console_app: web.Application
    backlogs: Backlogs
    peer_tls: ssl.SSLContext

    async def start(self) -> None:
        try:
            await self._start()
        except OSError as exc:
            await self.stop()
            raise ConfigError(
                f"cannot listen: {exc.strerror or exc}"
                f" ({exc.filename or 'check listen: in connector.yaml'})"
            ) from exc
        except BaseException:
            await self._close()
            raise

    async def _start(self) -> None:
        if self.worker:
            await self._start_worker()
            return
        node, s = self.node, self.node.settings
        self.records = await self._resources.enter_async_context(node.serving_records())
        self.enquiry_log = await self._resources.enter_async_context(
            node.serving_enquiry_log(new_log=self.new_log)
        )
        # What /metrics reads besides counters; a database read still running when the node
        # stops is waited for before the databases close.
        backlogs = Backlogs(
            records=self.records,
            log_engine=self.enquiry_log.engine,
            # The channels in force: a reload of connector.yaml may change them.
            channels=lambda: sorted(self.settings.notifications.channels),
            clock=node.clock,
            monotonic=time.monotonic,
        )
        self.backlogs = backlogs
        node.metrics.view("node", node_view(node))
        node.metrics.view("backlogs", backlogs.collect, backlogs.refresh)
        self._resources.push_async_callback(backlogs.close)
        # The log's head goes to the journal every minute and at exit: outside the database,
        # so `enquiries verify --expect` can later prove that no newest rows were removed.
        checkpoints = Checkpoints(
            enquiry_log=self.enquiry_log,
            signer=node.signer,
            node=s.node,
            clock=node.clock,
            kept=node.kept_log(),
        )
        # The last checkpoint is written once every row is: after both apps have stopped.
        self._resources.callback(checkpoints.write)
        self.scheduler.every(
            "checkpoint", CHECKPOINT_INTERVAL_S, checkpoints.run, at_once=True, skip_after=None
        )
        if s.retention.archive_after_days > 0:
            archiver = Archiver(
                enquiry_log=self.enquiry_log,
                signer=node.signer,
                node=s.node,
                directory=s.state_path(s.retention.dir),
                after_days=s.retention.archive_after_days,
                clock=node.clock,
            )
            # First at once: a node restarted more often than the interval still archives.
            # In a worker thread: the node answers meanwhile.
            self.scheduler.every(
                "retention", s.retention.interval_s, archiver.run, at_once=True, skip_after=None
            )
        if self.enquiry_log.file is not None:
            self.scheduler.every("log-watch", LOG_WATCH_INTERVAL_S, self._watch_log, at_once=False)
        trail = TrailWatch(s.state_path(TRAIL_FILE))
        # The first look before the node serves: the trail's head is in the journal from
        # the start, and every later look holds the trail to it.
        await self._watch_trail(trail)
        self.scheduler.every(
            "admin-audit-watch",
            TRAIL_WATCH_INTERVAL_S,
            functools.partial(self._watch_trail, trail),
            at_once=False,
        )
        self._schedule_policy_watch(s.policy_reload_interval, was=0)
        self.scheduler.every(
            "keyring", KEYRING_INTERVAL_S, self._follow_keys, at_once=False, skip_after=None
        )
        checks = ReadinessChecks(
            directories=_writable_directories(s),
            floor_mb=s.readiness.min_free_mb,
            ping_records=self.records.ping,
            timeout=s.readiness.timeout_s,
            probe_log=lambda: self.enquiry_log.probe_write(node.clock()),
        )
        node.live.checks = checks
        # Once before the listeners open: /readyz never says ready before it has looked.
        await checks.run()
        self.scheduler.every(
            "readiness", s.readiness.interval_s, checks.run, at_once=False, skip_after=None
        )
        if self.notifier.watchdog_usec:
            # From the event loop, so a loop that is stuck (not just a process that lives)
            # misses its pings and systemd restarts it: twice per interval, as sd_watchdog
            # _enabled(3) advises.
            self.scheduler.every(
                "watchdog",
                max(self.notifier.watchdog_usec / 2_000_000, 0.1),
                self._ping_watchdog,
                at_once=True,
                skip_after=None,
            )
        # Before the keyring job can run: it swaps this context's certificate.
        self.peer_tls = node.ssl_context()
        self.scheduler.start()
        _, local_limits = listener_limits(s.listen.peer, s.listen.local, s.listen.timeouts)
        await self._serve_peers(s.listen.peer.port)
        if s.worker_count > 1:
            # Before the local listener: /readyz never says ready while a worker starts.
            self.workers = Workers(count=s.worker_count, brief=self._brief, on_change=self._workers)
            await self.workers.start()
            # /metrics counts what every process did, not only this one.
            sum_workers(node.metrics, count=s.worker_count, ask=self.workers.ask)
        self.local_app = build_local_app(
            node,
            records=self.records,
            enquiry_log=self.enquiry_log,
            scheduler=self.scheduler,
            peer_port=self.peer_port,
        )
        local_runner = web.AppRunner(self.local_app, shutdown_timeout=5.0, access_log=None)
        await local_runner.setup()
        self._runners.append(local_runner)
        await GuardedSite(
            local_runner,
            s.listen.local.host,
            s.listen.local.port,
            name="local",
            limits=local_limits,
        ).start()
        self.local_port = int(local_runner.addresses[0][1])
        if s.listen.console is not None:
            await self._start_console(s.listen.console.host, s.listen.console.port)
        log.info(
            "node_started",
            node=s.node,
            peer_port=self.peer_port,
            local_port=self.local_port,
            console_port=self.console_port or None,
            policy=node.live.policy.digest,
            peers=sorted(node.live.trust.peers),
            workers=s.worker_count,
        )

    async def _serve_peers(self, port: int) -> None:
        """The peer listener on `port`; shared with the worker processes (SO_REUSEPORT) and
        their rate limits when there are any."""
        node, s = self.node, self.node.settings
        limiter = None
        if s.worker_count > 1:
            # Emptied by the main process at start: the windows count by a clock a reboot
            # restarts.
            shared = SharedRateLimiter(
                s.state_path(RATE_LIMITS_FILE), time.monotonic, fresh=not self.worker
            )
            self._resources.callback(shared.close)
            limiter = shared
        self.peer_app = build_peer_app(
            node,
            self.inflight,
            records=self.records,
            enquiry_log=self.enquiry_log,
            scheduler=self.scheduler,
            limiter=limiter,
            jobs=not self.worker,
        )
        peer_runner = web.AppRunner(
            self.peer_app, shutdown_timeout=self.shutdown_timeout, access_log=None
        )
        await peer_runner.setup()
        self._runners.append(peer_runner)
        peer_limits, _ = listener_limits(s.listen.peer, s.listen.local, s.listen.timeouts)
        await GuardedSite(
            peer_runner,
            s.listen.peer.host,
            port,
            name="peer",
            limits=peer_limits,
            ssl_context=self.peer_tls,
            reuse_port=s.worker_count > 1,
        ).start()
        self.peer_port = int(peer_runner.addresses[0][1])
        if s.listen.peer.port == 0 and not s.public_url:
            self.peer_app[IDENTITY].url = f"https://{s.listen.peer.host}:{self.peer_port}"

    async def _start_worker(self) -> None:
        """A worker process: the peer listener on the main process's port, its own record
        store and enquiry log connections, and of the periodic jobs only those that keep
        what it answers with current (policy and peers, the keyring, the log's file)."""
        node, s = self.node, self.node.settings
        assert self._worker_port is not None
        self.records = await self._resources.enter_async_context(node.serving_records())
        self.enquiry_log = await self._resources.enter_async_context(node.worker_enquiry_log())
        if self.enquiry_log.file is not None:
            self.scheduler.every("log-watch", LOG_WATCH_INTERVAL_S, self._watch_log, at_once=False)
        self._schedule_policy_watch(s.policy_reload_interval, was=0)
        self.scheduler.every(
            "keyring", KEYRING_INTERVAL_S, self._follow_keys, at_once=False, skip_after=None
        )
        self.peer_tls = node.ssl_context()
        self.scheduler.start()
        await self._serve_peers(self._worker_port)
        log.info("worker_serving", node=s.node, peer_port=self.peer_port, pid=os.getpid())

    def _brief(self, index: int) -> Brief:
        return Brief(
            index=index,
            peer_port=self.peer_port,
            config=self.config,
            started=self.node.settings,
            in_force=self.settings,
        )

    def _workers(self, missing: str | None) -> None:
        if missing is None:
            self.node.live.problems.pop("workers", None)
        else:
            self.node.live.problems["workers"] = missing

    def take_settings(self, new: Settings) -> None:
        """The reloadable settings of `new` in force (a worker started after reloads)."""
        self._apply(new, settings_changes(self.settings, new))

    async def _start_console(self, host: str, port: int) -> None:
        """The operator console on its own listener, with the peer listener's TLS context
        (and so its certificate over a rotation) whenever it listens beyond loopback."""
        self.console_app = build_console_app(self.node, approvals=self.peer_app.get(APPROVALS))
        runner = web.AppRunner(self.console_app, shutdown_timeout=5.0, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        await GuardedSite(
            runner,
            host,
            port,
            name="console",
            limits=console_limits(self.node.settings.listen),
            ssl_context=self.peer_tls if self.node.settings.console_tls else None,
        ).start()
        self.console_port = int(runner.addresses[0][1])

    async def _follow_keys(self) -> None:
        self.follow_keys()

    def follow_keys(self) -> None:
        """Sign with, present and publish what the keyring holds in force now: a rotation
        published, its new key or certificate coming into force, the old one retiring."""
        node = self.node
        before = node.keyring.current
        try:
            now = node.keyring.refresh()
        except ConfigError as exc:
            log.error("keyring_unreadable", error=exc.detail, kept=before.signing.public.kid)
            now = None
        if now is not None:
            if now.signing != before.signing:
                node.signer.adopt(now.signing)
                log.info("own_key_activated", old=before.signing.public.kid, new=node.signer.kid)
            if now.certificate != before.certificate:
                # New handshakes get the new certificate; connections open keep theirs.
                self.peer_tls.load_cert_chain(now.certificate.path, now.certificate.key)
                log.info(
                    "own_certificate_activated",
                    old=before.certificate.fingerprint,
                    new=now.certificate.fingerprint,
                    not_after=expiry(now.certificate.not_after),
                )
            for event, was, is_ in (
                ("own_key_retired", before.keys, now.keys),
                ("own_certificate_retired", before.certificates, now.certificates),
            ):
                for gone in sorted({p.name for p in was} - {p.name for p in is_}):
                    log.info(event, old=gone)
            if now.rotations != before.rotations:
                log.info(
                    "own_rotation_published",
                    keys=[p.name for p in now.keys],
                    certificates=[p.name for p in now.certificates],
                )
        if not self.worker:  # said once for the node, by its main process
            self._warn_expiry()

    def _warn_expiry(self) -> None:
        node = self.node
        left = node.keyring.certificate_expires() - node.clock()
        days = node.settings.federation.key_expiry_warning_days
        mono = asyncio.get_running_loop().time()
        if left < days * 86_400 and mono - self._warned_expiry >= EXPIRY_REMINDER_S:
            self._warned_expiry = mono
            log.warning(
                "own_certificate_expiring",
                fingerprint=node.tls_fingerprint,
                not_after=expiry(node.keyring.certificate_expires()),
                days_left=round(left / 86_400, 1),
                hint="ncb-connector keys renew-tls",
            )

    async def _ping_watchdog(self) -> None:
        self.notifier.watchdog()

    async def _watch_log(self) -> None:
        lost = self.enquiry_log.check_file()
        if lost is not None and not self.node.live.halted:
            self.node.live.halt("enquiry_log", lost)
            self.notifier.status(f"not answering: {lost}")

    async def _watch_trail(self, trail: TrailWatch) -> None:
        """Each entry admins record goes to the journal too (a copy of the trail's head off
        its file, where a journal forwarded off the host keeps it); a trail whose seen part
        changed is a warning. Read in a thread: a long trail is verified whole."""
        seen = await asyncio.to_thread(trail.look)
        if seen is None:
            return
        report = seen.report
        if not report.ok:
            log.warning(
                "admin_audit_broken",
                finding=report.finding,
                line=report.line,
                seq=report.seq,
                problem=report.problem,
                path=str(trail.path),
            )
        head = report.head
        if seen.whole_again and head is not None:
            log.warning("admin_audit_whole_again", seq=head.seq, hash=head.hash)
        if seen.missing is not None:
            # Recorded, sent to this journal, and gone from the file: put back from an older
            # copy, or cut.
            log.warning(
                "admin_audit_entries_gone",
                first_seq=seen.missing[0],
                last_seq=seen.missing[1],
                path=str(trail.path),
            )
        if seen.first and head is not None:
            log.info("admin_audit_head", seq=head.seq, hash=head.hash, entries=report.entries)
        for e in seen.new:
            log.info(
                "admin_audit_recorded",
                seq=e.seq,
                hash=e.hash,
                action=e.action,
                target=e.target,
                actor=e.actor.shown,
            )

    async def _watch_policy(self) -> None:
        self.node.live.reload_if_changed()

    def reload(self) -> None:
        """SIGHUP: connector.yaml's reloadable settings, then the policy and the peers. What
        cannot change without a restart is said (and shown in /readyz) until one is made."""
        self.notifier.reloading()
        self.follow_keys()
        changes = self._reload_settings()
        report = self.node.live.reload()
        fields = {
            "policy_changed": report.policy_changed,
            "peers_changed": report.peers_changed,
            "settings_applied": list(changes.applied),
            "restart_needed": list(self.node.live.restart_needed),
        }
        if report.problems:
            log.error("reloaded_with_problems", problems=report.problems, **fields)
        elif self.node.live.restart_needed:
            log.warning("reloaded_restart_needed", **fields)
        else:
            log.info("reloaded", **fields)
        if self.workers is not None:
            self.workers.reload()
        status = "degraded: " + "; ".join(report.problems) if report.problems else "ready"
        if self.node.live.restart_needed:
            status += "; restart needed for " + ", ".join(self.node.live.restart_needed)
        self.notifier.ready(status=status)

    def _reload_settings(self) -> SettingsChanges:
        live = self.node.live
        none = SettingsChanges(applied=(), restart=())
        if self.reread is None:
            return none
        try:
            new = self.reread()
        except ConfigError as exc:
            live.problems["config"] = f"connector.yaml not reloaded: {exc.detail}"
            self.node.metrics.reload_failed("config")
            log.error("config_reload_failed", error=exc.detail)
            return none
        live.problems.pop("config", None)
        # Against what the node started with: an edit that needs a restart stays reported
        # until there is one, however many reloads come between.
        live.restart_needed = settings_changes(self.node.settings, new).restart
        changes = settings_changes(self.settings, new)
        applied = self._apply(new, changes)
        return SettingsChanges(applied=applied, restart=changes.restart)

    def _apply(self, new: Settings, changes: SettingsChanges) -> tuple[str, ...]:
        """Each reloadable part of `new` that changed, put in force; a part that does not
        build keeps the old one and is reported as a problem."""
        live, old = self.node.live, self.settings
        kept: list[str] = []
        if changes.touches("notifications"):
            try:
                reconfigure_notifications(self.peer_app, new.notifications)
            except ConfigError as exc:
                live.problems["notifications"] = exc.detail
                self.node.metrics.reload_failed("config")
                log.error("notifications_reload_failed", error=exc.detail)
                kept.append("notifications")
                new = new.model_copy(update={"notifications": old.notifications})
            else:
                live.problems.pop("notifications", None)
        if changes.touches("logging"):
            configure_logging(fmt=new.logging.format, level=new.logging.level)
        if changes.touches("matching"):
            answerer = self.peer_app[ANSWERER]
            answerer.hit_threshold = new.matching.threshold
            answerer.ref_checks = new.matching.ref_checks
            answerer.matching = new.matching
        if changes.touches("policy_reload_interval"):
            self._schedule_policy_watch(new.policy_reload_interval, was=old.policy_reload_interval)
        live.retarget(
            policy_dir=new.path(new.policy_dir),
            peers_file=new.path(new.peers_file),
            channels=frozenset(new.notifications.channels),
        )
        self.settings = new
        return tuple(n for n in changes.applied if not any(n.startswith(k) for k in kept))

    def _schedule_policy_watch(self, seconds: float, *, was: float) -> None:
        # Policy and peers files are polled, so an edit takes effect without a signal.
        if seconds > 0 and was > 0:
            self.scheduler.reschedule("policy-watch", seconds)
        elif seconds > 0:
            self.scheduler.every(
                "policy-watch", seconds, self._watch_policy, at_once=False, skip_after=None
            )
        elif was > 0:
            self.scheduler.remove("policy-watch")

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, stop the jobs, then the apps, then
        close the databases."""
        self.node.live.draining = True
        if self.workers is not None:
            # systemd signals every process of the unit at once: a worker that has already
            # drained and exited is not one to start again.
            self.workers.stopping()
        if self._runners:
            peer_runner = self._runners[0]
            for site in list(peer_runner.sites):
                await site.stop()
            # The workers drain meanwhile; the main process closes its log (and writes its
            # last checkpoint) only once every worker's rows are committed.
            workers = (
                asyncio.ensure_future(self.workers.stop(self.shutdown_timeout + 2))
                if self.workers is not None
                else None
            )
            in_flight = self.inflight.count
            drained = await self.inflight.drain(self.shutdown_timeout)
            log.info("node_drained", requests=in_flight, complete=drained)
            if workers is not None:
                await workers
        elif self.workers is not None:
            await self.workers.stop(self.shutdown_timeout + 2)
        await self._close()
        log.info("node_stopped", node=self.node.settings.node)

    async def _close(self) -> None:
        # Jobs in progress are cancelled before what they use (sessions, the outbox) closes.
        await self.scheduler.shutdown()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self._resources.aclose()


async def serve(
    node: Node,
    *,
    notifier: SystemdNotifier,
    new_log: Admin | None = None,
    reread: Callable[[], Settings] | None = None,
    config: Path | None = None,
) -> None:
    """Run until SIGTERM or SIGINT; SIGHUP reloads connector.yaml (`reread`, at `config`),
    the policies and the peers. With `workers:` above 1, this process is worker 0 and the
    others' supervisor: they start with it, reload with it and stop with it."""
    if node.settings.worker_count > 1:
        structlog.contextvars.bind_contextvars(worker=0)
    node.load_live()
    service = Service(node, notifier=notifier, reread=reread, config=config)
    service.new_log = new_log
    await service.start()
    settle_heap()
    loop = asyncio.get_running_loop()
    unroute = route_library_errors(loop)
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
        unroute()


def settle_heap() -> None:
    """Once a serving process has built what it serves with (the main process and each
    worker alike)."""
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


def _writable_directories(s: Settings) -> list[Path]:
    """Where the node writes: its state directory and those of its SQLite databases."""
    found = [s.state_path(Path("."))]
    for url in (s.records_url, s.enquiries_url):
        db = sqlite_file(url)
        if db is not None:
            found.append(db.parent)
    return [d.resolve() for d in found]
