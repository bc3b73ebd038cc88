"""Check criteria per category, parsed and validated before any search runs."""

from __future__ import annotations

from collections.abc import Mapping

from connector.records.documents import DocumentCriteria, document_criteria
from connector.vocabulary import Category

Criteria = DocumentCriteria

SEARCHABLE = frozenset({Category.TRAVEL_DOCUMENTS})


def parse_criteria(category: Category, raw: Mapping[str, object]) -> Criteria | None:
    """Parsed criteria, or None for a category this node cannot search yet.

    Raises InvalidCriteria (422) naming the field when the criteria are wrong.
    """
    if category is Category.TRAVEL_DOCUMENTS:
        return document_criteria(raw)
    return None
