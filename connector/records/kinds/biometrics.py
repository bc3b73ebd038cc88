"""DNA profiles, searched by the Prüm matching rules through an index; fingerprints, ISO/IEC
19794-2 minutiae records compared with NIST bozorth3."""

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
    model_validator,
)

from connector.errors import InvalidCriteria, field_problems
from connector.protocol import MAX_TEMPLATE_CHARS
from connector.records.dna.keys import keys_shared_at_least, profile_keys
from connector.records.dna.matching import compare
from connector.records.dna.profile import FULL_MINIMUM, Profile, ProfileError, parse_profile
from connector.records.fingerprints.extraction import (
    MAX_IMAGE_CHARS,
    ImageError,
    Mindtct,
    decode_image,
)
from connector.records.fingerprints.iso19794 import (
    FINGER_NAMES,
    FingerView,
    TemplateError,
    read_template,
    usable,
)
from connector.records.fingerprints.matcher import Bozorth3, PreparedCache, decode_template
from connector.records.kinds.base import KeyColumn, KeyQuery, Kind, Lookup, Match, Record, RowError
from connector.records.rows import describe_validation, empty_is_none
from connector.settings.config import DEFAULT_FINGERPRINT_THRESHOLD, Matching
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


class FingerprintRow(BaseModel):
    """One finger: its minutiae as an ISO/IEC 19794-2 record (2005 or 2011) of one view, or
    its image (PNG), from which this node extracts them; either base64."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)

    id: RecordId
    # ISO/IEC 19794-2 finger position, 0 (unknown) to 10; taken from the record when absent.
    finger: Annotated[int, Field(ge=0, le=10)] | None = None
    template_format: Literal["iso19794-2"] = "iso19794-2"
    template: Annotated[str, StringConstraints(max_length=MAX_TEMPLATE_CHARS)] | None = None
    image: Annotated[str, StringConstraints(max_length=MAX_IMAGE_CHARS)] | None = None
    case_reference: Annotated[str, StringConstraints(max_length=64)] | None = None
    contact: Annotated[str, StringConstraints(max_length=200)] | None = None

    _empty = field_validator(
        "finger", "template", "image", "case_reference", "contact", mode="before"
    )(empty_is_none)

    @model_validator(mode="after")
    def _template_or_image(self) -> FingerprintRow:
        if (self.template is None) == (self.image is None):
            raise ValueError("give a template or an image (one of them)")
        return self


class FingerprintCriteriaModel(BaseModel):
    """A fingerprint check as the wire carries it (protocol §6.5)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    template: Annotated[str, StringConstraints(min_length=16, max_length=MAX_TEMPLATE_CHARS)]
    finger: Annotated[int, Field(ge=0, le=10)] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FingerprintCriteria:
    """The finger views a check searches for, the text they came in (its subject), and the
    bozorth3 score a candidate must reach (the node's, `Kind.at_node`)."""

    views: tuple[FingerView, ...]
    text: str
    threshold: int = DEFAULT_FINGERPRINT_THRESHOLD

    @property
    def key(self) -> str:
        """What the check's prepared views are cached by: its template and fingers."""
        return f"{self.text}#{','.join(str(v.finger) for v in self.views)}"


