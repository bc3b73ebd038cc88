"""Wanted persons and terrorism suspects, found by name, record reference or document number."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from connector.errors import InvalidCriteria, field_problems
from connector.records.identifiers.documents import MAX_KEY_LENGTH, normalise_document_number
from connector.records.kinds.base import (
    KeyClass,
    KeyColumn,
    KeyQuery,
    Kind,
    Lookup,
    Match,
    Record,
    RowError,
)
from connector.records.names.keys import MAX_KEY, query_keys, record_keys
from connector.records.names.normalise import names_of, tokens
from connector.records.names.score import PersonQuery, score_person
from connector.records.rows import describe_validation, empty_is_none
from connector.vocabulary import Category, country_from_alpha3, current_names, is_country

Sex = Literal["male", "female", "other", "unknown"]
NoticeType = Literal[
    "red", "blue", "green", "yellow", "black", "orange", "purple", "diffusion", "national"
]

DOC_COLUMNS = ("doc1", "doc2", "doc3", "doc4")
"""Key columns holding a person's first four distinct document-number keys."""
CONTRADICTED_SCORE = 0.6
"""The score of an identifier match whose birth date or nationality disagrees with the check."""

KNOWN_FROM = 10
"""A part of a check's name held as a name by this many persons or more is a name of its own:
a near match to another name counts less (`names.score.KNOWN_FACTOR`)."""
KEY_CLASSES = (
    ("e", KeyClass(weight=1.0, per_key=300)),
    ("d", KeyClass(weight=1.0, per_key=300)),
    ("t", KeyClass(weight=1.0, per_key=300)),
    ("q", KeyClass(weight=0.4, per_key=200)),
    ("s", KeyClass(weight=0.2, per_key=150)),
    ("n", KeyClass(weight=0.0, per_key=KNOWN_FROM)),
)
"""Name keys by what they say: a pair of parts (as spelt, or by sound with one perhaps
misspelt) says most and may be shared by a few hundred namesakes before it is ignored; a
part with two letters of another says less; a single part least, and one held by more than
150 records only when nothing else finds anyone."""
CANDIDATES = 100
"""Records scored per name check: those the keys weigh most. Enough for the namesakes of a
common name, few enough that scoring stays within a few milliseconds."""

_REF_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_PARTIAL_DATE_RE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_EARLIEST_BIRTH_YEAR = 1900
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_SEX = {"m": "male", "f": "female", "x": "other", "u": "unknown"}

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(max_length=1000)]


def partial_date(value: str) -> str:
    """`YYYY`, `YYYY-MM` or `YYYY-MM-DD`, checked to be a real date, not in the future and
    not before 1900 (a birth year before then is a typo); returned unchanged."""
    found = _PARTIAL_DATE_RE.fullmatch(value)
    if found is None:
        raise ValueError(f"{value[:20]!r} is not a date: give YYYY, YYYY-MM or YYYY-MM-DD")
    year = int(found[1])
    month = int(found[2]) if found[2] else None
    day = int(found[3]) if found[3] else None
    if year < _EARLIEST_BIRTH_YEAR:
        raise ValueError(f"{value!r}: a year before {_EARLIEST_BIRTH_YEAR} is not a birth year")
    if month is not None and not 1 <= month <= 12:
        raise ValueError(f"{value!r}: there is no month {month}")
    if month is not None and day is not None:
        try:
            date(year, month, day)
        except ValueError:
            raise ValueError(f"{value!r}: {_MONTHS[month - 1]} {year} has no day {day}") from None
    # Compared as far as the date goes: this year, or this month, is not the future.
    given = tuple(int(part) for part in found.groups() if part)
    today = date.today()
    if given > (today.year, today.month, today.day)[: len(given)]:
        raise ValueError("the date lies in the future")
    return value


