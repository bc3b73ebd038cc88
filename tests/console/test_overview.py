"""The overview's figures from log rows, pure: the day's hourly bars, the last hour's rates,
and an operator's decision on a held release counted as no check."""

from __future__ import annotations

from connector.console.overview import CHART_HEIGHT, HOURS, Activity, summarize

NOW = 1_800_000_000.0


def _row(age_s: float, *statuses: str, peer: str = "FR", category: str = "vehicles") -> Activity:
    return Activity(
        at=NOW - age_s,
        peer=peer,
        direction="in",
        checks=tuple({"id": str(i), "category": category} for i in range(len(statuses))),
        results=tuple({"check": str(i), "category": category, "status": s}
                      for i, s in enumerate(statuses)),
    )  # fmt: skip


def test_the_day_in_hourly_bars_and_the_last_hours_rates() -> None:
    rows = [
        _row(60, "hit", "no_hit"),
        _row(600, "denied"),
        _row(3 * 3600 + 5, "no_hit", peer="GB", category="wanted_persons"),
        _row(25 * 3600, "hit"),  # older than a day: not counted
    ]
    o = summarize(rows, now=NOW)
    assert (o.checks, o.hits, o.denied, o.errors) == (4, 1, 1, 0)
    assert len(o.bars) == HOURS
    now_bar, three_hours_ago = o.bars[-1], o.bars[-4]
    assert (now_bar.hour, now_bar.checks, now_bar.hits, now_bar.denied) == (0, 3, 1, 1)
    assert (three_hours_ago.hour, three_hours_ago.checks) == (3, 1)
    assert o.peak == 3
    assert now_bar.checks_h == CHART_HEIGHT  # the tallest bar fills the chart
    assert [(r.peer, r.category, r.last_hour, r.per_minute) for r in o.rates] == [
        ("FR", "vehicles", 3, 0.05)
    ]


def test_a_decision_on_a_held_release_is_not_a_check() -> None:
    decision = Activity(
        at=NOW - 10,
        peer="FR",
        direction="in",
        checks=({"id": "doc", "category": "travel_documents"},),
        results=({"approval": "01AB", "verdict": "approved", "reason": "matches"},),
    )
    failed = Activity(
        at=NOW - 10, peer="FR", direction="out", checks=({"id": "1", "category": "x"},), results=()
    )
    o = summarize([decision, failed], now=NOW)
    assert (o.checks, o.errors) == (1, 1)  # the exchange that failed, not the decision
