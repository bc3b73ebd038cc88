"""FollowTheMoney entities: mapping per schema, refusals, and an import into a real store."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from support.databases import DatabaseUrl

from connector.errors import ImportFileError
from connector.records.ftm import FTM_SCHEMATA, ftm_to_row, record_id
from connector.records.importer import guess_format, import_stream
from connector.records.kinds.base import RowError
from connector.records.kinds.registry import KINDS
from connector.records.store import RecordStore
from connector.vocabulary import Category

DOCS = Category.TRAVEL_DOCUMENTS
VEHICLES = Category.VEHICLES
WANTED = Category.WANTED_PERSONS
SUSPECTS = Category.TERRORISM_SUSPECTS
ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")

# Shaped as OpenSanctions publishes them: ids with dataset prefixes and hashes, several
# names in several scripts, partial dates, lowercase countries, linked entities by id.
PERSON_OS: dict[str, Any] = {
    "id": "NK-4cEmuGZ2cK8xsyWbXgEdPa",
    "schema": "Person",
    "caption": "Ivan Petrovich Sidorov",
    "properties": {
        "name": ["Ivan Petrovich Sidorov", "Иван Петрович Сидоров", "Іван Петрович Сидоров"],
        "alias": ["Vanya Sidorov", "Ivan Sidorov"],
        "weakAlias": ["Vanya"],
        "firstName": ["Ivan"],
        "fatherName": ["Petrovich"],
        "lastName": ["Sidorov"],
        "birthDate": ["1975"],
        "birthPlace": ["Kharkiv"],
        "nationality": ["ru", "ua"],
        "citizenship": ["ru"],
        "gender": ["male"],
        "passportNumber": ["75 1234567"],
        "idNumber": ["4510 123456"],
        "topics": ["sanction", "crime.terror"],
        "notes": ["Listed for financing terrorism."],
        "position": ["Treasurer"],
        "sourceUrl": ["https://example.org/list/42"],
    },
    "referents": ["ofac-12345", "eu-fsf-eu-6789-12"],
    "datasets": ["us_ofac_sdn", "eu_fsf"],
    "first_seen": "2022-03-01T10:00:00",
    "last_seen": "2025-01-10T10:00:00",
    "target": True,
}

PASSPORT_OS: dict[str, Any] = {
    "id": "ua-nsdc-pass-a1b2c3d4e5f6",
    "schema": "Passport",
    "properties": {
        "number": ["FA123456"],
        "country": ["ua"],
        "type": ["Passport"],
        "holder": ["NK-4cEmuGZ2cK8xsyWbXgEdPa"],
        "startDate": ["2016-04-12"],
        "endDate": ["2026-04-12"],
        "authority": ["4611"],
    },
    "datasets": ["ua_nsdc_sanctions"],
}

DE_MERCEDES = "WDB1240271A123456"
VEHICLE_OS: dict[str, Any] = {
    "id": "ua-war-sanctions-vehicle-7f3c",
    "schema": "Vehicle",
    "properties": {
        "name": ["Mercedes-Benz G 63 AMG"],
        "registrationNumber": ["A 777 AA 77"],
        "country": ["ru"],
        "model": ["G 63 AMG"],
        "type": ["Car"],
        "buildDate": ["2019-06-01"],
        "owner": ["NK-4cEmuGZ2cK8xsyWbXgEdPa"],
    },
}


def entity(base: dict[str, Any], **properties: list[str] | None) -> dict[str, Any]:
    """A copy of `base` with properties replaced (a None value removes the property)."""
    props = {**base["properties"], **properties}
    return {**base, "properties": {k: v for k, v in props.items() if v is not None}}


# --- mapping, schema by schema ------------------------------------------------------------------

CASES: list[tuple[str, Category, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        "passport as OpenSanctions publishes it",
        DOCS,
        PASSPORT_OS,
        {"status": "stolen"},
        {
            "id": "ua-nsdc-pass-a1b2c3d4e5f6",
            "document_number": "FA123456",
            "document_country": "UA",
            "document_type": "P",
            "status": "stolen",
        },
    ),
    (
        "passport with the deprecated passportNumber, surname, givenName and an ICAO code",
        DOCS,
        entity(
            PASSPORT_OS,
            number=None,
            passportNumber=["C01X00T47"],
            type=["pd"],
            givenName=["Erika"],
            surname=["Mustermann"],
            country=["de"],
        ),
        {"status": "lost"},
        {
            "id": "ua-nsdc-pass-a1b2c3d4e5f6",
            "document_number": "C01X00T47",
            "document_country": "DE",
            "document_type": "PD",
            "status": "lost",
            "holder_name": "Erika Mustermann",
        },
    ),
    (
        "passport with two countries and two numbers: the first of each, silently",
        DOCS,
        entity(
            PASSPORT_OS,
            number=["FA123456", "FA654321"],
            country=["ua", "ru"],
            type=["Diplomatic passport"],
        ),
        {"status": "stolen"},
        {
            "id": "ua-nsdc-pass-a1b2c3d4e5f6",
            "document_number": "FA123456",
            "document_country": "UA",
            "document_type": "P",
            "status": "stolen",
        },
    ),
    (
        "vehicle by plate, with model and build year",
        VEHICLES,
        VEHICLE_OS,
        {"status": "stolen"},
        {
            "id": "ua-war-sanctions-vehicle-7f3c",
            "plate": "A 777 AA 77",
            "plate_country": "RU",
            "model": "G 63 AMG",
            "year": 2019,
            "status": "stolen",
        },
    ),
    (
        "vehicle whose registrationNumber values hold a VIN and a plate",
        VEHICLES,
        entity(
            VEHICLE_OS,
            registrationNumber=[DE_MERCEDES, "B-MW 1234"],
            country=["de"],
            buildDate=["2015"],
        ),
        {"status": "embezzled"},
        {
            "id": "ua-war-sanctions-vehicle-7f3c",
            "vin": DE_MERCEDES,
            "plate": "B-MW 1234",
            "plate_country": "DE",
            "model": "G 63 AMG",
            "year": 2015,
            "status": "embezzled",
        },
    ),
    (
        "vehicle with a non-standard vin property and no plate",
        VEHICLES,
        entity(
            VEHICLE_OS,
            registrationNumber=None,
            country=None,
            model=None,
            buildDate=["2014-01-01T00:00:00"],
            vin=[DE_MERCEDES],
        ),
        {"status": "stolen"},
        {
            "id": "ua-war-sanctions-vehicle-7f3c",
            "vin": DE_MERCEDES,
            "year": 2014,
            "status": "stolen",
        },
    ),
    (
        "person with names in three scripts, a birth year and two nationalities",
        SUSPECTS,
        PERSON_OS,
        {},
        {
            "id": "NK-4cEmuGZ2cK8xsyWbXgEdPa",
            "first_name": "Ivan",
            "last_name": "Sidorov",
            "middle_name": "Petrovich",
            "name_original_script": "Иван Петрович Сидоров",
            "aliases": ["Іван Петрович Сидоров", "Vanya Sidorov"],
            "birth_date": "1975",
            "birth_place": "Kharkiv",
            "nationality": ["RU", "UA"],
            "sex": "male",
            "document_number": ["75 1234567", "4510 123456"],
        },
    ),
    (
        "wanted person: the warrant country comes from the caller, status is ignored",
        WANTED,
        PERSON_OS,
        {"warrant_country": "fr", "status": "stolen"},
        {
            "id": "NK-4cEmuGZ2cK8xsyWbXgEdPa",
            "first_name": "Ivan",
            "last_name": "Sidorov",
            "middle_name": "Petrovich",
            "name_original_script": "Иван Петрович Сидоров",
            "aliases": ["Іван Петрович Сидоров", "Vanya Sidorov"],
            "birth_date": "1975",
            "birth_place": "Kharkiv",
            "nationality": ["RU", "UA"],
            "sex": "male",
            "document_number": ["75 1234567", "4510 123456"],
            "warrant_country": "FR",
        },
    ),
    (
        "person known only by a full name: kept as written, the rest as aliases",
        SUSPECTS,
        {
            "id": "eu-fsf-eu-1234-56",
            "schema": "Person",
            "properties": {
                "name": ["Abu Example", "Abu Al-Example"],
                "birthDate": ["1980-02", "1981-02-03"],
                "gender": ["female"],
                "address": ["12 Example Street, Exampletown"],
                "phone": ["+44 20 7946 0000"],
                "nationality": ["gb"],
            },
        },
        {},
        {
            "id": "eu-fsf-eu-1234-56",
            "name_original_script": "Abu Example",
            "aliases": ["Abu Al-Example"],
            "birth_date": "1980-02",
            "sex": "female",
            "address": "12 Example Street, Exampletown",
            "phone": "+44 20 7946 0000",
            "nationality": ["GB"],
        },
    ),
    (
        "person id with characters outside the id pattern",
        SUSPECTS,
        {
            "id": "Q7747/ru:2024",
            "schema": "Person",
            "properties": {
                "lastName": ["Putin"],
                "middleName": ["Vladimirovich"],
                "fatherName": ["Vladimirovich"],
                "birthDate": ["1952-10-07T00:00:00"],
                "gender": ["male"],
                "name": ["Vladimir Vladimirovich Putin"],
            },
        },
        {},
        {
            "id": "Q7747-ru-2024",
            "last_name": "Putin",
            "middle_name": "Vladimirovich",
            "aliases": ["Vladimir Vladimirovich Putin"],
            "birth_date": "1952-10-07",
            "sex": "male",
        },
    ),
]


@pytest.mark.parametrize(
    ("category", "given", "options", "row"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_ftm_to_row(
    category: Category, given: dict[str, Any], options: dict[str, Any], row: dict[str, Any]
) -> None:
    mapped = ftm_to_row(given, category=category, **options)
    assert mapped == row
    record = KINDS[category].parse_row(mapped)  # what the mapping makes, the kind takes
    assert record.id == row["id"]


def test_mapping_leaves_the_entity_alone() -> None:
    before = orjson.dumps(PERSON_OS)
    ftm_to_row(PERSON_OS, category=WANTED, warrant_country="FR")
    assert orjson.dumps(PERSON_OS) == before


REFUSED: list[tuple[str, Category, Any, dict[str, Any], str]] = [
    (
        "person into travel documents",
        DOCS,
        PERSON_OS,
        {"status": "stolen"},
        "schema: Person does not fit travel_documents, which imports Passport entities "
        "(a Person goes to terrorism_suspects or wanted_persons)",
    ),
    (
        "passport into wanted persons",
        WANTED,
        PASSPORT_OS,
        {"warrant_country": "FR"},
        "schema: Passport does not fit wanted_persons, which imports Person entities "
        "(a Passport goes to travel_documents)",
    ),
    (
        "vessel into vehicles",
        VEHICLES,
        {"id": "imo-9138850", "schema": "Vessel", "properties": {"imoNumber": ["IMO 9138850"]}},
        {"status": "stolen"},
        "schema: Vessel does not fit vehicles, which imports Vehicle entities",
    ),
    (
        "sanction into terrorism suspects",
        SUSPECTS,
        {"id": "ofac-sanction-1", "schema": "Sanction", "properties": {"entity": ["NK-1"]}},
        {},
        "schema: Sanction does not fit terrorism_suspects",
    ),
    (
        "an artwork category",
        Category.ARTWORKS,
        PERSON_OS,
        {},
        "artworks cannot be imported from FtM entities",
    ),
    (
        "no schema",
        SUSPECTS,
        {"id": "x", "properties": {"name": ["A"]}},
        {},
        "schema: an FtM entity names its schema",
    ),
    (
        "properties not an object",
        SUSPECTS,
        {"id": "x", "schema": "Person", "properties": ["name", "A"]},
        {},
        "properties: must be an object of property lists",
    ),
    (
        "a property that is not a list of strings",
        SUSPECTS,
        {"id": "x", "schema": "Person", "properties": {"name": [{"value": "A"}]}},
        {},
        "properties.name: must be a list of strings",
    ),
    (
        "a non-string id",
        SUSPECTS,
        {"id": 42, "schema": "Person", "properties": {"name": ["A"]}},
        {},
        "id: the entity id must be a string",
    ),
    (
        "a person without id",
        SUSPECTS,
        {"schema": "Person", "properties": {"name": ["A"]}},
        {},
        "id: the entity has no id",
    ),
    (
        "a person without any name",
        SUSPECTS,
        {"id": "x", "schema": "Person", "properties": {"birthDate": ["1970"]}},
        {},
        "name: the Person has no name, firstName or lastName",
    ),
    (
        "a wanted person without warrant country",
        WANTED,
        PERSON_OS,
        {},
        "warrant_country: FtM has no warrant",
    ),
    ("a passport without status", DOCS, PASSPORT_OS, {}, "status: FtM has no theft status"),
    (
        "a vehicle without status",
        VEHICLES,
        VEHICLE_OS,
        {"status": ""},
        "status: FtM has no theft status",
    ),
    (
        "a passport without number",
        DOCS,
        entity(PASSPORT_OS, number=None),
        {"status": "lost"},
        "document_number: the Passport has no number (nor passportNumber)",
    ),
    (
        "a vehicle built on no date",
        VEHICLES,
        entity(VEHICLE_OS, buildDate=["last spring"]),
        {"status": "stolen"},
        "buildDate: 'last spring' is not a date",
    ),
]


@pytest.mark.parametrize(
    ("category", "given", "options", "reason"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_ftm_to_row_refuses(
    category: Category, given: Any, options: dict[str, Any], reason: str
) -> None:
    with pytest.raises(RowError, match=re.escape(reason)):
        ftm_to_row(given, category=category, **options)


def test_values_the_kind_refuses_are_left_to_the_kind() -> None:
    # The mapping does not judge values: "suhh" (the Soviet Union in FtM) is no ISO code.
    row = ftm_to_row(entity(PASSPORT_OS, country=["suhh"]), category=DOCS, status="stolen")
    with pytest.raises(RowError, match="'SUHH' is not an ISO 3166-1 alpha-2 country code"):
        KINDS[DOCS].parse_row(row)


# --- record ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("NK-4cEmuGZ2cK8xsyWbXgEdPa", "NK-4cEmuGZ2cK8xsyWbXgEdPa"),
        ("ofac-12345", "ofac-12345"),
        ("Q7747", "Q7747"),
        ("de-bka:2024/17 A", "de-bka-2024-17-A"),
        ("müller.ä_1", "m-ller.-_1"),
        ("x" * 64, "x" * 64),
    ],
)
def test_record_id(given: str, expected: str) -> None:
    assert record_id(given) == expected


def test_a_long_record_id_is_cut_with_a_stable_hash() -> None:
    long_a = "gb-hmt-" + "a" * 80 + "-1"
    long_b = "gb-hmt-" + "a" * 80 + "-2"
    cut_a, cut_b = record_id(long_a), record_id(long_b)
    assert len(cut_a) == len(cut_b) == 64
    assert ID_RE.fullmatch(cut_a)
    assert ID_RE.fullmatch(cut_b)
    assert cut_a != cut_b
    assert cut_a == record_id(long_a)
    assert cut_a.startswith("gb-hmt-aaaa")
    assert re.fullmatch(r".{47}-[0-9a-f]{16}", cut_a)


def test_ftm_schemata_are_categories_with_a_kind() -> None:
    assert set(FTM_SCHEMATA) <= set(KINDS)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("entities.ftm.json", "ftm"),
        ("EXPORT.FTM", "ftm"),
        ("x.ftm.jsonl", "ftm"),
        ("x.ftm.ndjson", "ftm"),
        ("x.json", "ndjson"),
        ("x.ndjson", "ndjson"),
        ("x.csv", "csv"),
    ],
)
def test_guess_format(name: str, fmt: str) -> None:
    assert guess_format(name) == fmt


def test_guess_format_names_ftm_when_it_cannot_tell() -> None:
    with pytest.raises(ImportFileError, match=re.escape("give --format ndjson|csv|ftm")):
        guess_format("entities.xml")


# --- importing into a real store ----------------------------------------------------------------


@pytest.fixture
def store(db_url: DatabaseUrl) -> Iterator[RecordStore]:
    s = RecordStore.open(db_url("r"))
    yield s
    s.close()


def lines(*items: Any) -> io.BytesIO:
    """One line per item: dicts as JSON, bytes as they are."""
    return io.BytesIO(
        b"\n".join(i if isinstance(i, bytes) else orjson.dumps(i) for i in items) + b"\n"
    )


def test_import_passports_with_good_and_bad_lines(store: RecordStore) -> None:
    second = {
        "id": "ua-nsdc-pass-0002",
        "schema": "Passport",
        "properties": {"number": ["EK 987654"], "country": ["ua"]},
    }
    stream = lines(
        PASSPORT_OS,  # 1: good
        PERSON_OS,  # 2: a Person, not a Passport
        b"",  # 3: blank, skipped
        b'{"id": "broken", "schema": "Passport", ',  # 4: not JSON
        entity(PASSPORT_OS, country=["suhh"]),  # 5: the kind refuses the country
        b'["Passport"]',  # 6: not an object
        second,  # 7: good
    )
    report = import_stream(store, stream, category=DOCS, fmt="ftm", status="stolen")
    assert (report.inserted, report.updated, report.rejected) == (2, 0, 4)
    assert report.lines == 7
    assert [e.line for e in report.errors] == [2, 4, 5, 6]
    reasons = {e.line: e.reason for e in report.errors}
    assert reasons[2].startswith("schema: Person does not fit travel_documents")
    assert reasons[4].startswith("not valid JSON")
    assert "'SUHH' is not an ISO 3166-1 alpha-2 country code" in reasons[5]
    assert reasons[6] == "a line must hold one JSON object"

    kind = store.kinds[DOCS]
    (match,) = store.search_now(DOCS, kind.parse_criteria({"document_number": "FA 123456"}), 10)
    assert match.record.id == "ua-nsdc-pass-a1b2c3d4e5f6"
    assert match.record.fields == {
        "document_number": "FA123456",
        "document_country": "UA",
        "document_type": "P",
        "status": "stolen",
    }
    (match,) = store.search_now(
        DOCS, kind.parse_criteria({"document_number": "EK987654", "document_country": "UA"}), 10
    )
    assert match.record.id == "ua-nsdc-pass-0002"

    # The same export again: every record is updated in place, none added.
    again = import_stream(
        store, lines(PASSPORT_OS, second), category=DOCS, fmt="ftm", status="lost"
    )
    assert (again.inserted, again.updated, again.rejected) == (0, 2, 0)
    (match,) = store.search_now(DOCS, kind.parse_criteria({"document_number": "FA123456"}), 10)
    assert match.record.fields["status"] == "lost"


def test_import_persons_and_find_them_by_document_number(store: RecordStore) -> None:
    stream = lines(PERSON_OS, PASSPORT_OS, {"id": "x", "schema": "Person", "properties": {}})
    report = import_stream(store, stream, category=WANTED, fmt="ftm", warrant_country="fr")
    assert (report.inserted, report.rejected) == (1, 2)
    assert [(e.line, e.reason.split(":")[0]) for e in report.errors] == [(2, "schema"), (3, "name")]
    kind = store.kinds[WANTED]
    for number in ("751234567", "4510-123456"):
        (match,) = store.search_now(WANTED, kind.parse_criteria({"document_number": number}), 10)
        assert match.record.id == "NK-4cEmuGZ2cK8xsyWbXgEdPa"
        assert match.record.fields["warrant_country"] == "FR"
        assert match.record.fields["nationality"] == ["RU", "UA"]
        assert match.record.fields["birth_date"] == "1975"


def test_import_wanted_persons_without_warrant_country_rejects_every_line(
    store: RecordStore,
) -> None:
    report = import_stream(store, lines(PERSON_OS), category=WANTED, fmt="ftm")
    assert report.rejected == 1
    assert report.errors[0].line == 1
    assert report.errors[0].reason.startswith("warrant_country: FtM has no warrant")
    assert store.count(WANTED) == 0


def test_import_vehicles_and_find_them_by_plate_and_vin(store: RecordStore) -> None:
    by_vin = entity(VEHICLE_OS, registrationNumber=[DE_MERCEDES], country=["de"])
    by_vin["id"] = "de-bka-kfz-1"
    report = import_stream(
        store, lines(VEHICLE_OS, by_vin), category=VEHICLES, fmt="ftm", status="stolen"
    )
    assert (report.inserted, report.rejected) == (2, 0)
    kind = store.kinds[VEHICLES]
    (match,) = store.search_now(
        VEHICLES, kind.parse_criteria({"plate": "A777AA77", "plate_country": "RU"}), 10
    )
    assert match.record.id == "ua-war-sanctions-vehicle-7f3c"
    assert match.record.fields["year"] == 2019
    (match,) = store.search_now(VEHICLES, kind.parse_criteria({"vin": DE_MERCEDES}), 10)
    assert match.record.id == "de-bka-kfz-1"


def test_import_replace_with_ftm_keeps_the_rule_on_rejected_lines(store: RecordStore) -> None:
    import_stream(store, lines(PASSPORT_OS), category=DOCS, fmt="ftm", status="stolen")
    report = import_stream(
        store, lines(PERSON_OS), category=DOCS, fmt="ftm", status="stolen", replace=True
    )
    assert report.replace_skipped
    assert report.removed == 0
    assert store.count(DOCS) == 1


def test_import_ftm_into_a_category_without_an_ftm_schema(store: RecordStore) -> None:
    with pytest.raises(ImportFileError, match="artworks cannot be imported from FtM"):
        import_stream(store, lines(PERSON_OS), category=Category.ARTWORKS, fmt="ftm")
