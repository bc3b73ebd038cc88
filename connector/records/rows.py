"""Validators shared by the import-row models of every record kind."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import ValidationError

from connector.errors import field_problems


def describe_validation(exc: ValidationError) -> str:
    """`field: reason; …`, in the admin's words."""
    return "; ".join(f"{e.field or 'row'}: {e.reason}" for e in field_problems(exc))


def empty_is_none(v: Any) -> Any:
    """CSV has no null: an empty cell means the value is not known."""
    return None if v == "" else v


def not_in_future(v: date | None) -> date | None:
    if v is not None and v > date.today():
        raise ValueError("the date lies in the future")
    return v
