"""Check criteria per category, parsed and validated before any search runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.records.kinds.registry import KINDS
from connector.vocabulary import Category


def parse_criteria(category: Category, raw: Mapping[str, object]) -> Any | None:
    """Parsed criteria, or None for a category this node cannot search yet.

    Raises InvalidCriteria (422) naming the field when the criteria are wrong.
    """
    kind = KINDS.get(category)
    return None if kind is None or not kind.searchable else kind.parse_criteria(raw)
