"""What a scrape of /metrics reads besides the counters: readiness, policy, keys and
certificate, peers, and figures from the databases read off the event loop and cached."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

import structlog
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import Engine

from connector.approvals.service import PendingFigures, pending_figures
from connector.metrics import View
from connector.node.node import Node
from connector.notify.outbox import Depth, depths
from connector.peers.breaker import Breakers, BreakerState
from connector.peers.health import HealthMonitor
from connector.peers.trust import Peer, TrustStore
from connector.records.store import RecordStore
from connector.vocabulary import Category

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Always reported, 0 when all is well, so a panel or an alert sees each from the start.
PROBLEMS = ("policy", "peers", "config", "notifications", "enquiry_log", "disk", "records")
BREAKER_STATES: tuple[BreakerState, ...] = ("closed", "open", "half_open")

# How often a scrape may cause a database read, and how long it waits for one: a backlog
# moves by the second, the records by import; Prometheus scrapes every 15–60 s.
OUTBOX_INTERVAL_S = 5.0
RECORDS_INTERVAL_S = 60.0
READ_TIMEOUT_S = 2.0


class Cached(Generic[T]):
    """A figure read in a worker thread (its own database connection), at most once per
    `interval`, one read at a time; a scrape waits for a read at most `timeout` and is
    otherwise answered with the last value read (None before the first)."""

    def __init__(
        self,
        read: Callable[[], T],
        *,
        what: str,
        interval: float,
        timeout: float = READ_TIMEOUT_S,
        monotonic: Callable[[], float],
    ) -> None:
        self._read = read
        self.what = what
        self.interval = interval
        self.timeout = timeout
        self._monotonic = monotonic
        self.value: T | None = None
        self._task: asyncio.Future[T] | None = None
        self._at = -math.inf
        self._failing = False  # logged when reads start failing and when they work again

    async def refresh(self) -> None:
        now = self._monotonic()
        if self._task is None and now - self._at >= self.interval:
            self._at = now
            self._task = asyncio.ensure_future(asyncio.to_thread(self._read))
            self._task.add_done_callback(self._done)
        task = self._task
        if task is not None:
            # Shielded: a scrape that gives up does not cancel the read (its thread would
            # run on anyway); the next scrape finds its result. Failures are logged by _done.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), self.timeout)

    def _done(self, task: asyncio.Future[T]) -> None:
        self._task = None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            if not self._failing:
                log.warning("metrics_read_failed", what=self.what, error=type(exc).__name__)
            self._failing = True
            return
        if self._failing:
            log.info("metrics_read_recovered", what=self.what)
        self._failing = False
        self.value = task.result()

    async def close(self) -> None:
        """Wait for a read still running (before its database is closed)."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def node_view(node: Node) -> View:
    """Readiness as /readyz says it, the problems behind it, the policy and peers in force,
    and when the node's signing key and TLS certificate expire."""

    def collect() -> Iterator[Metric]:
        live = node.live
        unready, problems = live.unready, live.problems
        away = live.draining or live.maintenance is not None or bool(unready)
        ready = _gauge("ncb_node_ready", "1 while /readyz answers 200, else 0.")
        ready.add_metric([], 0.0 if away else 1.0)
        yield ready
        maintenance = _gauge("ncb_node_maintenance", "1 while the maintenance switch is on.")
        maintenance.add_metric([], 0.0 if live.maintenance is None else 1.0)
        yield maintenance
        problem = _gauge(
            "ncb_node_problem",
            "1 while something is wrong: a policy, peers.yaml or connector.yaml (its"
            " notification channels) that failed to load (the last good one is in force), the"
            " enquiry log lost, a full disk, a record store that does not answer.",
            ("what",),
        )
        for what in dict.fromkeys((*PROBLEMS, *problems, *unready)):
            problem.add_metric([what], 1.0 if what in problems or what in unready else 0.0)
        yield problem
        restart = _gauge(
            "ncb_node_restart_needed",
            "1 while connector.yaml holds edits that take effect only at a restart.",
        )
        restart.add_metric([], 1.0 if live.restart_needed else 0.0)
        yield restart
        policy = _gauge(
            "ncb_policy_info", "The policy in force, by its digest (always 1).", ("digest",)
        )
        policy.add_metric([live.policy.digest], 1.0)
        yield policy
        peers = _gauge("ncb_peers", "Peers in the trust store in force.")
        peers.add_metric([], float(len(live.trust.peers)))
        yield peers
        expiries = node.own_expiries()
        key = _gauge(
            "ncb_signing_key_expiry_timestamp_seconds",
            "When the node's signing key in force stops being used: +Inf but while a rotation"
            " retires it (keys rotate); ncb_peer_key_expiry_timestamp_seconds is the peers'"
            " keys as we pin them.",
        )
        key.add_metric([], _or_inf(expiries["signing_key_expires"]))
        yield key
        cert = _gauge(
            "ncb_tls_certificate_expiry_timestamp_seconds",
            "notAfter of the TLS certificate the peer listener serves now.",
        )
        cert.add_metric([], _or_inf(expiries["certificate_expires"]))
        yield cert

    return collect


def _or_inf(when: float | None) -> float:
    return math.inf if when is None else when


