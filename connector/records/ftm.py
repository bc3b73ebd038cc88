"""FollowTheMoney (FtM) entities mapped to the import rows of the record kinds."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from connector.records.identifiers.vin import normalise_vin
from connector.records.kinds.base import RowError
from connector.vocabulary import Category

# What the mapping knows about FtM (checked against followthemoney 4.11's schema files):
#
# * An entity is {"id": str, "schema": str, "properties": {name: [str, ...]}}: every property
#   value is a list of strings. Where a row field takes one value, the first is taken; when
#   the values disagree (two birth dates, two countries), the first is kept and nothing is
#   said. A bare string instead of a list is read as a list of one.
# * Countries are lowercase ISO 3166-1 alpha-2 (and a few non-ISO codes such as "zz" or
#   "suhh", which the kinds then refuse); they are uppercased here.
# * Dates are ISO 8601 prefixes ("1975", "1975-05", "1975-05-12", sometimes with a time):
#   the time is dropped, partial dates are kept.
# * FtM has no theft status, no warrant and no VIN property (Vehicle has registrationNumber,
#   country, model, buildDate; Vessel and Airplane extend it but are not road vehicles): the
#   status and the warrant country come from the caller. A non-standard `vin` property is read
#   when present, and a registrationNumber of 17 VIN characters is taken as the VIN, since no
#   plate is that long.
# * Properties with no counterpart in the category (Passport:startDate/endDate, holder, which
#   is another entity's id; Vehicle:owner, type; Person:notes, position, weakAlias, ...) are
#   ignored.

FTM_SCHEMATA: Mapping[Category, str] = {
    Category.TRAVEL_DOCUMENTS: "Passport",
    Category.VEHICLES: "Vehicle",
    Category.WANTED_PERSONS: "Person",
    Category.TERRORISM_SUSPECTS: "Person",
}
"""The FtM schema each category imports; the other categories have no FtM counterpart."""

MAX_ID_LENGTH = 64
_ID_HASH_LENGTH = 16
_ID_OTHER = re.compile(r"[^A-Za-z0-9._-]")
_ICAO_CODE = re.compile(r"[A-Za-z]{1,2}")
_YEAR = re.compile(r"(\d{4})(?:-\d{2}(?:-\d{2})?)?")


def record_id(entity_id: str) -> str:
    """The entity id in the kinds' id pattern: 1-64 of letters, digits, `.`, `_`, `-`.

    Every other character becomes `-`. An id still longer than 64 is cut and ends in `-` and
    16 hex digits of the SHA-256 of the original id, so the same entity always gets the same
    record id and two long ids sharing a beginning stay apart.
    """
    clean = _ID_OTHER.sub("-", entity_id)
    if len(clean) <= MAX_ID_LENGTH:
        return clean
    digest = hashlib.sha256(entity_id.encode()).hexdigest()[:_ID_HASH_LENGTH]
    return f"{clean[: MAX_ID_LENGTH - _ID_HASH_LENGTH - 1]}-{digest}"


def ftm_to_row(
    entity: Mapping[str, Any],
    *,
    category: Category,
    status: str | None = None,
    warrant_country: str | None = None,
) -> dict[str, Any]:
    """The import row of `category` for one FtM entity, ready for the kind's `parse_row`.

    `status` is the record status of travel documents and vehicles (FtM has none; required
    there, ignored for persons). `warrant_country` is the issuing country of a wanted person's
    warrant (FtM has none; required for wanted_persons, ignored elsewhere). The row is checked
    only as far as the mapping needs: the kind validates the values. RowError says why an
    entity cannot be mapped: a malformed entity, or a schema that does not fit the category.
    """
    expected = FTM_SCHEMATA.get(category)
    if expected is None:
        raise RowError(
            f"{category.value} cannot be imported from FtM entities: FtM covers {_covered()}"
        )
    schema = entity.get("schema")
    if not isinstance(schema, str) or not schema:
        raise RowError('schema: an FtM entity names its schema, e.g. "schema": "Person"')
    if schema != expected:
        fits = sorted(c.value for c, s in FTM_SCHEMATA.items() if s == schema)
        hint = f" (a {schema} goes to {' or '.join(fits)})" if fits else ""
        raise RowError(
            f"schema: {schema} does not fit {category.value}, which imports "
            f"{expected} entities{hint}"
        )
    props = _Properties(entity.get("properties"))
    entity_id = entity.get("id")
    if entity_id is not None and not isinstance(entity_id, str):
        raise RowError("id: the entity id must be a string")
    row_id = record_id(entity_id) if entity_id else None
    if category is Category.TRAVEL_DOCUMENTS:
        row = _passport(props, _required_status(status))
    elif category is Category.VEHICLES:
        row = _vehicle(props, _required_status(status))
    else:
        if row_id is None:
            raise RowError(
                "id: the entity has no id, and a person record needs one as its "
                "national record reference"
            )
        row = _person(props)
        if category is Category.WANTED_PERSONS:
            if not warrant_country:
                raise RowError(
                    "warrant_country: FtM has no warrant, so the warrant country "
                    "must be given for the whole import"
                )
            row["warrant_country"] = warrant_country.strip().upper()
    if row_id is not None:
        row["id"] = row_id
    return {k: v for k, v in row.items() if v is not None and v != []}


class _Properties:
    """An entity's `properties`, each a list of non-empty stripped strings."""

    def __init__(self, raw: object) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise RowError("properties: must be an object of property lists")
        self._raw: Mapping[str, Any] = raw

    def all(self, *names: str) -> list[str]:
        """Every value of the properties, in order, without repeats."""
        out: list[str] = []
        for name in names:
            values = self._raw.get(name)
            if values is None:
                continue
            if isinstance(values, str):
                values = [values]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise RowError(f"properties.{name}: must be a list of strings")
            for value in values:
                value = value.strip()
                if value and value not in out:
                    out.append(value)
        return out

    def first(self, *names: str) -> str | None:
        """The first value of the first of the properties that has one."""
        for name in names:
            values = self.all(name)
            if values:
                return values[0]
        return None


