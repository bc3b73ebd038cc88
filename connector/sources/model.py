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
    field_validator,
    model_validator,
)

from connector.config import load_yaml_model
from connector.dburl import redacted
from connector.vocabulary import Category

_DURATION = re.compile(r"(\d+)\s*(s|m|h)")
_UNITS = {"s": 1, "m": 60, "h": 3600}

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")]
"""A table or column name as the source spells it: never SQL, only a name."""


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
    # A sync that would remove more than this share of the source's records stops and says
    # so: an emptied view or a wrong table must not wipe a category.
    max_removal_share: Annotated[float, Field(gt=0, le=1)] = 0.5

    @field_validator("key", mode="before")
    @classmethod
    def _one_or_more(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("every")
    @classmethod
    def _duration(cls, value: str) -> str:
        found = _DURATION.fullmatch(value.strip())
        if found is None or int(found[1]) == 0:
            raise ValueError(f"{value!r} is not a duration: write e.g. 30s, 5m or 1h")
        return value

    @model_validator(mode="after")
    def _fields_once(self) -> Source:
        both = set(self.columns) & set(self.constants)
        if both:
            raise ValueError(f"{', '.join(sorted(both))}: given as a column and as a constant")
        return self

    @property
    def interval_s(self) -> int:
        found = _DURATION.fullmatch(self.every.strip())
        assert found is not None
        return int(found[1]) * _UNITS[found[2]]

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
