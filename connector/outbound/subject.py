"""A subject check: what an officer has at hand (MRZ, name, birth date, plate) split into checks."""

from __future__ import annotations

from dataclasses import dataclass

from connector.protocol import Check
from connector.records.identifiers.mrz import parse_mrz
from connector.vocabulary import Category

# The checks a subject becomes, by id: stable, so a client can find each in the answer.
DOCUMENT, WANTED, TERRORISM, VEHICLE = "document", "wanted_person", "terrorism_suspect", "vehicle"


@dataclass(frozen=True, slots=True, kw_only=True)
class Subject:
    """A person, their travel document and their vehicle, as far as each is known."""

    mrz: str | None = None
    document_number: str | None = None
    document_country: str | None = None
    document_type: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    birth_date: str | None = None
    nationality: str | None = None
    plate: str | None = None
    plate_country: str | None = None
    vin: str | None = None


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
        doc: dict[str, str | int | bool] = {"number": number}
        if subject.document_country:
            doc["country"] = subject.document_country
        if subject.document_type:
            doc["document_type"] = subject.document_type
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
            vehicle["country"] = subject.plate_country
        checks.append(Check(id=VEHICLE, category=Category.VEHICLES, criteria=vehicle))
    return tuple(checks)
