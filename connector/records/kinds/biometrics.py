"""DNA profiles and fingerprints: stored and imported by reference; their matchers come later."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from connector.errors import InvalidCriteria
from connector.records.kinds.base import KeyColumn, Kind, Lookup, Record, RowError
from connector.records.rows import describe_validation, empty_is_none
from connector.vocabulary import Category

RecordId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
_ALLELE = re.compile(r"^\d{1,2}(\.\d)?$|^[XY]$")


class DnaProfileRow(BaseModel):
    """A short-tandem-repeat profile: locus → the two alleles, e.g. {"D8S1179": "13,14"}."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)

    id: RecordId
    profile_type: Literal["person", "stain", "missing_person", "unknown_body"] = "stain"
    loci: Annotated[
        dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{2,20}$")], str],
        Field(min_length=1, max_length=64),
    ]
    sample_reference: Annotated[str, StringConstraints(max_length=64)] | None = None
    case_reference: Annotated[str, StringConstraints(max_length=64)] | None = None
    contact: Annotated[str, StringConstraints(max_length=200)] | None = None

    _empty = field_validator("sample_reference", "case_reference", "contact", mode="before")(
        empty_is_none
    )

    @field_validator("loci")
    @classmethod
    def _alleles(cls, v: dict[str, str]) -> dict[str, str]:
        for locus, alleles in v.items():
            parts = [a.strip() for a in alleles.split(",")]
            if not 1 <= len(parts) <= 2 or not all(_ALLELE.match(a) for a in parts):
                raise ValueError(
                    f"locus {locus}: {alleles!r} is not one or two alleles such as '13,14' or '9.3'"
                )
        return {k: ",".join(a.strip() for a in v.split(",")) for k, v in v.items()}


class FingerprintRow(BaseModel):
    """One finger's minutiae template, as the national AFIS exports it (base64)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)

    id: RecordId
    finger: Annotated[int, Field(ge=0, le=10)] = 0  # ANSI/NIST finger position; 0 unknown
    template_format: Literal["iso19794-2", "ansi378", "xyt"] = "iso19794-2"
    template: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/=_-]{16,65536}$")]
    case_reference: Annotated[str, StringConstraints(max_length=64)] | None = None
    contact: Annotated[str, StringConstraints(max_length=200)] | None = None

    _empty = field_validator("case_reference", "contact", mode="before")(empty_is_none)


class _StoredOnly(Kind):
    """Held and importable; checks are answered `error` / `category_not_held` until a
    matcher exists, never with a guess."""

    key_columns = (KeyColumn(name="ref_key", length=64),)
    natural_key = ("ref_key",)
    indexes = (("ref_key",),)
    csv_required = frozenset({"id"})
    searchable = False
    row_model: type[BaseModel]

    def parse_row(self, raw: Mapping[str, Any]) -> Record:
        try:
            row = self.row_model.model_validate(raw)
        except ValidationError as exc:
            raise RowError(describe_validation(exc)) from exc
        dumped = row.model_dump(mode="json")
        record_id = str(dumped.pop("id"))
        fields = {k: v for k, v in dumped.items() if v is not None}
        return Record(
            id=record_id, category=self.category, keys={"ref_key": record_id}, fields=fields
        )

    def parse_criteria(self, raw: Mapping[str, object]) -> None:
        raise InvalidCriteria(
            f"{self.category.value} cannot be searched on this node yet", field="category"
        )

    def lookups(self, criteria: Any) -> Sequence[Lookup]:
        return ()


class DnaProfiles(_StoredOnly):
    category = Category.DNA_PROFILES
    row_model = DnaProfileRow


class Fingerprints(_StoredOnly):
    category = Category.FINGERPRINTS
    row_model = FingerprintRow