def _split(value: Any) -> Any:
    """A CSV cell holds a list as `a|b|c`; an empty cell is an empty list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split("|") if part.strip()]
    return value


def _countries(codes: list[str], what: str) -> list[str]:
    out: list[str] = []
    for code in codes:
        if not is_country(code):
            alpha2 = country_from_alpha3(code) if len(code) == 3 else None
            hint = f" (did you mean {alpha2}?)" if alpha2 else ""
            raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 {what}{hint}")
        if code not in out:
            out.append(code)
    return out


class PersonRow(BaseModel):
    """What an import row of either person category holds (NDJSON object or CSV line).

    Lists (aliases, nationality, document_number, charges) are JSON arrays in NDJSON and
    `|`-separated cells in CSV. Field names are those of `connector.records.categories`.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)

    id: str
    first_name: Name | None = None
    last_name: Name | None = None
    middle_name: Name | None = None
    aliases: list[Name] = []
    name_original_script: Name | None = None
    birth_date: str | None = None
    birth_place: Name | None = None
    nationality: list[Annotated[str, StringConstraints(max_length=8, to_upper=True)]] = []
    sex: Sex | None = None
    document_number: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = []
    address: Text | None = None
    phone: Annotated[str, StringConstraints(max_length=100)] | None = None
    distinguishing_marks: Text | None = None
    photo_ref: Annotated[str, StringConstraints(max_length=500)] | None = None
    dangerous: bool | None = None
    contact: Name | None = None

    _empty = field_validator(
        "first_name",
        "last_name",
        "middle_name",
        "name_original_script",
        "birth_date",
        "birth_place",
        "sex",
        "address",
        "phone",
        "distinguishing_marks",
        "photo_ref",
        "dangerous",
        "contact",
        mode="before",
    )(empty_is_none)
    _lists = field_validator("aliases", "nationality", "document_number", mode="before")(_split)

    @field_validator("id", mode="before")
    @classmethod
    def _ref(cls, v: Any) -> Any:
        if v is None or v == "":
            raise ValueError("the national record reference is required, e.g. FR-2025-000123")
        if not (isinstance(v, str) and _REF_RE.fullmatch(v.strip())):
            raise ValueError(
                f"{str(v)[:80]!r} is not a record reference: 1 to 64 letters, "
                "digits, '.', '_' or '-', e.g. FR-2025-000123"
            )
        return v

    @field_validator("birth_date", mode="before")
    @classmethod
    def _year_as_number(cls, v: Any) -> Any:
        # {"birth_date": 1980} in NDJSON is a year.
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("birth_date")
    @classmethod
    def _birth_date(cls, v: str | None) -> str | None:
        return None if v is None else partial_date(v)

    @field_validator("nationality")
    @classmethod
    def _nationality(cls, v: list[str]) -> list[str]:
        return _countries(v, "country code")

    @field_validator("sex", mode="before")
    @classmethod
    def _sex(cls, v: Any) -> Any:
        if isinstance(v, str):
            lowered = v.strip().lower()
            return _SEX.get(lowered, lowered)
        return v

    @field_validator("document_number")
    @classmethod
    def _document_numbers(cls, v: list[str]) -> list[str]:
        for number in v:
            try:
                normalise_document_number(number)
            except InvalidCriteria as exc:
                raise ValueError(f"{number[:40]!r}: {exc.detail}") from None
        return v

    @model_validator(mode="after")
    def _named(self) -> Self:
        if not (self.last_name or self.first_name or self.name_original_script):
            raise ValueError("a person needs a last_name, a first_name or a name_original_script")
        return self