def _required_status(status: str | None) -> str:
    if not status:
        raise RowError(
            "status: FtM has no theft status, so the status must be given for the "
            "whole import (e.g. stolen)"
        )
    return status.strip().lower()


def _country(value: str | None) -> str | None:
    return None if value is None else value.upper()


def _date(value: str | None) -> str | None:
    """An FtM date without its time, if any: `1975`, `1975-05` and `1975-05-12` stay."""
    return None if value is None else value.split("T", 1)[0]


def _passport(props: _Properties, status: str) -> dict[str, Any]:
    number = props.first("number", "passportNumber")
    if number is None:
        raise RowError("document_number: the Passport has no number (nor passportNumber)")
    # FtM's `type` is free text ("Passport", "Diplomatic passport"); only an ICAO document
    # code (P, PD, ...) is taken from it, anything else is a passport: P.
    kind = props.first("type")
    code = kind.upper() if kind is not None and _ICAO_CODE.fullmatch(kind) else "P"
    # givenName and surname are deprecated (the holder is a linked Person) but still found.
    holder = " ".join(n for n in (props.first("givenName"), props.first("surname")) if n)
    return {
        "document_number": number,
        "document_country": _country(props.first("country")),
        "document_type": code,
        "status": status,
        "holder_name": holder or None,
    }


def _vehicle(props: _Properties, status: str) -> dict[str, Any]:
    registrations = props.all("registrationNumber")
    vins = [r for r in registrations if _is_vin(r)]
    plates = [r for r in registrations if r not in vins]
    build = _date(props.first("buildDate"))
    year: int | None = None
    if build is not None:
        found = _YEAR.fullmatch(build)
        if found is None:
            raise RowError(f"buildDate: {build[:20]!r} is not a date")
        year = int(found[1])
    return {
        "vin": props.first("vin") or (vins[0] if vins else None),
        "plate": plates[0] if plates else None,
        "plate_country": _country(props.first("country")),
        "model": props.first("model"),
        "year": year,
        "status": status,
    }


def _is_vin(value: str) -> bool:
    try:
        normalise_vin(value)
    except ValueError:
        return False
    return True


def _person(props: _Properties) -> dict[str, Any]:
    first, last = props.first("firstName"), props.first("lastName")
    middle = props.first("middleName", "fatherName")
    names = props.all("name", "alias", "previousName")
    # The name in another script than Latin (Cyrillic, Arabic, ...), else, when FtM gives no
    # first or last name, the full name as written: a person needs one of the three.
    original = next((n for n in names if _non_latin(n)), None)
    if original is None and first is None and last is None and names:
        original = names[0]
    if original is None and first is None and last is None:
        raise RowError("name: the Person has no name, firstName or lastName")
    structured = {
        " ".join(p for p in parts if p).casefold()
        for parts in ((first, middle, last), (first, last), (last, first))
    }
    aliases = [n for n in names if n != original and n.casefold() not in structured]
    return {
        "first_name": first,
        "last_name": last,
        "middle_name": middle,
        "aliases": aliases,
        "name_original_script": original,
        "birth_date": _date(props.first("birthDate")),
        "birth_place": props.first("birthPlace"),
        "nationality": _countries(props.all("nationality", "citizenship")),
        "sex": _sex(props.first("gender")),
        "document_number": props.all("passportNumber", "idNumber"),
        "address": props.first("address"),
        "phone": props.first("phone"),
    }


def _countries(codes: Iterable[str]) -> list[str]:
    out: list[str] = []
    for code in codes:
        if code.upper() not in out:
            out.append(code.upper())
    return out


def _sex(gender: str | None) -> str | None:
    # FtM genders are male, female or other already; anything else goes to the kind as is.
    return None if gender is None else gender.lower()


def _non_latin(name: str) -> bool:
    return any(ch.isalpha() and not unicodedata.name(ch, "").startswith("LATIN") for ch in name)


def _covered() -> str:
    return ", ".join(f"{c.value} ({s})" for c, s in FTM_SCHEMATA.items())
