"""DNA profiles, searched by the Prüm matching rules through an index; fingerprints, stored
and imported by reference until their matcher comes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from connector.errors import InvalidCriteria, field_problems
from connector.records.dna.keys import keys_shared_at_least, profile_keys
from connector.records.dna.matching import compare
from connector.records.dna.profile import FULL_MINIMUM, Profile, ProfileError, parse_profile
from connector.records.kinds.base import KeyColumn, KeyQuery, Kind, Lookup, Match, Record, RowError
from connector.records.rows import describe_validation, empty_is_none
from connector.settings.config import Matching
from connector.vocabulary import Category

RecordId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
LocusName = Annotated[str, StringConstraints(min_length=1, max_length=20)]
AlleleText = Annotated[str, StringConstraints(max_length=16)]
MAX_LOCI = 32
"""Loci a profile may name (amelogenin included): every canonical locus fits."""


class DnaProfileRow(BaseModel):
    """A short-tandem-repeat profile: locus → the two alleles, e.g. {"D8S1179": "13,14"}."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)

    id: RecordId
    profile_type: Literal["person", "stain", "missing_person", "unknown_body"] = "stain"
    loci: Annotated[dict[LocusName, AlleleText], Field(min_length=1, max_length=MAX_LOCI)]
    sample_reference: Annotated[str, StringConstraints(max_length=64)] | None = None
    case_reference: Annotated[str, StringConstraints(max_length=64)] | None = None
    contact: Annotated[str, StringConstraints(max_length=200)] | None = None

    _empty = field_validator("sample_reference", "case_reference", "contact", mode="before")(
        empty_is_none
    )


class DnaCriteriaModel(BaseModel):
    """A DNA check as the wire carries it (protocol §6.4): the loci, and a threshold that
    may only raise the responder's own."""

    model_config = ConfigDict(extra="forbid", strict=True)

    loci: Annotated[dict[LocusName, AlleleText], Field(min_length=1, max_length=MAX_LOCI)]
    min_loci: Annotated[int, Field(ge=FULL_MINIMUM, le=MAX_LOCI)] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DnaCriteria:
    """What a DNA check looks for, and by which thresholds: the check's `min_loci` raised to
    the node's (`Kind.at_node`), near matches only where the node allows them."""

    profile: Profile
    min_loci: int = FULL_MINIMUM
    near: bool = True


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


class DnaProfiles(Kind):
    """Profiles found through triple-locus keys (`connector.records.dna.keys`), every
    candidate compared by the Prüm rules; a hit says full or near, how many loci were
    compared, and where a near match differs."""

    category = Category.DNA_PROFILES
    row_model = DnaProfileRow
    key_columns = (KeyColumn(name="ref_key", length=64),)
    natural_key = ("ref_key",)
    indexes = (("ref_key",),)
    csv_required = frozenset({"id"})
    keyed = True
    keys_version = "1"
    exhaustive_keys = True
    compared = MappingProxyType({"loci": frozenset({"loci"}), "min_loci": frozenset({"loci"})})
    identifying = frozenset({"loci"})

    def parse_row(self, raw: Mapping[str, Any]) -> Record:
        try:
            row = DnaProfileRow.model_validate(raw)
        except ValidationError as exc:
            raise RowError(describe_validation(exc)) from exc
        try:
            profile = parse_profile(row.loci)
        except ProfileError as exc:
            where = f"loci.{exc.locus}: " if exc.locus is not None else "loci: "
            raise RowError(where + str(exc)) from None
        fields = row.model_dump(exclude={"id"}, exclude_none=True)
        fields["loci"] = profile.as_fields()
        return Record(id=row.id, category=self.category, keys={"ref_key": row.id}, fields=fields)

    def parse_criteria(self, raw: Mapping[str, object]) -> DnaCriteria:
        try:
            given = DnaCriteriaModel.model_validate(raw)
        except ValidationError as exc:
            first = field_problems(exc)[0]
            field = ".".join(str(part) for part in first.loc) or "loci"
            raise InvalidCriteria(f"{field}: {first.reason}", field=field) from None
        try:
            profile = parse_profile(given.loci, minimum=given.min_loci or FULL_MINIMUM)
        except ProfileError as exc:
            field = "loci" if exc.locus is None else f"loci.{exc.locus}"
            raise InvalidCriteria(str(exc), field=field) from None
        return DnaCriteria(profile=profile, min_loci=given.min_loci or FULL_MINIMUM)

    def at_node(self, criteria: DnaCriteria, matching: Matching) -> DnaCriteria:
        return replace(
            criteria,
            min_loci=max(criteria.min_loci, matching.dna.min_loci),
            near=matching.dna.allow_near_match,
        )

    def restrict(self, criteria: DnaCriteria, searched: frozenset[str]) -> DnaCriteria | None:
        # A profile is searched whole or not at all: its loci are one field.
        return criteria if "loci" in searched else None

    def lookups(self, criteria: DnaCriteria) -> Sequence[Lookup]:
        return (
            KeyQuery(
                keys=tuple(profile_keys(criteria.profile)),
                at_least=keys_shared_at_least(criteria.min_loci),
            ),
        )

    def search_keys(self, record: Record) -> list[str]:
        return profile_keys(stored_profile(record))

    def score(self, criteria: DnaCriteria, record: Record) -> Match | None:
        found = compare(
            criteria.profile, stored_profile(record), min_loci=criteria.min_loci, near=criteria.near
        )
        if found is None:
            return None
        reason: dict[str, Any] = {"match": found.quality, "loci_compared": found.loci_compared}
        if found.locus is not None:
            reason["locus"] = found.locus
        return Match(
            record=record, score=1.0 if found.quality == "full" else NEAR_SCORE, reasons=(reason,)
        )

    def subject(self, criteria: DnaCriteria) -> str | None:
        return "profile:" + ";".join(f"{k}={v}" for k, v in criteria.profile.as_fields().items())


NEAR_SCORE = 0.9
"""A near match's score, below a full match's 1.0 so that full matches are listed first."""


def stored_profile(record: Record) -> Profile:
    """A held record's profile, as checked at its import. A profile imported before DNA
    search checked less: a locus that does not read now is left out (it can only make a
    match rarer), never an error at search or upgrade time."""
    loci = record.fields.get("loci")
    if not isinstance(loci, dict):
        return Profile(loci=())
    try:
        return parse_profile(loci, minimum=0)
    except ProfileError:
        readable = {}
        for name, text in loci.items():
            try:
                parse_profile({name: text}, minimum=0)
            except ProfileError:
                continue
            readable[name] = text
        try:
            return parse_profile(readable, minimum=0)
        except ProfileError:  # a locus named twice under two spellings
            return Profile(loci=())


class Fingerprints(_StoredOnly):
    category = Category.FINGERPRINTS
    row_model = FingerprintRow