def peers_view(
    *,
    trust: Callable[[], TrustStore],
    breakers: Breakers,
    health: HealthMonitor,
    monotonic: Callable[[], float],
) -> View:
    """Per peer of the trust store in force: its breaker, its last health check, when the
    key it signs with (as we pin it) expires."""

    def collect() -> Iterator[Metric]:
        peers = sorted(trust().peers.values(), key=lambda p: p.id)
        now = monotonic()
        state = _gauge(
            "ncb_peer_breaker_state",
            "1 for the state each peer's circuit breaker is in (closed, open, half_open).",
            ("peer", "state"),
        )
        up = _gauge(
            "ncb_peer_up",
            "1 when the last health check (or a verified answer since) found the peer up.",
            ("peer",),
        )
        latency = _gauge(
            "ncb_peer_health_latency_seconds",
            "How long the peer's last health check (its identity fetched) took.",
            ("peer",),
        )
        checked = _gauge(
            "ncb_peer_last_check_timestamp_seconds",
            "When the peer was last checked.",
            ("peer",),
        )
        expiry = _gauge(
            "ncb_peer_key_expiry_timestamp_seconds",
            "When the last key pinned for the peer expires: the latest not_after of its pinned"
            " keys, +Inf while one has none (a rotation's successor pinned beside the retiring"
            " key keeps it +Inf).",
            ("peer",),
        )
        for p in peers:
            current = breakers.state(p.id, now)
            for s in BREAKER_STATES:
                state.add_metric([p.id, s], 1.0 if s == current else 0.0)
            row = health.last.get(p.id)
            if row is not None:
                up.add_metric([p.id], 1.0 if row.up else 0.0)
                checked.add_metric([p.id], row.checked_at)
                if row.latency_ms is not None:
                    latency.add_metric([p.id], row.latency_ms / 1000)
            expiry.add_metric([p.id], peer_keys_expiry(p))
        yield from (state, up, latency, checked, expiry)

    return collect


def peer_keys_expiry(peer: Peer) -> float:
    """When the last key pinned for `peer` expires; +Inf while one has no not_after."""
    if not peer.keys or any(k.not_after is None for k in peer.keys):
        return math.inf
    return max(k.not_after.timestamp() for k in peer.keys if k.not_after is not None)


class Backlogs:
    """The figures read from the databases: each channel's outbox backlog and dead
    notices, each category's records; read off the loop, cached, reported at a scrape."""

    def __init__(
        self,
        *,
        records: RecordStore,
        log_engine: Engine,
        channels: Callable[[], Sequence[str]],
        clock: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self.clock = clock
        self.outbox: Cached[dict[str, Depth]] = Cached(
            lambda: depths(log_engine, channels()),
            what="outbox",
            interval=OUTBOX_INTERVAL_S,
            monotonic=monotonic,
        )
        self.approvals: Cached[PendingFigures] = Cached(
            lambda: pending_figures(log_engine),
            what="approvals",
            interval=OUTBOX_INTERVAL_S,
            monotonic=monotonic,
        )
        self.records: Cached[dict[Category, int]] = Cached(
            records.counts_apart,
            what="records",
            interval=RECORDS_INTERVAL_S,
            monotonic=monotonic,
        )

    async def refresh(self) -> None:
        await asyncio.gather(
            self.outbox.refresh(), self.approvals.refresh(), self.records.refresh()
        )

    async def close(self) -> None:
        await asyncio.gather(self.outbox.close(), self.approvals.close(), self.records.close())

    def collect(self) -> Iterator[Metric]:
        pending = _gauge(
            "ncb_outbox_pending_notices", "Notices waiting to be delivered.", ("channel",)
        )
        oldest = _gauge(
            "ncb_outbox_oldest_pending_age_seconds",
            "Age of the oldest notice waiting to be delivered (0 when none waits).",
            ("channel",),
        )
        dead = _gauge(
            "ncb_outbox_dead_notices",
            "Notices given up on (past notifications.max_age_hours, or refused for good);"
            " `notifications retry --dead` makes them due again.",
            ("channel",),
        )
        found = self.outbox.value
        if found is not None:
            now = self.clock()
            for channel, d in found.items():
                pending.add_metric([channel], float(d.pending))
                age = 0.0 if d.oldest_pending_at is None else max(0.0, now - d.oldest_pending_at)
                oldest.add_metric([channel], age)
                dead.add_metric([channel], float(d.dead))
        yield from (pending, oldest, dead)
        waiting = _gauge(
            "ncb_approvals_pending",
            "Releases waiting for an operator's approval (policy rules with release: approval).",
        )
        soonest = _gauge(
            "ncb_approvals_next_expiry_timestamp_seconds",
            "When the first waiting approval expires, denied as expired; +Inf when none waits.",
        )
        figures = self.approvals.value
        if figures is not None:
            waiting.add_metric([], float(figures.count))
            soonest.add_metric([], _or_inf(figures.next_expiry))
        yield from (waiting, soonest)
        records = _gauge("ncb_records", "Records held, by category.", ("category",))
        for category, n in sorted((self.records.value or {}).items()):
            records.add_metric([category.value], float(n))
        yield records
