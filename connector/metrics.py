"""One node's Prometheus metrics: every family in a registry of the node's own, the counters
its parts move as things happen, and the views read at each scrape (docs/operations.md §16).

Labels come from closed sets only: peers of the trust store, agencies of agencies.json,
categories, statuses and problem codes of this code, rule names of the admin's policy,
notification channels of connector.yaml. Nothing a peer or a client sends becomes a label
unless it was first found in one of those.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from time import perf_counter
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector

from connector.vocabulary import Category

# Each counter's `_created` sample would double the series for nothing an alert or a panel
# reads; it is the library's process-wide switch, the same for every node in the process.
disable_created_metrics()  # type: ignore[no-untyped-call]

View = Callable[[], Iterable[Metric]]
"""Families made at scrape time from what the node holds in memory (breakers, peer health,
readiness, the figures last read from its databases): never a database read itself."""

SampleKey = tuple[str, tuple[tuple[str, str], ...]]
"""One sample of a family: its name (`…_total`, `…_bucket`) and its labels, sorted."""

Others = Callable[[], Mapping[str, Mapping[SampleKey, float]]]
"""The other processes' samples of the summed families, by family name: added to this
process's at each scrape (`workers:` above 1)."""

Refresh = Callable[[], Awaitable[None]]
"""Brings the figures a view reports from a database up to date before a scrape, with a
deadline and a cache of its own: a scrape never waits long, and many scrapes read once."""

ANSWER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
EXCHANGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

DEFAULT_RULE = "(default deny)"
"""The rule label of a check no rule matched (as the enquiry log records it)."""


class Metrics:
    """The node's registry and the instruments its parts are given. One per node: tests run
    several nodes in one process, and the library's global registry is never used."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.inbound_checks = Counter(
            "ncb_inbound_checks_total",
            "Checks of peers' queries answered, by peer, category, outcome and deciding rule.",
            ("peer", "category", "outcome", "rule"),
            registry=r,
        )
        self.inbound_answer_seconds = Histogram(
            "ncb_inbound_answer_seconds",
            "From a verified query token to its signed answer, its enquiry row committed.",
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.inbound_rate_limited = Counter(
            "ncb_inbound_rate_limited_total",
            "Checks denied because the peer spent its rule's rate.",
            ("peer", "rule"),
            registry=r,
        )
        self.rejections = Counter(
            "ncb_rejections_total",
            "Requests refused with a problem document, by listener and problem code.",
            ("listener", "code"),
            registry=r,
        )
        self.release_polls = Counter(
            "ncb_release_polls_total",
            "Peers' requests for a release still waiting for an operator (409"
            " approval_pending: an answer, not a refusal), by peer.",
            ("peer",),
            registry=r,
        )
        self.outbound_checks = Counter(
            "ncb_outbound_checks_total",
            "Agencies' checks sent (or not) to each peer, by agency, peer and outcome.",
            ("agency", "peer", "status"),
            registry=r,
        )
        self.outbound_exchange_seconds = Histogram(
            "ncb_outbound_exchange_seconds",
            "One exchange with a peer: signing, sending, its answer verified and logged.",
            ("peer",),
            buckets=EXCHANGE_BUCKETS,
            registry=r,
        )
        self.log_commit_seconds = Histogram(
            "ncb_enquiry_log_commit_seconds",
            "One group commit of the enquiry log.",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.log_commit_rows = Histogram(
            "ncb_enquiry_log_commit_rows",
            "Enquiry rows in one group commit.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.log_commit_failures = Counter(
            "ncb_enquiry_log_commit_failures_total",
            "Group commits of the enquiry log that failed (their rows' requests got 503).",
            registry=r,
        )
        self.reload_failures = Counter(
            "ncb_reload_failures_total",
            "Reloads of the policy, peers.yaml or connector.yaml that failed (the last good"
            " one stays).",
            ("file",),
            registry=r,
        )
        ProcessCollector(registry=r)
        self._summed: _Summed | None = None
        self._views: dict[str, View] = {}
        self._refreshes: dict[str, Refresh] = {}
        r.register(_Views(self._views))
        self._checks = _Bound(self.inbound_checks)
        self._limited = _Bound(self.inbound_rate_limited)
        self._rejected = _Bound(self.rejections)
        self._sent = _Bound(self.outbound_checks)
        self._polled = _Bound(self.release_polls)
        self._exchange = _Bound(self.outbound_exchange_seconds)
        for file in ("policy", "peers", "config"):
            self.reload_failures.labels(file)  # zero from the start, so rate() sees the first

    # --- what the node's parts call -----------------------------------------------------

    def answered(self, peer: str, category: Category, outcome: str, rule: str | None) -> None:
        self._checks(peer, category.value, outcome, rule or DEFAULT_RULE).inc()

    def rate_limited(self, peer: str, rule: str) -> None:
        self._limited(peer, rule).inc()

    def rejected(self, listener: str, code: str) -> None:
        self._rejected(listener, code).inc()

    def rejections_of(self, listener: str) -> Callable[[str], None]:
        """What one listener's refusals are counted by (`server/rejectlog`)."""
        return lambda code: self.rejected(listener, code)

    def release_polled(self, peer: str) -> None:
        self._polled(peer).inc()

    def sent(self, agency: str, peer: str, status: str) -> None:
        self._sent(agency, peer, status).inc()

    def exchanged(self, peer: str, seconds: float) -> None:
        self._exchange(peer).observe(seconds)

    def committed(self, seconds: float, rows: int, *, failed: bool) -> None:
        self.log_commit_seconds.observe(seconds)
        self.log_commit_rows.observe(rows)
        if failed:
            self.log_commit_failures.inc()

    def reload_failed(self, file: str) -> None:
        self.reload_failures.labels(file).inc()

    @staticmethod
    def now() -> float:
        """The clock durations are measured by (never a wall clock)."""
        return perf_counter()

    # --- what a scrape reads ------------------------------------------------------------

    @property
    def summed(self) -> tuple[Counter | Histogram, ...]:
        """The families that count what each process of the node does, summed over them all
        with `workers:` above 1. Reload failures are not: every process rereads the same
        files, and the main process's count is the node's."""
        return (
            self.inbound_checks,
            self.inbound_answer_seconds,
            self.inbound_rate_limited,
            self.rejections,
            self.outbound_checks,
            self.outbound_exchange_seconds,
            self.log_commit_seconds,
            self.log_commit_rows,
            self.log_commit_failures,
        )

    def sum_with(self, others: Others) -> None:
        """From now on each summed family is exposed as this process's samples plus those
        `others` gives at the scrape. The counters themselves are untouched: the answering
        path costs what it does with one process."""
        if self._summed is None:
            for family in self.summed:
                self.registry.unregister(family)
            self._summed = _Summed(self.summed, others)
            self.registry.register(self._summed)
        else:
            self._summed.others = others  # a service restarted on the same node

    def samples(self) -> Iterator[tuple[str, SampleKey, float]]:
        """This process's samples of the summed families: what a worker process reports."""
        for family in self.summed:
            for metric in family.collect():
                for sample in metric.samples:
                    yield metric.name, sample_key(sample.name, sample.labels), sample.value

    def view(self, name: str, view: View, refresh: Refresh | None = None) -> None:
        """Families `view` makes at each scrape, after `refresh` (if any) has run; a later
        view of the same name replaces it (a service restarted on the same node)."""
        self._views[name] = view
        if refresh is None:
            self._refreshes.pop(name, None)
        else:
            self._refreshes[name] = refresh

    def unview(self, name: str) -> None:
        self._views.pop(name, None)
        self._refreshes.pop(name, None)

    async def refresh(self) -> None:
        """Every view's figures made current (each refresh bounds its own wait)."""
        if self._refreshes:
            await asyncio.gather(*(r() for r in list(self._refreshes.values())))


