"""Typed records of each category, parsed once from import rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, field_validator

from connector.errors import InvalidCriteria
from connector.records.documents import DOCUMENT_TYPES, normalise_document_number
from connector.vocabulary import Category, country_from_alpha3, is_country

DocumentStatus = Literal["stolen", "lost", "revoked", "invalidated"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TravelDocument:
    id: str
    number: str
    number_key: str
    country: str
    document_type: str
    status: DocumentStatus
    reported_on: date | None
    holder_name: str | None
    remarks: str | None

    def fields(self) -> dict[str, Any]:
        """The record as a peer may see it at `full` level (internal keys left out)."""
        out = {"number": self.number, "country": self.country,
               "document_type": self.document_type, "status": self.status,
               "reported_on": self.reported_on.isoformat() if self.reported_on else None,
               "holder_name": self.holder_name, "remarks": self.remarks}
        return {k: v for k, v in out.items() if v is not None}


class TravelDocumentRow(BaseModel):
    """One import row of `travel_documents` (NDJSON object or CSV line)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None
    number: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    country: Annotated[str, StringConstraints(max_length=8, to_upper=True)]
    document_type: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{1,2}$",
                                                    to_upper=True)] = "P"

    @field_validator("document_type")
    @classmethod
    def _document_class(cls, v: str) -> str:
        if v[0] not in DOCUMENT_TYPES:
            raise ValueError(f"{v!r}: an ICAO document code starts with one of "
                             f"{', '.join(sorted(DOCUMENT_TYPES))} (P passport, I/A/C identity "
                             "card, V visa)")
        return v
    status: DocumentStatus
    reported_on: date | None = None
    holder_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    remarks: Annotated[str, StringConstraints(max_length=1000)] | None = None

    @field_validator("country")
    @classmethod
    def _country(cls, v: str) -> str:
        if not is_country(v):
            alpha2 = country_from_alpha3(v) if len(v) == 3 else None
            hint = f" (did you mean {alpha2}?)" if alpha2 else ""
            raise ValueError(f"{v!r} is not an ISO 3166-1 alpha-2 country code{hint}")
        return v

    @field_validator("reported_on")
    @classmethod
    def _not_future(cls, v: date | None) -> date | None:
        if v is not None and v > date.today():
            raise ValueError("date reported lies in the future")
        return v

    @field_validator("holder_name", "remarks", "id", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if v == "" else v

    @field_validator("reported_on", mode="before")
    @classmethod
    def _empty_date(cls, v: Any) -> Any:
        return None if v == "" else v


class RowError(ValueError):
    """A row that cannot be imported, with a human-readable reason."""


def describe_validation(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}"
        for e in exc.errors(include_url=False)
    )


def travel_document_from_row(row: Mapping[str, Any]) -> TravelDocument:
    try:
        parsed = TravelDocumentRow.model_validate(row)
    except ValidationError as exc:
        raise RowError(describe_validation(exc)) from exc
    try:
        key = normalise_document_number(parsed.number)
    except InvalidCriteria as exc:
        raise RowError(f"number: {exc.detail}") from exc
    return TravelDocument(
        id=parsed.id or f"{parsed.country}-{parsed.document_type}-{key}",
        number=parsed.number, number_key=key, country=parsed.country,
        document_type=parsed.document_type, status=parsed.status,
        reported_on=parsed.reported_on, holder_name=parsed.holder_name, remarks=parsed.remarks,
    )


ROW_PARSERS = {Category.TRAVEL_DOCUMENTS: travel_document_from_row}


def make_ref(node: str, category: Category, record_id: str) -> str:
    return f"{node}:{category.value}:{record_id}"


