"""The closed vocabularies of the network: categories, agency kinds, purposes, answer levels."""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum, StrEnum
from functools import total_ordering
from typing import TypeVar

import pycountry


class Category(StrEnum):
    WANTED_PERSONS = "wanted_persons"
    TERRORISM_SUSPECTS = "terrorism_suspects"
    TRAVEL_DOCUMENTS = "travel_documents"
    VEHICLES = "vehicles"
    ARTWORKS = "artworks"
    DNA_PROFILES = "dna_profiles"
    FINGERPRINTS = "fingerprints"


PERSON_CATEGORIES = frozenset({Category.WANTED_PERSONS, Category.TERRORISM_SUSPECTS})


class AgencyKind(StrEnum):
    NCB = "ncb"
    POLICE = "police"
    BORDER = "border"
    CUSTOMS = "customs"
    IMMIGRATION = "immigration"


class Purpose(StrEnum):
    BORDER_CONTROL = "border_control"
    CRIMINAL_INVESTIGATION = "criminal_investigation"
    COUNTER_TERRORISM = "counter_terrorism"
    VEHICLE_CHECK = "vehicle_check"
    ART_TRAFFICKING = "art_trafficking"
    IDENTIFICATION = "identification"


@total_ordering
class AnswerLevel(Enum):
    """How much of a hit a peer may see; ordered none < hit < summary < full."""

    NONE = "none"
    HIT = "hit"
    SUMMARY = "summary"
    FULL = "full"

    @property
    def rank(self) -> int:
        return _LEVEL_RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, AnswerLevel):
            return NotImplemented
        return self.rank < other.rank


_LEVEL_RANK = {AnswerLevel.NONE: 0, AnswerLevel.HIT: 1, AnswerLevel.SUMMARY: 2, AnswerLevel.FULL: 3}

NODE_ID_RE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,8})?$")

# XK (Kosovo) is user-assigned in ISO 3166 but used by ICAO and INTERPOL for documents.
ALPHA2 = frozenset({*(c.alpha_2 for c in pycountry.countries), "XK"})
_ALPHA3_TO_2 = {c.alpha_3: c.alpha_2 for c in pycountry.countries}
# ICAO 9303 Part 3 codes that are not ISO 3166-1 alpha-3.
# Organisations (UNO, UNA, EUE, XPO…) issue documents too but have no country: None.
_ALPHA3_TO_2.update(
    {
        "D<<": "DE",
        "GBD": "GB",
        "GBN": "GB",
        "GBO": "GB",
        "GBP": "GB",
        "GBS": "GB",
        "UNK": "XK",
        "RKS": "XK",
    }
)


def is_country(code: str) -> bool:
    """True when code is an ISO 3166-1 alpha-2 country code."""
    return code in ALPHA2


def country_from_alpha3(code: str) -> str | None:
    """The alpha-2 code for an ICAO 9303 / ISO 3166-1 alpha-3 code, or None when unknown."""
    return _ALPHA3_TO_2.get(code.upper().ljust(3, "<"))


def is_node_id(value: str) -> bool:
    """True for `FR` or `FR-2`: an alpha-2 country code, optionally with a suffix."""
    return bool(NODE_ID_RE.match(value)) and value[:2] in ALPHA2


# Codes people write for a country that ISO 3166-1 spells otherwise.
_COUNTRY_HINTS = {"UK": "GB", "EL": "GR"}


def node_id_problem(value: str, *, groups_allowed: bool) -> str:
    """An admin-facing reason why `value` is not a node id."""
    if NODE_ID_RE.match(value.upper()) and value.upper()[:2] not in ALPHA2:
        code = value[:2]
        message = f"{code!r} is not an ISO 3166-1 alpha-2 country code"
        if code.upper() in _COUNTRY_HINTS:
            message += f" (did you mean {_COUNTRY_HINTS[code.upper()]!r}?)"
        return message
    if value != value.upper() and is_node_id(value.upper()):
        return f"node ids are upper case: write {value.upper()!r}, not {value!r}"
    if len(value) == 3 and value.isalpha() and (alpha2 := country_from_alpha3(value.upper())):
        return f"{value!r} looks like an alpha-3 code; node ids use alpha-2: {alpha2!r}"
    if value.startswith("group:") and not groups_allowed:
        return f"{value!r}: a group lists node ids and cannot contain another group"
    what = "a node id ('FR' or 'FR-2')"
    if groups_allowed:
        what += ", 'group:NAME' or '*'"
    return f"{value!r} is not {what}"


