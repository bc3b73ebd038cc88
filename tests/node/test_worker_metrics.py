"""The node's totals of its processes' counters: summed into one exposition that parses, and
carried over a worker's restart (tests/node/test_workers.py runs them across processes)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from connector.metrics import Metrics
from connector.node.worker_metrics import Report, WorkerTotals, report, sum_workers
from connector.vocabulary import Category

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
TD = Category.TRAVEL_DOCUMENTS


def exposed(metrics: Metrics) -> Samples:
    text = generate_latest(metrics.registry).decode()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    found = {(s.name, frozenset(s.labels.items())): s.value for s in samples}
    assert len(found) == len(samples)  # each series once
    return found


def checks(samples: Samples, peer: str) -> float:
    return sum(
        v
        for (n, labels), v in samples.items()
        if n == "ncb_inbound_checks_total" and ("peer", peer) in labels
    )


async def _no_answers(timeout: float) -> Mapping[int, bytes]:
    return {}


def test_the_exposition_sums_every_process_and_keeps_a_restarted_workers_counts() -> None:
    main, worker = Metrics(), Metrics()
    totals = sum_workers(main, count=2, ask=_no_answers)
    main.answered("FR", TD, "hit", "fr-in")
    for _ in range(3):
        worker.answered("FR", TD, "hit", "fr-in")
    worker.answered("IT", TD, "no_hit", "it-in")  # a label set only the worker has seen
    worker.inbound_answer_seconds.observe(0.003)
    first = Report.model_validate_json(report(worker))
    totals.take(1, first)
    seen = exposed(main)
    assert checks(seen, "FR") == 4
    assert checks(seen, "IT") == 1
    assert seen[("ncb_inbound_answer_seconds_count", frozenset())] == 1
    assert seen[("ncb_inbound_answer_seconds_bucket", frozenset({("le", "0.005")}))] == 1
    # Reload failures are the main process's alone: every process rereads the same files.
    worker.reload_failed("policy")
    totals.take(1, Report.model_validate_json(report(worker)))
    assert exposed(main)[("ncb_reload_failures_total", frozenset({("file", "policy")}))] == 0

    # The worker killed and started again: a new pid, its counters from 0.
    again = Metrics()
    again.answered("FR", TD, "hit", "fr-in")
    restarted = Report.model_validate_json(report(again)).model_copy(update={"pid": first.pid + 1})
    totals.take(1, restarted)
    after = exposed(main)
    assert checks(after, "FR") == 5  # 1 + 3 carried + 1
    assert checks(after, "IT") == 1
    assert after[("ncb_inbound_answer_seconds_count", frozenset())] == 1
    assert all(after[k] >= v for k, v in seen.items() if k[0].startswith("ncb_inbound"))
    # The same process reporting again replaces its figures: nothing counted twice.
    totals.take(1, restarted)
    assert checks(exposed(main), "FR") == 5
    assert isinstance(totals, WorkerTotals)


def test_one_process_keeps_the_registry_as_it_is() -> None:
    metrics = Metrics()
    families = {type(c).__name__ for c in metrics.registry._collector_to_names}
    assert "_Summed" not in families
    metrics.answered("FR", TD, "hit", "fr-in")
    assert checks(exposed(metrics), "FR") == 1
