"""sources.yaml: which table of which national database feeds which record category."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from connector.records.kinds.registry import KINDS
from connector.settings.yamlfile import load_yaml_model
from connector.storage.urls import redacted
from connector.vocabulary import Category, current_name

_DURATION = re.compile(r"(\d+)\s*(s|m|h)")
_UNITS = {"s": 1, "m": 60, "h": 3600}

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")]
"""A table or column name as the source spells it: never SQL, only a name."""


def _seconds(duration: str) -> int:
    found = _DURATION.fullmatch(duration.strip())
    assert found is not None
    return int(found[1]) * _UNITS[found[2]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Source(_Model):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    # Any SQLAlchemy URL the machine has a driver for; read only, never written to.
    url: str
    category: Category
    table: Identifier
    db_schema: Identifier | None = Field(default=None, alias="schema")
    key: list[Identifier] = Field(min_length=1, max_length=4)
    # A column the source updates on every change: only rows changed since the last sync
    # are read. Without it every row is read and compared by digest.
    changed: Identifier | None = None
    columns: dict[str, Identifier] = Field(min_length=1)  # our field: their column
    constants: dict[str, str | int | bool] = {}  # our field: a fixed value
    every: str = "5m"
    # With `changed` holding a time: rows stamped up to this much before the newest stamp
    # seen are read again, since a transaction that commits late carries its start time.
    overlap: str = "10m"
    # A sync that would remove more than this share of the source's records stops and says
    # so: an emptied view or a wrong table must not wipe a category.
    max_removal_share: Annotated[float, Field(gt=0, le=1)] = 0.5

    @field_validator("key", mode="before")
    @classmethod
    def _one_or_more(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("every", "overlap")
    @classmethod
    def _duration(cls, value: str, info: ValidationInfo) -> str:
        found = _DURATION.fullmatch(value.strip())
        if found is None or (int(found[1]) == 0 and info.field_name == "every"):
            raise ValueError(f"{value!r} is not a duration: write e.g. 30s, 5m or 1h")
        return value

    @model_validator(mode="after")
    def _fields_known(self) -> Source:
        """The mapping is checked here, not row by row at the first sync: a misspelt field
        would reject every row, and a missing required one too."""
        both = set(self.columns) & set(self.constants)
        if both:
            raise ValueError(f"{', '.join(sorted(both))}: given as a column and as a constant")
        kind = KINDS.get(self.category)
        if kind is None:
            raise ValueError(f"{self.category.value} cannot be imported")
        given = {current_name(self.category, f) for f in (*self.columns, *self.constants)}
        unknown = sorted(f for f in given if not kind.accepts_field(f))
        if unknown:
            row = getattr(kind, "row_model", None)
            known = f" (its fields: {', '.join(row.model_fields)})" if row is not None else ""
            raise ValueError(f"{', '.join(unknown)}: not a field of {self.category.value}{known}")
        missing = sorted(kind.csv_required - given)
        if missing:
            raise ValueError(
                f"{self.category.value} needs {', '.join(missing)}: map a column "
                "to it, or give it under constants"
            )
        return self

    @property
    def interval_s(self) -> int:
        return _seconds(self.every)

    @property
    def overlap_s(self) -> int:
        return _seconds(self.overlap)

    @property
    def where(self) -> str:
        """For messages: never the password."""
        place = f"{self.db_schema}.{self.table}" if self.db_schema else self.table
        return f"{redacted(self.url)} {place}"


class SourcesFile(_Model):
    sources: list[Source] = []

    @model_validator(mode="after")
    def _unique(self) -> SourcesFile:
        names = [s.name for s in self.sources]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"source names must be unique: {', '.join(twice)}")
        return self


def load_sources(path: Path) -> SourcesFile:
    """No file: no sources. A broken file is a ConfigError with file, line and key."""
    if not path.exists():
        return SourcesFile()
    return load_yaml_model(path, SourcesFile)
