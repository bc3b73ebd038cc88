"""The national side of an agency's check: criteria validated once, our own records searched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from connector.errors import InvalidCriteria
from connector.protocol import Check, Hit
from connector.records.criteria import parse_criteria
from connector.records.kinds.base import make_ref
from connector.records.store import RecordStore


@dataclass(frozen=True, slots=True, kw_only=True)
class NationalResult:
    """One check against the national records, which our own agencies see in full."""

    check: str
    status: Literal["hit", "no_hit", "error"]
    hits: tuple[Hit, ...] = ()
    reason: str | None = None


def validate_checks(checks: Sequence[Check]) -> list[Any]:
    """Parsed criteria per check (None: category not held). Criteria that are wrong stop the
    request before anything goes abroad."""
    parsed: list[Any] = []
    for i, check in enumerate(checks):
        try:
            parsed.append(parse_criteria(check.category, check.criteria))
        except InvalidCriteria as exc:
            raise InvalidCriteria(
                exc.detail, field=f"checks.{i}.criteria.{exc.field}", check=check.id
            ) from exc
    return parsed


async def search_national(
    store: RecordStore, node: str, checks: Sequence[Check], parsed: Sequence[Any]
) -> tuple[NationalResult, ...]:
    out = []
    for check, criteria in zip(checks, parsed, strict=True):
        if criteria is None:
            out.append(NationalResult(check=check.id, status="error", reason="category_not_held"))
            continue
        found = await store.search(check.category, criteria, check.limit)
        hits = tuple(
            Hit(
                ref=make_ref(node, check.category, m.record.id),
                score=m.score,
                record=m.record.fields,
                reasons=m.reasons,
            )
            for m in found
        )
        out.append(NationalResult(check=check.id, status="hit" if hits else "no_hit", hits=hits))
    return tuple(out)