_M = TypeVar("_M", Counter, Histogram)


class _Bound(Generic[_M]):
    """A family's children bound once per label set: the answering path pays a dict lookup
    and an increment per check, not the library's label validation and lock."""

    __slots__ = ("_children", "_family")

    def __init__(self, family: _M) -> None:
        self._family: _M = family
        self._children: dict[tuple[str, ...], _M] = {}

    def __call__(self, *labels: str) -> _M:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._family.labels(*labels)
        return child


def sample_key(name: str, labels: Mapping[str, str]) -> SampleKey:
    return name, tuple(sorted(labels.items()))


class _Summed:
    """The summed families, each sample this process's value plus the other processes';
    a label set only another process has seen is added after this process's own."""

    def __init__(self, families: tuple[Counter | Histogram, ...], others: Others) -> None:
        self._families = families
        self.others = others

    def describe(self) -> list[Metric]:
        return [m for family in self._families for m in family.describe()]

    def collect(self) -> Iterator[Metric]:
        others = self.others()
        for family in self._families:
            for metric in family.collect():
                extra = dict(others.get(metric.name, {}))
                summed = Metric(metric.name, metric.documentation, metric.type, metric.unit)
                for sample in metric.samples:
                    key = sample_key(sample.name, sample.labels)
                    summed.add_sample(
                        sample.name, sample.labels, sample.value + extra.pop(key, 0.0)
                    )
                for (name, labels), value in extra.items():
                    summed.add_sample(name, dict(labels), value)
                yield summed


class _Views:
    """The registry's one custom collector: whatever views are installed now."""

    def __init__(self, views: dict[str, View]) -> None:
        self._views = views

    def describe(self) -> list[Metric]:
        return []  # families vary with what is installed; no name clash is checked for them

    def collect(self) -> Iterator[Metric]:
        for view in list(self._views.values()):
            yield from view()
