"""The worker processes' counters in the main process's /metrics: what a worker reports when
asked, and the node's totals kept monotonic across a worker's restart (`workers:` above 1)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator, Mapping

import orjson
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from pydantic import BaseModel, ConfigDict

from connector.metrics import Metrics, SampleKey

# How long a scrape waits for a worker's figures; one that does not answer in time counts
# with the figures it last gave.
ASK_TIMEOUT_S = 2.0


class Report(BaseModel):
    """One worker's answer: its pid (a new one is a restarted worker), its samples of the
    summed families as (family, sample, labels, value), its CPU time and memory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pid: int
    samples: list[tuple[str, str, list[tuple[str, str]], float]]
    cpu_seconds: float
    resident_bytes: float


def report(metrics: Metrics) -> bytes:
    """What a worker answers when the main process asks for its figures."""
    cpu, resident = own_process()
    samples = [
        (family, name, list(labels), value) for family, (name, labels), value in metrics.samples()
    ]
    return orjson.dumps(
        {"pid": os.getpid(), "samples": samples, "cpu_seconds": cpu, "resident_bytes": resident}
    )


def own_process() -> tuple[float, float]:
    """This process's CPU seconds and resident memory, as the library's collector reads them
    (0 where /proc is not)."""
    found = {
        s.name: s.value
        for m in ProcessCollector(registry=None).collect()
        for s in m.samples
        if s.name in ("process_cpu_seconds_total", "process_resident_memory_bytes")
    }
    return found.get("process_cpu_seconds_total", 0.0), found.get(
        "process_resident_memory_bytes", 0.0
    )


Ask = Callable[[float], Awaitable[Mapping[int, bytes]]]
"""The workers' answers by index, each waited for at most the seconds given."""


class WorkerTotals:
    """The worker processes' samples, summed for the node's /metrics. A counter of a worker
    restarted (after a crash, or SIGKILL) starts again at 0: what its previous process last
    reported is carried, so each total the node exposes only ever grows and Prometheus sees
    no reset. What a killed worker counted after the last scrape is lost with it."""

    def __init__(self, *, count: int, ask: Ask) -> None:
        self.count = count
        self._ask = ask
        self._current: dict[int, Report] = {}
        self._up: dict[int, bool] = {}
        # The finished processes' last figures, summed: (family, sample key) → value.
        self._carried: dict[str, dict[SampleKey, float]] = {}

    async def refresh(self) -> None:
        answers = await self._ask(ASK_TIMEOUT_S)
        for index in range(1, self.count):
            body = answers.get(index)
            self._up[index] = body is not None
            if body is not None:
                self.take(index, Report.model_validate_json(body))

    def take(self, index: int, report: Report) -> None:
        before = self._current.get(index)
        if before is not None and before.pid != report.pid:
            _add(self._carried, before)
        self._current[index] = report

    def others(self) -> dict[str, dict[SampleKey, float]]:
        """Every worker's samples, with those carried from its previous processes."""
        total = {family: dict(samples) for family, samples in self._carried.items()}
        for report in self._current.values():
            _add(total, report)
        return total

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "ncb_worker_up",
            "1 when the worker process answered the last scrape; the main process is worker 0.",
            labels=["worker"],
        )
        cpu = CounterMetricFamily(
            "ncb_worker_cpu_seconds",
            "CPU time of each process serving the peer API (resets when a worker restarts).",
            labels=["worker"],
        )
        memory = GaugeMetricFamily(
            "ncb_worker_resident_memory_bytes",
            "Resident memory of each process serving the peer API.",
            labels=["worker"],
        )
        main_cpu, main_memory = own_process()
        up.add_metric(["0"], 1.0)
        cpu.add_metric(["0"], main_cpu)
        memory.add_metric(["0"], main_memory)
        for index in range(1, self.count):
            up.add_metric([str(index)], 1.0 if self._up.get(index) else 0.0)
            report = self._current.get(index)
            if report is not None:
                cpu.add_metric([str(index)], report.cpu_seconds)
                memory.add_metric([str(index)], report.resident_bytes)
        yield from (up, cpu, memory)


def _add(total: dict[str, dict[SampleKey, float]], report: Report) -> None:
    for family, name, labels, value in report.samples:
        key = (name, tuple(labels))
        samples = total.setdefault(family, {})
        samples[key] = samples.get(key, 0.0) + value


def sum_workers(metrics: Metrics, *, count: int, ask: Ask) -> WorkerTotals:
    """The node's /metrics made the sum of its `count` processes (this one is worker 0)."""
    totals = WorkerTotals(count=count, ask=ask)
    metrics.sum_with(totals.others)
    metrics.view("workers", totals.collect, totals.refresh)
    return totals