class WantedPersonRow(PersonRow):
    """One import row of `wanted_persons`: a person and the warrant or notice out for them."""

    warrant_country: Annotated[str, StringConstraints(max_length=8, to_upper=True)]
    warrant_reference: Annotated[str, StringConstraints(max_length=100)] | None = None
    charges: list[Annotated[str, StringConstraints(min_length=1, max_length=500)]] = []
    notice_type: NoticeType | None = None

    _wanted_empty = field_validator("warrant_reference", "notice_type", mode="before")(
        empty_is_none
    )
    _charges = field_validator("charges", mode="before")(_split)

    @field_validator("notice_type", mode="before")
    @classmethod
    def _notice_lower(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("warrant_country")
    @classmethod
    def _warrant_country(cls, v: str) -> str:
        return _countries([v], "country code")[0]


class TerrorismSuspectRow(PersonRow):
    """One import row of `terrorism_suspects`: a person and the listing that names them."""

    organisation: Name | None = None
    listing_reference: Annotated[str, StringConstraints(max_length=100)] | None = None

    _suspect_empty = field_validator("organisation", "listing_reference", mode="before")(
        empty_is_none
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonCriteria:
    """What a person check looks for: a record id, a document-number key, a name, or a
    name and a document number.

    With a `ref`, or a document number and no name, the check is an exact lookup, and
    `birth_date` and `nationality` only lower the score of a record that contradicts them.
    With a name (`tokens`) it is a name search: candidates by name keys (and the document
    number, if given), each scored with its reasons, hits decided by the category's
    threshold.
    """

    document_key: str | None
    document_number: str | None
    ref: str | None
    birth_date: str | None
    nationality: tuple[str, ...]
    tokens: tuple[str, ...] = ()
    birth_date_tolerance: int = 0
    sex: str | None = None
    known: frozenset[str] = frozenset()  # name parts the category holds in their own right
    # The forms of a record's name the tokens are compared with; None: all of NAME_FIELDS.
    name_fields: frozenset[str] | None = None

    @property
    def by_name(self) -> bool:
        return bool(self.tokens) and self.ref is None


NAME_FIELDS = frozenset(
    {"first_name", "middle_name", "last_name", "aliases", "name_original_script"}
)
"""The record fields a check's name is compared with: every written form of the name."""
_IDENTIFIERS = frozenset({"document_number", "ref"})
_NAMES = ("name", "first_name", "middle_name", "last_name", "name_original_script")
_DESCRIPTIONS = frozenset({*_NAMES, "birth_date", "birth_date_tolerance", "nationality", "sex"})
MAX_TOLERANCE = 10


class _NameCriteria(BaseModel):
    """The descriptive members of a person check, validated (pydantic) at the boundary."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, strict=True)

    name: Name | None = None
    first_name: Name | None = None
    middle_name: Name | None = None
    last_name: Name | None = None
    name_original_script: Name | None = None
    birth_date_tolerance: Annotated[int, Field(ge=0, le=MAX_TOLERANCE)] = 0
    sex: Sex | None = None

    @field_validator("sex", mode="before")
    @classmethod
    def _sex(cls, v: Any) -> Any:
        return _SEX.get(v.strip().lower(), v.strip().lower()) if isinstance(v, str) else v

    def name_tokens(self) -> tuple[str, ...]:
        """`name` if given, else first, middle and last name, else the original script."""
        if self.name:
            return tokens(self.name)
        written = [n for n in (self.first_name, self.middle_name, self.last_name) if n]
        if written:
            return tuple(t for n in written for t in tokens(n, whole=False))
        return tokens(self.name_original_script or "")


def _name_criteria(raw: Mapping[str, object]) -> _NameCriteria:
    try:
        return _NameCriteria.model_validate({k: v for k, v in raw.items() if v is not None})
    except ValidationError as exc:
        first = field_problems(exc)[0]
        field = str(first.loc[0]) if first.loc else "name"
        raise InvalidCriteria(f"{field}: {first.reason}", field=field) from None


def person_criteria(raw: Mapping[str, object]) -> PersonCriteria:
    """Validate a person check: a `name` (free text) or `first_name` / `middle_name` /
    `last_name` / `name_original_script`, a `document_number`, a `ref`, or several; with
    optional `birth_date` (year, year-month or full), `birth_date_tolerance` (years),
    `nationality` and `sex`.
    """
    unknown = sorted(str(key) for key in raw if key not in _IDENTIFIERS | _DESCRIPTIONS)
    if unknown:
        raise InvalidCriteria(
            f"unknown person criterion {unknown[0]!r}: expected name, first_name, last_name, "
            "middle_name, name_original_script, document_number or ref, optionally with "
            "birth_date, birth_date_tolerance, nationality and sex",
            field=unknown[0],
        )
    described = _name_criteria(raw)
    name_tokens = described.name_tokens()
    # A null identifier is no identifier: an empty lookup would return the whole category.
    if all(raw.get(key) is None for key in _IDENTIFIERS) and not name_tokens:
        named = next((k for k in _NAMES if raw.get(k) is not None), None)
        if named is not None:
            raise InvalidCriteria(f"{named} holds no letter or digit to search by", field=named)
        raise InvalidCriteria(
            "a person check needs a name, a document_number or a ref", field="name"
        )
    document_number = _string(raw, "document_number")
    document_key = None
    if document_number is not None:
        try:
            document_key = normalise_document_number(document_number)
        except InvalidCriteria as exc:
            raise InvalidCriteria(exc.detail, field="document_number") from exc
    ref = _string(raw, "ref")
    if ref is not None and not _REF_RE.fullmatch(ref):
        raise InvalidCriteria(
            f"ref {ref[:80]!r} is not a record reference: give the record's id (letters, "
            "digits, '.', '_', '-'), e.g. FR-2025-000123, not the NODE:category:id form",
            field="ref",
        )
    return PersonCriteria(
        document_key=document_key,
        document_number=document_number,
        ref=ref,
        birth_date=_birth_date(raw.get("birth_date")),
        nationality=_nationalities(raw.get("nationality")),
        tokens=name_tokens,
        birth_date_tolerance=described.birth_date_tolerance,
        sex=described.sex,
    )


def _string(raw: Mapping[str, object], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidCriteria(f"{key} must be a string", field=key)
    return value


def _birth_date(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidCriteria(
            "birth_date must be a string: YYYY, YYYY-MM or YYYY-MM-DD", field="birth_date"
        )
    try:
        return partial_date(value.strip())
    except ValueError as exc:
        raise InvalidCriteria(str(exc), field="birth_date") from None


def _nationalities(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    codes = [value] if isinstance(value, str) else value
    if not (isinstance(codes, list) and all(isinstance(c, str) for c in codes)):
        raise InvalidCriteria(
            "nationality must be a country code or a list of them", field="nationality"
        )
    try:
        return tuple(_countries([str(c).strip().upper() for c in codes], "country code"))
    except ValueError as exc:
        raise InvalidCriteria(str(exc), field="nationality") from None


def _compare_dates(given: str, recorded: str) -> str:
    """exact, compatible (equal as far as both go) or differs."""
    if given == recorded:
        return "exact"
    shared = min(len(given), len(recorded))
    return "compatible" if given[:shared] == recorded[:shared] else "differs"


class PersonKind(Kind):
    """What both person categories share: the row is the record, the record id is the
    natural key (`ref_key`), and a person's first four distinct document-number keys are
    indexed in `doc1`..`doc4`.

    A row with more than four document numbers is imported with all of them in its fields,
    but only the first four (distinct once normalised) can be searched for: the store keeps
    one value per key column, and four covers a passport, an identity card and two more.
    """

    row_model: ClassVar[type[PersonRow]]
    key_columns = (
        KeyColumn(name="ref_key", length=64),
        *(KeyColumn(name=c, length=MAX_KEY_LENGTH, nullable=True) for c in DOC_COLUMNS),
    )
    natural_key = ("ref_key",)
    indexes = (("ref_key",), *((c,) for c in DOC_COLUMNS))
    compared = MappingProxyType(
        {
            **dict.fromkeys(_NAMES, NAME_FIELDS),
            "document_number": frozenset({"document_number"}),
            "ref": frozenset(),
            "birth_date": frozenset({"birth_date"}),
            "birth_date_tolerance": frozenset({"birth_date"}),
            "nationality": frozenset({"nationality"}),
            "sex": frozenset({"sex"}),
        }
    )
    # A person is searched by every form of their name, as INTERPOL's searches do, and by
    # the documents they hold.
    identifying = NAME_FIELDS | {"document_number"}

    def parse_row(self, raw: Mapping[str, Any]) -> Record:
        try:
            row = self.row_model.model_validate(current_names(self.category, raw))
        except ValidationError as exc:
            raise RowError(describe_validation(exc)) from exc
        keys: list[str] = []
        for number in row.document_number:
            key = normalise_document_number(number)
            if key not in keys:
                keys.append(key)
        fields = row.model_dump(exclude={"id"}, exclude_none=True)
        searchable: list[str | None] = [*keys[: len(DOC_COLUMNS)]]
        searchable += [None] * (len(DOC_COLUMNS) - len(searchable))
        return Record(
            id=row.id,
            category=self.category,
            keys={"ref_key": row.id, **dict(zip(DOC_COLUMNS, searchable, strict=True))},
            fields={k: v for k, v in fields.items() if v != []},
        )

    def parse_criteria(self, raw: Mapping[str, object]) -> PersonCriteria:
        return person_criteria(raw)

    keyed = True
    keys_version = "3"  # 2: typo keys per part, exact pairs for short names, joined parts;
    # 3: parts as spelt a letter off with another by sound, parts counted, particles joined

    def search_keys(self, record: Record) -> list[str]:
        return record_keys(n.tokens for n in names_of(record.fields))

    def ranked(self, criteria: PersonCriteria) -> bool:
        return criteria.by_name

    def informed(self, criteria: PersonCriteria, held: Mapping[str, int]) -> PersonCriteria:
        known = frozenset(
            t for t in criteria.tokens if held.get(f"n:{t}"[:MAX_KEY], 0) >= KNOWN_FROM
        )
        return replace(criteria, known=known) if known else criteria

    def reference(self, criteria: PersonCriteria) -> str | None:
        return criteria.ref

    def restrict(self, criteria: PersonCriteria, searched: frozenset[str]) -> PersonCriteria | None:
        names = NAME_FIELDS & searched
        by_document = "document_number" in searched
        by_birth = "birth_date" in searched
        restricted = replace(
            criteria,
            tokens=criteria.tokens if names else (),
            name_fields=None if names == NAME_FIELDS else names,
            document_key=criteria.document_key if by_document else None,
            document_number=criteria.document_number if by_document else None,
            birth_date=criteria.birth_date if by_birth else None,
            birth_date_tolerance=criteria.birth_date_tolerance if by_birth else 0,
            nationality=criteria.nationality if "nationality" in searched else (),
            sex=criteria.sex if "sex" in searched else None,
        )
        if not restricted.tokens and restricted.ref is None and restricted.document_key is None:
            return None
        return restricted

    def variant(self, criteria: PersonCriteria) -> int:
        return hash(replace(criteria, document_number=None))

    def subject(self, criteria: PersonCriteria) -> str | None:
        if criteria.ref is not None:
            return "ref:" + criteria.ref
        if criteria.tokens:
            return "name:" + " ".join(sorted(criteria.tokens))
        return "document:" + (criteria.document_key or "")

    def lookups(self, criteria: PersonCriteria) -> Sequence[Lookup]:
        if criteria.by_name:
            found: list[Lookup] = [
                KeyQuery(
                    keys=tuple(query_keys(criteria.tokens)),
                    classes=KEY_CLASSES,
                    candidates=CANDIDATES,
                )
            ]
            if criteria.document_key is not None:
                found += [{column: criteria.document_key} for column in DOC_COLUMNS]
            return found
        if criteria.ref is None and criteria.document_key is None:
            return ()  # never an empty lookup: it would match every record
        ref: dict[str, str] = {} if criteria.ref is None else {"ref_key": criteria.ref}
        if criteria.document_key is None:
            return (ref,)
        return tuple({**ref, column: criteria.document_key} for column in DOC_COLUMNS)

    def score(self, criteria: PersonCriteria, record: Record) -> Match | None:
        if criteria.by_name:
            query = PersonQuery(
                tokens=criteria.tokens,
                birth_date=criteria.birth_date,
                birth_tolerance=criteria.birth_date_tolerance,
                nationality=criteria.nationality,
                sex=criteria.sex,
                document_keys=(criteria.document_key,) if criteria.document_key else (),
                known=criteria.known,
            )
            held = [k for c in DOC_COLUMNS if (k := record.keys.get(c))]
            written = record.fields
            if criteria.name_fields is not None:
                # A form of the name left out of the search must not find the record.
                written = {
                    k: v
                    for k, v in written.items()
                    if k not in NAME_FIELDS or k in criteria.name_fields
                }
            score, why = score_person(query, names_of(written), record.fields, held)
            return Match(record=record, score=score, reasons=why)
        reasons: list[Mapping[str, Any]] = []
        if criteria.document_key is not None:
            reasons.append({"field": "document_number", "match": "exact"})
        if criteria.ref is not None:
            reasons.append({"field": "ref", "match": "exact"})
        contradicted = False
        recorded_birth = record.fields.get("birth_date")
        if criteria.birth_date is not None and isinstance(recorded_birth, str):
            verdict = _compare_dates(criteria.birth_date, recorded_birth)
            contradicted |= verdict == "differs"
            reasons.append({"field": "birth_date", "match": verdict})
        recorded_nationality = record.fields.get("nationality")
        if criteria.nationality and isinstance(recorded_nationality, list) and recorded_nationality:
            given, recorded = set(criteria.nationality), set(recorded_nationality)
            verdict = (
                "exact" if given == recorded else "compatible" if given & recorded else "differs"
            )
            contradicted |= verdict == "differs"
            reasons.append({"field": "nationality", "match": verdict})
        return Match(
            record=record, score=CONTRADICTED_SCORE if contradicted else 1.0, reasons=tuple(reasons)
        )


class WantedPersons(PersonKind):
    """`wanted_persons`: a person and the warrant or notice (issuing country, charges,
    warrant reference, notice type). Found by name, document number or record reference.

    A CSV file must name the columns id, last_name and warrant_country (a row may leave
    last_name empty when first_name or name_original_script carries the name).
    """

    category = Category.WANTED_PERSONS
    row_model = WantedPersonRow
    csv_required = frozenset({"id", "last_name", "warrant_country"})


class TerrorismSuspects(PersonKind):
    """`terrorism_suspects`: a person, the organisation and the listing that names them.
    Found by name, document number or record reference.

    A CSV file must name the columns id and last_name (a row may leave last_name empty when
    first_name or name_original_script carries the name).
    """

    category = Category.TERRORISM_SUSPECTS
    row_model = TerrorismSuspectRow
    csv_required = frozenset({"id", "last_name"})
