"""Travel documents: stolen, lost, revoked or invalidated, found by number key and country."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, field_validator

from connector.errors import InvalidCriteria
from connector.records.identifiers.documents import (
    DOCUMENT_TYPES,
    DocumentCriteria,
    document_criteria,
    normalise_document_number,
)
from connector.records.kinds.base import KeyColumn, Kind, Lookup, Record, RowError
from connector.records.rows import describe_validation, empty_is_none, not_in_future
from connector.vocabulary import (
    DOCUMENT_COUNTRY,
    DOCUMENT_NUMBER,
    DOCUMENT_TYPE,
    Category,
    country_from_alpha3,
    current_names,
    is_country,
)

DocumentStatus = Literal["stolen", "lost", "revoked", "invalidated"]


class TravelDocumentRow(BaseModel):
    """One import row of `travel_documents` (NDJSON object or CSV line)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None
    document_number: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    document_country: Annotated[str, StringConstraints(max_length=8, to_upper=True)]
    document_type: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{1,2}$", to_upper=True)] = (
        "P"
    )
    status: DocumentStatus
    reported_on: date | None = None
    holder_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    remarks: Annotated[str, StringConstraints(max_length=1000)] | None = None

    _empty = field_validator("holder_name", "remarks", "id", "reported_on", mode="before")(
        empty_is_none
    )
    _past = field_validator("reported_on")(not_in_future)

    @field_validator("document_type")
    @classmethod
    def _document_class(cls, v: str) -> str:
        if v[0] not in DOCUMENT_TYPES:
            raise ValueError(
                f"{v!r}: an ICAO document code starts with one of "
                f"{', '.join(sorted(DOCUMENT_TYPES))} (P passport, I/A/C identity "
                "card, V visa)"
            )
        return v

    @field_validator("document_country")
    @classmethod
    def _country(cls, v: str) -> str:
        if not is_country(v):
            alpha2 = country_from_alpha3(v) if len(v) == 3 else None
            hint = f" (did you mean {alpha2}?)" if alpha2 else ""
            raise ValueError(f"{v!r} is not an ISO 3166-1 alpha-2 country code{hint}")
        return v


class TravelDocuments(Kind):
    row_model = TravelDocumentRow
    category = Category.TRAVEL_DOCUMENTS
    key_columns = (
        KeyColumn(name="number_key", length=20),
        KeyColumn(name="country", length=2),
        KeyColumn(name="doc_class", length=1),
    )
    natural_key = ("number_key", "country")
    indexes = (("number_key",),)
    csv_required = frozenset({DOCUMENT_NUMBER, DOCUMENT_COUNTRY, "status"})
    # An MRZ carries the number, the issuing state and the document code.
    compared = MappingProxyType(
        {
            DOCUMENT_NUMBER: frozenset({DOCUMENT_NUMBER}),
            DOCUMENT_COUNTRY: frozenset({DOCUMENT_COUNTRY}),
            DOCUMENT_TYPE: frozenset({DOCUMENT_TYPE}),
            "mrz": frozenset({DOCUMENT_NUMBER, DOCUMENT_COUNTRY, DOCUMENT_TYPE}),
        }
    )
    identifying = frozenset({DOCUMENT_NUMBER, DOCUMENT_COUNTRY})

    def parse_row(self, raw: Mapping[str, Any]) -> Record:
        try:
            row = TravelDocumentRow.model_validate(current_names(self.category, raw))
        except ValidationError as exc:
            raise RowError(describe_validation(exc)) from exc
        try:
            key = normalise_document_number(row.document_number)
        except InvalidCriteria as exc:
            raise RowError(f"{DOCUMENT_NUMBER}: {exc.detail}") from exc
        fields = {
            DOCUMENT_NUMBER: row.document_number,
            DOCUMENT_COUNTRY: row.document_country,
            DOCUMENT_TYPE: row.document_type,
            "status": row.status,
            "reported_on": row.reported_on.isoformat() if row.reported_on else None,
            "holder_name": row.holder_name,
            "remarks": row.remarks,
        }
        return Record(
            id=row.id or f"{row.document_country}-{row.document_type}-{key}",
            category=self.category,
            id_given=row.id is not None,
            keys={
                "number_key": key,
                "country": row.document_country,
                "doc_class": row.document_type[0],
            },
            fields={k: v for k, v in fields.items() if v is not None},
        )

    def parse_criteria(self, raw: Mapping[str, object]) -> DocumentCriteria:
        return document_criteria(raw)

    def restrict(
        self, criteria: DocumentCriteria, searched: frozenset[str]
    ) -> DocumentCriteria | None:
        if DOCUMENT_NUMBER not in searched:
            return None
        return replace(
            criteria,
            country=criteria.country if DOCUMENT_COUNTRY in searched else None,
            document_type=criteria.document_type if DOCUMENT_TYPE in searched else None,
        )

    def subject(self, criteria: DocumentCriteria) -> str:
        return criteria.number_key

    def variant(self, criteria: DocumentCriteria) -> int:
        return hash((criteria.number_key, criteria.country, criteria.document_type))

    def lookups(self, criteria: DocumentCriteria) -> Sequence[Lookup]:
        lookup = {"number_key": criteria.number_key}
        if criteria.country is not None:
            lookup["country"] = criteria.country
        if criteria.document_type is not None:
            # Only the first letter is the document class (P, I, A, C, V) across issuers.
            lookup["doc_class"] = criteria.document_type[0]
        return (lookup,)
