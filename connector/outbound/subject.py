"""A subject check: what an officer has at hand (MRZ, name, plate, DNA, a fingerprint) split into
checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from connector.protocol import Check
from connector.records.identifiers.mrz import parse_mrz
from connector.vocabulary import (
    DOCUMENT_COUNTRY,
    DOCUMENT_NUMBER,
    DOCUMENT_TYPE,
    PLATE_COUNTRY,
    Category,
)

# The checks a subject becomes, by id: stable, so a client can find each in the answer.
DOCUMENT, WANTED, TERRORISM, VEHICLE = "document", "wanted_person", "terrorism_suspect", "vehicle"
DNA = "dna_profile"
FINGERPRINT = "fingerprint"


def _typed(
    help: str | None = None, *, old: str | None = None, loci: bool = False, template: bool = False
) -> Any:
    """A field of the subject, None unless given; typed to `search` as `--` and its name with
    dashes (`old`: the option's spelling before, still taken); `loci`: a DNA profile's loci,
    an object (given to `search` as a file); `template`: a fingerprint's minutiae record,
    base64 (given to `search` as a file)."""
    return field(
        default=None, metadata={"old": old, "help": help, "loci": loci, "template": template}
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Subject:
    """A person, their travel document, their vehicle, a DNA profile and a fingerprint, as
    far as each is known. The one definition of the subject's fields: the local API's
    `subject` and the options of `ncb-connector search` are made from it."""

    mrz: str | None = _typed("ICAO 9303 MRZ, lines separated by newlines.")
    document_number: str | None = _typed("Travel document number.", old="--number")
    document_country: str | None = _typed(
        "The document's issuing country (alpha-2).", old="--country"
    )
    document_type: str | None = _typed("Document type (P, I, …).", old="--type")
    first_name: str | None = _typed()
    last_name: str | None = _typed()
    birth_date: str | None = _typed("YYYY, YYYY-MM or YYYY-MM-DD.")
    nationality: str | None = _typed("Alpha-2.")
    plate: str | None = _typed("Vehicle registration plate.")
    plate_country: str | None = _typed("The plate's country (alpha-2).")
    vin: str | None = _typed("Vehicle identification number.")
    dna_loci: Mapping[str, str] | None = _typed(
        "A DNA profile: a JSON file (locus → alleles, or an import row with `loci`) or "
        "NDJSON (its first line).",
        old="--dna",
        loci=True,
    )
    fingerprint: str | None = _typed(
        "A fingerprint: an ISO/IEC 19794-2 minutiae record (2005 or 2011) of one or more "
        "fingers, as a binary file, its base64, or an import row with `template`.",
        template=True,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectField:
    """One field of the subject: its name (also its name in the local API's JSON), the
    command-line option that gives it and the option's old spelling, if it had another."""

    name: str
    option: str
    help: str | None
    old: str | None = None
    loci: bool = False
    template: bool = False


def option_name(field_name: str) -> str:
    """The command-line option of a field: `--` and its name with dashes."""
    return "--" + field_name.replace("_", "-")


def subject_fields() -> tuple[SubjectField, ...]:
    """The subject's fields in their order."""
    return tuple(
        SubjectField(
            name=f.name,
            option=option_name(f.name),
            help=f.metadata["help"],
            old=f.metadata["old"],
            loci=f.metadata["loci"],
            template=f.metadata["template"],
        )
        for f in fields(Subject)
    )


def subject_checks(subject: Subject) -> tuple[Check, ...]:
    """One check per category the subject gives criteria for, each sent once per peer.

    An MRZ is verified here (InvalidCriteria names the field) and also supplies the document
    number, names and birth date of the person checks when they are not given separately.
    """
    checks: list[Check] = []
    number = subject.document_number
    first, last, birth = subject.first_name, subject.last_name, subject.birth_date
    if subject.mrz is not None:
        mrz = parse_mrz(subject.mrz)
        number = number or mrz.document_number
        last = last or mrz.primary_identifier or None
        first = first or mrz.secondary_identifier or None
        if birth is None and mrz.birth_date_parsed is not None:
            birth = mrz.birth_date_parsed.isoformat()
        checks.append(
            Check(id=DOCUMENT, category=Category.TRAVEL_DOCUMENTS, criteria={"mrz": subject.mrz})
        )
    elif number is not None:
        doc: dict[str, str | int | bool] = {DOCUMENT_NUMBER: number}
        if subject.document_country:
            doc[DOCUMENT_COUNTRY] = subject.document_country
        if subject.document_type:
            doc[DOCUMENT_TYPE] = subject.document_type
        checks.append(Check(id=DOCUMENT, category=Category.TRAVEL_DOCUMENTS, criteria=doc))
    person: dict[str, str | int | bool] = {
        k: v
        for k, v in (
            ("document_number", number),
            ("first_name", first),
            ("last_name", last),
            ("birth_date", birth),
            ("nationality", subject.nationality),
        )
        if v
    }
    # A birth date or nationality alone describes nobody: they only weigh on a match.
    if person.keys() & {"document_number", "first_name", "last_name"}:
        checks.append(Check(id=WANTED, category=Category.WANTED_PERSONS, criteria=person))
        checks.append(Check(id=TERRORISM, category=Category.TERRORISM_SUSPECTS, criteria=person))
    vehicle: dict[str, str | int | bool] = {
        k: v for k, v in (("vin", subject.vin), ("plate", subject.plate)) if v
    }
    if vehicle:
        if subject.plate and subject.plate_country:
            vehicle[PLATE_COUNTRY] = subject.plate_country
        checks.append(Check(id=VEHICLE, category=Category.VEHICLES, criteria=vehicle))
    if subject.dna_loci:
        checks.append(
            Check(id=DNA, category=Category.DNA_PROFILES, criteria={"loci": dict(subject.dna_loci)})
        )
    if subject.fingerprint:
        checks.append(
            Check(
                id=FINGERPRINT,
                category=Category.FINGERPRINTS,
                criteria={"template": subject.fingerprint},
            )
        )
    return tuple(checks)
