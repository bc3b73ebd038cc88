"""Validators shared by the import-row models of every record kind."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import ValidationError


def describe_validation(exc: ValidationError) -> str:
    """`field: reason; …`, in the admin's words: our own validators' messages without
    pydantic's "Value error, " in front of them."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {_message(e)}"
        for e in exc.errors(include_url=False)
    )


def _message(error: Any) -> str:
    if error["type"] == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    return str(error["msg"])


def empty_is_none(v: Any) -> Any:
    """CSV has no null: an empty cell means the value is not known."""
    return None if v == "" else v


def not_in_future(v: date | None) -> date | None:
    if v is not None and v > date.today():
        raise ValueError("the date lies in the future")
    return v
