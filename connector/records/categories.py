"""What each record category holds, and which fields each answer level reveals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from connector.vocabulary import AnswerLevel, Category


@dataclass(frozen=True, slots=True, kw_only=True)
class CategorySpec:
    """The fields of one category and the fixed subset that `summary` reveals.

    `hit` reveals no field at all (only the ref); `full` reveals every field.
    """

    category: Category
    fields: tuple[str, ...]
    summary: frozenset[str]

    def visible_fields(self, level: AnswerLevel) -> frozenset[str]:
        if level is AnswerLevel.FULL:
            return frozenset(self.fields)
        if level is AnswerLevel.SUMMARY:
            return self.summary
        return frozenset()


def _spec(category: Category, fields: tuple[str, ...], summary: tuple[str, ...]) -> CategorySpec:
    missing = set(summary) - set(fields)
    assert not missing, f"summary fields not in {category}: {missing}"
    return CategorySpec(category=category, fields=fields, summary=frozenset(summary))


_PERSON_FIELDS = (
    "first_name",
    "last_name",
    "middle_name",
    "aliases",
    "name_original_script",
    "birth_date",
    "birth_place",
    "nationality",
    "sex",
    "document_number",
    "address",
    "phone",
    "distinguishing_marks",
    "photo_ref",
)

CATEGORIES: Mapping[Category, CategorySpec] = {
    spec.category: spec
    for spec in (
        _spec(
            Category.TRAVEL_DOCUMENTS,
            (
                "document_number",
                "document_country",
                "document_type",
                "status",
                "reported_on",
                "holder_name",
                "remarks",
            ),
            ("document_number", "document_country", "document_type", "status", "reported_on"),
        ),
        _spec(
            Category.WANTED_PERSONS,
            (
                *_PERSON_FIELDS,
                "warrant_country",
                "warrant_reference",
                "charges",
                "notice_type",
                "dangerous",
                "contact",
            ),
            (
                "first_name",
                "last_name",
                "birth_date",
                "nationality",
                "sex",
                "warrant_country",
                "charges",
                "notice_type",
                "dangerous",
                "contact",
            ),
        ),
        _spec(
            Category.TERRORISM_SUSPECTS,
            (*_PERSON_FIELDS, "organisation", "listing_reference", "dangerous", "contact"),
            ("first_name", "last_name", "birth_date", "nationality", "sex", "dangerous", "contact"),
        ),
        _spec(
            Category.VEHICLES,
            (
                "vin",
                "plate",
                "plate_country",
                "make",
                "model",
                "colour",
                "year",
                "stolen_on",
                "status",
                "owner_name",
                "remarks",
            ),
            (
                "vin",
                "plate",
                "plate_country",
                "make",
                "model",
                "colour",
                "year",
                "stolen_on",
                "status",
            ),
        ),
        _spec(
            Category.ARTWORKS,
            (
                "title",
                "artist",
                "object_type",
                "materials",
                "dimensions",
                "period",
                "description",
                "stolen_on",
                "stolen_from",
                "image_ref",
                "contact",
            ),
            ("title", "artist", "object_type", "period", "stolen_on", "contact"),
        ),
        _spec(
            Category.DNA_PROFILES,
            ("profile_type", "loci", "sample_reference", "case_reference", "contact"),
            ("profile_type", "case_reference", "contact"),
        ),
        _spec(
            Category.FINGERPRINTS,
            ("finger", "template_format", "template", "case_reference", "contact"),
            ("finger", "case_reference", "contact"),
        ),
    )
}


_FIELDS: Mapping[Category, frozenset[str]] = {
    c: frozenset(spec.fields) for c, spec in CATEGORIES.items()
}


def fields_of(category: Category) -> frozenset[str]:
    return _FIELDS[category]
