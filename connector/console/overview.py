"""The overview's figures, pure: checks per minute by peer and category, hits and denials,
and the last 24 hours in hourly bars drawn as SVG coordinates."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HOURS = 24
CHART_WIDTH = 720
CHART_HEIGHT = 160


@dataclass(frozen=True, slots=True, kw_only=True)
class Activity:
    """What the figures need of one enquiry row: not its query, hashes or criteria."""

    at: float
    peer: str
    direction: str
    checks: tuple[Mapping[str, Any], ...]
    results: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Rate:
    peer: str
    direction: str
    category: str
    last_hour: int

    @property
    def per_minute(self) -> float:
        return round(self.last_hour / 60, 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """One hour of the chart: the whole bar is the checks, the part drawn over it the hits;
    denials are a second, thinner bar beside it."""

    hour: int  # hours before now the hour ends: 0 is the current hour
    checks: int
    hits: int
    denied: int
    x: float
    width: float
    checks_y: float
    checks_h: float
    hits_y: float
    hits_h: float
    denied_y: float
    denied_h: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Overview:
    checks: int  # in the last 24 h, both directions
    hits: int
    denied: int
    errors: int
    rates: tuple[Rate, ...]
    bars: tuple[Bar, ...]
    peak: int  # the tallest bar's checks: the chart's scale


def result_status(result: Mapping[str, Any]) -> str:
    """A check's status; for the row of an operator's decision on a held release, its
    verdict (approved, denied, expired)."""
    return str(result.get("status") or result.get("verdict") or "")


def _checks(rows: Iterable[Activity]) -> Iterable[tuple[Activity, Mapping[str, Any]]]:
    for row in rows:
        if row.results:
            for r in row.results:
                if "status" not in r and "verdict" in r:
                    continue  # an operator's decision on a held release: not a check
                yield row, r
        else:
            # A row with no result per check (an exchange that failed): its checks count
            # as errors.
            for c in row.checks:
                yield row, {"category": c.get("category"), "status": "error"}


def summarize(rows: Sequence[Activity], *, now: float) -> Overview:
    """`rows`: the log's rows of the last 24 hours, in any order."""
    hourly: list[Counter[str]] = [Counter() for _ in range(HOURS)]
    rates: Counter[tuple[str, str, str]] = Counter()
    totals: Counter[str] = Counter()
    for row, result in _checks(rows):
        age = now - row.at
        if age < 0 or age >= HOURS * 3600:
            continue
        status = str(result.get("status") or "error")
        totals["checks"] += 1
        totals[status] += 1
        bucket = hourly[int(age // 3600)]
        bucket["checks"] += 1
        bucket[status] += 1
        if age < 3600:
            rates[(row.peer, row.direction, str(result.get("category") or "-"))] += 1
    peak = max((b["checks"] for b in hourly), default=0)
    scale = CHART_HEIGHT / peak if peak else 0.0
    slot = CHART_WIDTH / HOURS
    bars = []
    for i, b in enumerate(reversed(hourly)):  # oldest hour on the left
        checks_h = b["checks"] * scale
        hits_h = b["hit"] * scale
        denied_h = b["denied"] * scale
        bars.append(
            Bar(
                hour=HOURS - 1 - i,
                checks=b["checks"],
                hits=b["hit"],
                denied=b["denied"],
                x=round(i * slot + 2, 1),
                width=round(slot * 0.6, 1),
                checks_y=round(CHART_HEIGHT - checks_h, 1),
                checks_h=round(checks_h, 1),
                hits_y=round(CHART_HEIGHT - hits_h, 1),
                hits_h=round(hits_h, 1),
                denied_y=round(CHART_HEIGHT - denied_h, 1),
                denied_h=round(denied_h, 1),
            )
        )
    return Overview(
        checks=totals["checks"],
        hits=totals["hit"],
        denied=totals["denied"],
        errors=totals["error"],
        rates=tuple(
            Rate(peer=p, direction=d, category=c, last_hour=n)
            for (p, d, c), n in sorted(rates.items(), key=lambda kv: (-kv[1], kv[0]))
        ),
        bars=tuple(bars),
        peak=peak,
    )
