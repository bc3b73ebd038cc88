"""What every record kind provides: parsing rows and criteria, key columns, indexed lookups."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from connector.settings.config import Matching
from connector.vocabulary import Category, current_name


class RowError(ValueError):
    """An import row that cannot be imported, with a human-readable reason."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One national record: its id (stable; part of the ref), its index keys, its fields."""

    id: str
    category: Category
    keys: Mapping[str, str | None]
    fields: Mapping[str, Any]  # everything a peer may see at `full` level
    # False when the import gave no id: the store then makes an opaque one, since an id
    # built from the record (a VIN, a document number) would travel in every ref, at any
    # answer level, telling a peer what the level hides.
    id_given: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    record: Record
    score: float = 1.0
    reasons: tuple[Mapping[str, Any], ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyColumn:
    """An indexed string column of a kind's table."""

    name: str
    length: int
    nullable: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TextQuery:
    """Words to find in a kind's `text_fields` (all of them, any order, any field), ranked
    by relevance through the store's full-text index."""

    words: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyClass:
    """What one class of search key (the text before its first `:`) is worth: `weight` is
    what a record gains by sharing one such key held by that record alone (a key held by n
    records gives each weight / n), and a key held by more than `per_key` records is read
    no further."""

    weight: float = 1.0
    per_key: int = 200
    # weight 0: the key finds no candidate; its holders are only counted (`Kind.informed`).


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyQuery:
    """Search keys (see `Kind.search_keys`) whose records are a check's candidates, rarest
    first. A key held by more than its class's `per_key` records (`per_key` for a key of
    no class in `classes`) says little and is used only when no rarer one finds anything;
    at most `candidates` records, those with the most weight from the keys they share, are
    scored."""

    keys: tuple[str, ...]
    per_key: int = 200
    candidates: int = 150
    classes: tuple[tuple[str, KeyClass], ...] = ()
    # Above 0: an exhaustive search. Every key is read whole (no `per_key`, no `candidates`,
    # no classes) and the candidates are exactly the records holding at least this many of
    # the keys, for a kind that must never miss a record (DNA profiles).
    at_least: int = 0


Lookup = Mapping[str, str] | TextQuery | KeyQuery
"""Equality on indexed key columns, AND-ed, a text query, or search keys; a check's lookups
are OR-ed."""


class Kind(ABC):
    """A category's record model. Stored rows are the key columns plus the fields as JSON,
    so the store stays one generic piece and each kind only says what its keys are."""

    category: Category
    key_columns: tuple[KeyColumn, ...]
    natural_key: tuple[str, ...]  # key columns that identify a record across imports
    indexes: tuple[tuple[str, ...], ...]  # key-column sets searched by lookups
    csv_required: frozenset[str]
    text_fields: tuple[str, ...] = ()  # fields kept in the full-text index, if any
    searchable: bool = True  # False: held and importable, but no matcher answers checks yet
    keyed: bool = False  # True: the store keeps `search_keys` of each record in a side table
    # Changes whenever `search_keys` makes different keys: a store whose keys were made by
    # another version must make them anew (`db upgrade`, `records reindex`).
    keys_version: str = ""
    # True: its searches read every holder of their keys (`KeyQuery.at_least`).
    exhaustive_keys: bool = False
    # Each criterion member and the record fields a check compares it with. A member that
    # compares no field (a `ref`: the record's id) is always used.
    compared: Mapping[str, frozenset[str]] = MappingProxyType({})
    # The fields a check is searched by at every answer level unless a policy rule's `search:`
    # says otherwise: those the category cannot be searched without (docs/policies.md §3).
    identifying: frozenset[str] = frozenset()
    # True: every hit is a candidate for a human examiner, never an identification, and
    # says so on the wire (fingerprints; protocol §7.3).
    verification_required: bool = False

    @abstractmethod
    def parse_row(self, raw: Mapping[str, Any]) -> Record:
        """A validated record from one import row; RowError says what is wrong."""

    @abstractmethod
    def parse_criteria(self, raw: Mapping[str, object]) -> Any:
        """Validated criteria; InvalidCriteria (422) names the field that is wrong."""

    @abstractmethod
    def lookups(self, criteria: Any) -> Sequence[Lookup]:
        """The indexed equality lookups that find this check's candidates."""

    def accepts_field(self, name: str) -> bool:
        """Whether an import row may carry this field (sources.yaml is checked against it)."""
        fields = getattr(self, "row_model", None)
        return fields is None or current_name(self.category, name) in fields.model_fields

    def reference(self, criteria: Any) -> str | None:
        """The record id a check names directly (a follow-up by `ref`), if any."""
        return None

    def compared_fields(self) -> frozenset[str]:
        """Every record field some criterion of this kind is compared with."""
        return frozenset().union(*self.compared.values())

    def unused(self, searched: frozenset[str]) -> frozenset[str]:
        """The criterion members compared with none of the `searched` fields."""
        return frozenset(
            name for name, fields in self.compared.items() if fields and not fields & searched
        )

    def restrict(self, criteria: Any, searched: frozenset[str]) -> Any | None:
        """The criteria compared with the `searched` fields only (what else they hold is left
        out of the search), or None when nothing is left to search by. Called only when
        `searched` leaves out a field of `compared_fields()`."""
        return criteria

    def subject(self, criteria: Any) -> str | None:
        """What a check is about, whatever else it says (a document number, a VIN, a name):
        the same subject asked with varying criteria is how a peer probes a hidden field."""
        return None

    def variant(self, criteria: Any) -> int:
        """What a check searches by, as a number: equal for criteria that search alike (a
        number typed with or without its dashes), so that only real variation counts."""
        return hash(criteria)

    def score(self, criteria: Any, record: Record) -> Match | None:
        """How well a candidate matches; None drops it. Exact-key kinds accept every one."""
        return Match(record=record)

    def search_keys(self, record: Record) -> Iterable[str]:
        """The keys a `KeyQuery` finds this record by (only when `keyed`)."""
        return ()

    def informed(self, criteria: Any, held: Mapping[str, int]) -> Any:
        """The criteria with what the store found of a `KeyQuery`'s keys: how many records
        hold each (counted to at most its class's `per_key` + 1). For a kind whose scoring
        weighs how common a name is; unchanged by default."""
        return criteria

    def at_node(self, criteria: Any, matching: Matching) -> Any:
        """The criteria with what this node's `matching:` settings say of its category (the
        DNA thresholds); unchanged by default."""
        return criteria

    # True: scoring a check's candidates takes long (a 1:N fingerprint search), so a running
    # node scores them in a worker thread, never on its event loop.
    scores_apart: bool = False
    # True: `warm` loads what the kind's first search would otherwise wait for.
    warms_up: bool = False

    def warm(self) -> None:
        """Loads what a first search would wait for (a matcher's models); run by a starting
        node in a worker thread."""
        return None

    def ranked(self, criteria: Any) -> bool:
        """True when this check's candidates are ranked by similarity rather than found by an
        identifier, so that the category's hit threshold decides which are hits."""
        return False


def make_ref(node: str, category: Category, record_id: str) -> str:
    """`NODE:category:id`: stable, so a peer can follow a hit up."""
    return f"{node}:{category.value}:{record_id}"