# One name for one thing on every surface: import rows, check criteria, the record's fields
# (what `redact:` and `search:` name), the local API's subject and the command-line options
# (`--` and the name with dashes). A name that could mean two things says whose it is
# (`document_country`, `plate_country`); otherwise FollowTheMoney's property, in snake case
# (`first_name` for firstName). docs/vocabulary.md is generated from these and the kinds.
DOCUMENT_NUMBER = "document_number"
DOCUMENT_COUNTRY = "document_country"
DOCUMENT_TYPE = "document_type"
PLATE_COUNTRY = "plate_country"

V = TypeVar("V")

_DOCUMENT_NUMBER_ONLY = {"document_numbers": DOCUMENT_NUMBER}
OLD_SPELLINGS: dict[Category, dict[str, str]] = {
    Category.TRAVEL_DOCUMENTS: {"number": DOCUMENT_NUMBER, "country": DOCUMENT_COUNTRY},
    Category.VEHICLES: {"country": PLATE_COUNTRY},
    Category.WANTED_PERSONS: _DOCUMENT_NUMBER_ONLY,
    Category.TERRORISM_SUSPECTS: _DOCUMENT_NUMBER_ONLY,
}
"""Names a category's fields had before they took their one name, old → new: peers of wire
v1, import files, stored records and policies written with them keep working."""


def current_names(category: Category, given: Mapping[str, V]) -> Mapping[str, V]:
    """`given` with every old spelling of a field of `category` read as its name today. The
    name today wins when both are given. Unchanged (the same object) when none is old, so
    that the usual case costs one dictionary lookup per old spelling."""
    old = OLD_SPELLINGS.get(category)
    if not old or not any(name in given for name in old):
        return given
    renamed = {old.get(name, name): value for name, value in given.items() if name not in old}
    for name, value in given.items():
        if name in old:
            renamed.setdefault(old[name], value)
    return renamed


def current_name(category: Category, name: str) -> str:
    """A field's name today, for one name written with its old spelling (policies)."""
    return OLD_SPELLINGS.get(category, {}).get(name, name)


# Wire protocol v1 (docs/protocol.md §6, §7.4, §11) keeps the names its first peers know:
# queries are closed, so a v1 responder refuses a criterion it does not know, and a v1
# querier reads a record's members by their first names. Today's name → the v1 name, for
# what a requester sends and what a responder puts in an answer's records; a responder
# also reads today's names in criteria, and a querier reads either in records (current_names).
WIRE_V1_CRITERIA: dict[Category, dict[str, str]] = {
    Category.TRAVEL_DOCUMENTS: {DOCUMENT_NUMBER: "number", DOCUMENT_COUNTRY: "country"},
    Category.VEHICLES: {PLATE_COUNTRY: "country"},
}
_PERSON_RECORD = {DOCUMENT_NUMBER: "document_numbers"}
WIRE_V1_RECORD: dict[Category, dict[str, str]] = {
    Category.TRAVEL_DOCUMENTS: {DOCUMENT_NUMBER: "number", DOCUMENT_COUNTRY: "country"},
    Category.WANTED_PERSONS: _PERSON_RECORD,
    Category.TERRORISM_SUSPECTS: _PERSON_RECORD,
}


def _renamed(names: Mapping[str, str] | None, given: Mapping[str, V]) -> Mapping[str, V]:
    # The same object back when nothing is renamed: on the answering path most checks'
    # categories have no v1 name, and then this costs one dictionary lookup.
    if not names or not any(name in given for name in names):
        return given
    return {names.get(name, name): value for name, value in given.items()}


def wire_criteria(category: Category, criteria: Mapping[str, V]) -> Mapping[str, V]:
    """A check's criteria under the names wire v1 gives them, as a requester sends them."""
    return _renamed(WIRE_V1_CRITERIA.get(category), criteria)


def wire_record(category: Category, record: Mapping[str, V]) -> Mapping[str, V]:
    """A record's fields under the names wire v1 gives them, as a responder answers them."""
    return _renamed(WIRE_V1_RECORD.get(category), record)