class Fingerprints(Kind):
    """Every held print of a searched finger (and every print of an unknown finger) scored
    with NIST bozorth3; candidates at or above the threshold are hits, best first, each a
    candidate for a human examiner (`verification_required`), never an identification."""

    category = Category.FINGERPRINTS
    row_model = FingerprintRow
    key_columns = (KeyColumn(name="ref_key", length=64),)
    natural_key = ("ref_key",)
    indexes = (("ref_key",),)
    csv_required = frozenset({"id", "template"})
    keyed = True
    keys_version = "1"
    exhaustive_keys = True
    verification_required = True
    warms_up = True
    scores_apart = True
    compared = MappingProxyType(
        {"template": frozenset({"template"}), "finger": frozenset({"template"})}
    )
    identifying = frozenset({"template"})

    def __init__(self) -> None:
        self.matcher = Bozorth3()
        self.prepared = PreparedCache(self.matcher)
        self.mindtct = Mindtct()

    def warm(self) -> None:
        self.matcher.warm()

    def parse_row(self, raw: Mapping[str, Any]) -> Record:
        try:
            row = FingerprintRow.model_validate(raw)
        except ValidationError as exc:
            raise RowError(describe_validation(exc)) from exc
        fields = row.model_dump(exclude={"id", "image"}, exclude_none=True)
        if row.image is not None:
            # An image is kept only as what it gives: minutiae, and NFIQ 2's quality.
            try:
                extracted = self.mindtct.extract(decode_image(row.image), finger=row.finger or 0)
            except ImageError as exc:
                raise RowError(f"image: {exc}") from None
            fields["template"] = extracted.template
            if extracted.nfiq2 is not None:
                fields["nfiq2"] = extracted.nfiq2
        try:
            template = usable(read_template(decode_template(fields["template"])))
        except (TemplateError, ValueError) as exc:
            raise RowError(f"template: {exc}") from None
        if len(template.views) != 1:
            raise RowError(
                f"template: {len(template.views)} finger views; import each finger as a row"
            )
        (view,) = template.views
        finger = row.finger if row.finger is not None else view.finger
        if view.finger and finger != view.finger:
            raise RowError(
                f"finger: {finger} ({FINGER_NAMES[finger]}), but the template's view is "
                f"finger {view.finger} ({FINGER_NAMES[view.finger]})"
            )
        fields["finger"] = finger
        return Record(id=row.id, category=self.category, keys={"ref_key": row.id}, fields=fields)

    def parse_criteria(self, raw: Mapping[str, object]) -> FingerprintCriteria:
        try:
            given = FingerprintCriteriaModel.model_validate(raw)
        except ValidationError as exc:
            first = field_problems(exc)[0]
            field = ".".join(str(part) for part in first.loc) or "template"
            raise InvalidCriteria(f"{field}: {first.reason}", field=field) from None
        try:
            template = usable(read_template(decode_template(given.template)))
        except (TemplateError, ValueError) as exc:
            raise InvalidCriteria(f"template: {exc}", field="template") from None
        views = template.views
        if given.finger is not None:
            # 0 (unknown) widens the search to every finger; another known finger than
            # the template's is a contradiction, not a search.
            wrong = [
                v.finger for v in views if given.finger and v.finger and v.finger != given.finger
            ]
            if wrong:
                raise InvalidCriteria(
                    f"finger {given.finger}, but the template holds finger {wrong[0]}",
                    field="finger",
                )
            views = tuple(replace(v, finger=given.finger) for v in views)
        return FingerprintCriteria(views=views, text=given.template)

    def at_node(self, criteria: FingerprintCriteria, matching: Matching) -> FingerprintCriteria:
        return replace(criteria, threshold=matching.fingerprints.threshold)

    def lookups(self, criteria: FingerprintCriteria) -> Sequence[Lookup]:
        return (KeyQuery(keys=finger_keys(criteria.views), at_least=1),)

    def search_keys(self, record: Record) -> list[str]:
        finger = record.fields.get("finger")
        return [ANY_FINGER, f"f:{finger if isinstance(finger, int) else 0}"]

    def score(self, criteria: FingerprintCriteria, record: Record) -> Match | None:
        text = record.fields.get("template")
        held = self.prepared.get(text) if isinstance(text, str) else None
        if not held:
            return None  # a print stored before it was read (db upgrade): never a hit
        finger = record.fields.get("finger", 0)
        best = 0
        for probe in self.prepared.probe(criteria):
            for gallery in held:
                if probe.finger and finger and probe.finger != finger:
                    continue
                best = max(best, self.matcher.score(probe, gallery))
        if best < criteria.threshold:
            return None
        reason = {"finger": finger, "bozorth3": best, "verification_required": True}
        return Match(
            record=record,
            score=round(best / (best + criteria.threshold), 4),
            reasons=(reason,),
        )

    def subject(self, criteria: FingerprintCriteria) -> str | None:
        return "template:" + criteria.text

    def variant(self, criteria: FingerprintCriteria) -> int:
        return hash((criteria.text, tuple(v.finger for v in criteria.views)))


ANY_FINGER = "f:*"
"""The key every print holds: a view of an unknown finger is compared with all."""


def finger_keys(views: Sequence[FingerView]) -> tuple[str, ...]:
    """The keys whose prints a check's views are compared with: a known finger's own and
    those of prints of unknown finger; every print when a view's finger is unknown. A print
    of another known finger is of another finger, never a mate."""
    fingers = {v.finger for v in views}
    if 0 in fingers:
        return (ANY_FINGER,)
    return (*(f"f:{f}" for f in sorted(fingers)), "f:0")
