"""Wanted persons and terrorism suspects: import in any script, partial dates, exact search."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

import orjson
import pytest
from support.databases import DatabaseUrl

from connector.errors import ImportFileError, InvalidCriteria
from connector.records.categories import CATEGORIES
from connector.records.importer import ImportReport, import_stream
from connector.records.kinds.persons import (
    PersonCriteria,
    TerrorismSuspectRow,
    TerrorismSuspects,
    WantedPersonRow,
    WantedPersons,
    partial_date,
)
from connector.records.store import RecordStore, make_engine
from connector.vocabulary import Category

WANTED = Category.WANTED_PERSONS
SUSPECTS = Category.TERRORISM_SUSPECTS

LATIN = {
    "id": "FR-2025-000123",
    "first_name": "Zoé",
    "last_name": "Lefèvre-Dvořáková",
    "aliases": ["Zoe Lefevre", "La Comtesse"],
    "birth_date": "1980-02-29",
    "birth_place": "Brno",
    "nationality": ["FR", "CZ"],
    "sex": "female",
    "document_number": ["19AB12345", "CZ 123 456 78"],
    "warrant_country": "FR",
    "warrant_reference": "JIRS-PARIS-2025/77",
    "charges": ["fraud", "money laundering"],
    "notice_type": "red",
    "dangerous": False,
    "contact": "NCB Paris, desk 3",
}
CYRILLIC = {
    "id": "FR-2025-000124",
    "first_name": "Иван",
    "last_name": "Петров",
    "middle_name": "Сергеевич",
    "name_original_script": "Петров Иван Сергеевич",
    "aliases": ["Ivan Petrov", "Vanya"],
    "birth_date": "1975",
    "nationality": ["RU"],
    "sex": "male",
    "document_number": ["72 1234567"],
    "warrant_country": "DE",
    "charges": ["armed robbery"],
    "dangerous": True,
}
ARABIC = {
    "id": "FR-2025-000125",
    "first_name": "Mohammed",
    "last_name": "Al-Tamimi",
    "name_original_script": "محمد التميمي",
    "aliases": ["أبو أحمد"],
    "birth_date": "1990-07",
    "birth_place": "الموصل",
    "nationality": ["IQ"],
    "sex": "male",
    "warrant_country": "FR",
    "notice_type": "diffusion",
}
CHINESE = {
    "id": "FR-2025-000126",
    "name_original_script": "王伟",
    "aliases": ["Wang Wei"],
    "birth_date": "1968-11-03",
    "nationality": ["CN"],
    "sex": "unknown",
    "document_number": ["E12345678"],
    "warrant_country": "BE",
    "charges": ["拐卖人口"],
    "distinguishing_marks": "scar on the left hand",
}
PEOPLE = (LATIN, CYRILLIC, ARABIC, CHINESE)

SUSPECT = {
    "id": "GB-TS-0042",
    "first_name": "Omar",
    "last_name": "Haddad",
    "name_original_script": "عمر حداد",
    "birth_date": "1985",
    "nationality": ["SY"],
    "sex": "male",
    "document_number": ["N0123456"],
    "organisation": "Example Front",
    "listing_reference": "UN-QDi.999",
    "dangerous": True,
    "contact": "NCB London",
}


@pytest.fixture
def store(db_url: DatabaseUrl) -> Iterator[RecordStore]:
    s = RecordStore(
        make_engine(db_url("r")), kinds={WANTED: WantedPersons(), SUSPECTS: TerrorismSuspects()}
    )
    s.create_schema()
    yield s
    s.close()


def ndjson(
    store: RecordStore, rows: list[Mapping[str, Any]], category: Category = WANTED
) -> ImportReport:
    data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    return import_stream(store, io.BytesIO(data), category=category, fmt="ndjson")


def csv(store: RecordStore, text: str, category: Category = WANTED) -> ImportReport:
    return import_stream(store, io.BytesIO(text.encode()), category=category, fmt="csv")


def hit_ids(
    store: RecordStore, criteria: Mapping[str, object], category: Category = WANTED
) -> list[str]:
    parsed = store.kinds[category].parse_criteria(criteria)
    return [m.record.id for m in store.search_now(category, parsed, 10)]


def rejection(store: RecordStore, row: Mapping[str, Any], category: Category = WANTED) -> str:
    report = ndjson(store, [row], category)
    assert report.rejected == 1, report
    return report.errors[0].reason


def test_row_fields_are_the_category_fields() -> None:
    assert set(WantedPersonRow.model_fields) - {"id"} == set(CATEGORIES[WANTED].fields)
    assert set(TerrorismSuspectRow.model_fields) - {"id"} == set(CATEGORIES[SUSPECTS].fields)


def test_every_script_imports_and_round_trips(store: RecordStore) -> None:
    report = ndjson(store, list(PEOPLE))
    assert (report.inserted, report.rejected) == (4, 0), report.errors
    for person in PEOPLE:
        record = store.get(WANTED, str(person["id"]))
        assert record is not None
        assert record.fields == {k: v for k, v in person.items() if k != "id"}
        assert record.keys["ref_key"] == person["id"]


def test_input_is_normalised(store: RecordStore) -> None:
    row = {
        "id": " FR-9 ",
        "last_name": " Petit ",
        "sex": "F",
        "nationality": ["fr", "FR", "be"],
        "warrant_country": "fr",
        "notice_type": "Red",
        "birth_date": 1980,
        "aliases": [],
        "middle_name": "",
    }
    assert ndjson(store, [row]).inserted == 1
    record = store.get(WANTED, "FR-9")
    assert record is not None
    assert record.fields == {
        "last_name": "Petit",
        "sex": "female",
        "nationality": ["FR", "BE"],
        "warrant_country": "FR",
        "notice_type": "red",
        "birth_date": "1980",
    }
    for given, sex in (("M", "male"), ("x", "other"), ("Unknown", "unknown")):
        assert ndjson(store, [{**row, "sex": given}]).updated == 1
        got = store.get(WANTED, "FR-9")
        assert got is not None
        assert got.fields["sex"] == sex


@pytest.mark.parametrize("value", ["1980", "1980-02", "1980-02-29", "2000-12-31", "1900"])
def test_partial_dates_accepted(value: str) -> None:
    assert partial_date(value) == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1980-02-30", "February 1980 has no day 30"),
        ("1981-02-29", "February 1981 has no day 29"),
        ("1980-13", "no month 13"),
        ("1980-00", "no month 0"),
        ("2999", "future"),
        (f"{date.today().year + 1}-01", "future"),
        ("1850", "before 1900"),
        ("80-02-01", "YYYY, YYYY-MM or YYYY-MM-DD"),
        ("1980/02/01", "YYYY, YYYY-MM or YYYY-MM-DD"),
        ("1980-2-1", "YYYY, YYYY-MM or YYYY-MM-DD"),
    ],
)
def test_impossible_dates_are_rejected(store: RecordStore, value: str, reason: str) -> None:
    got = rejection(store, {**CYRILLIC, "birth_date": value})
    assert got.startswith("birth_date:")
    assert reason in got


def test_this_year_is_not_the_future() -> None:
    today = date.today()
    assert partial_date(str(today.year)) == str(today.year)
    assert partial_date(f"{today.year}-{today.month:02d}")


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"nationality": ["FRA"]}, "nationality", "did you mean FR?"),
        ({"nationality": ["XX"]}, "nationality", "'XX' is not an ISO 3166-1 alpha-2"),
        ({"warrant_country": "DEU"}, "warrant_country", "did you mean DE?"),
        ({"warrant_country": ""}, "warrant_country", "alpha-2"),
        ({"sex": "yes"}, "sex", "'male', 'female', 'other' or 'unknown'"),
        ({"notice_type": "pink"}, "notice_type", "'red'"),
        ({"document_number": ["AB\u221212"]}, "document_number", "only letters A-Z"),
        ({"document_number": ["A" * 21]}, "document_number", "at most 20"),
        ({"id": "FR 2025 1"}, "id", "is not a record reference"),
        ({"id": "FR:wanted_persons:FR-1"}, "id", "is not a record reference"),
        ({"id": ""}, "id", "record reference is required"),
        ({"colour": "blue"}, "colour", "Extra inputs"),
        ({"organisation": "Example Front"}, "organisation", "Extra inputs"),
    ],
)
def test_bad_rows_name_the_field(
    store: RecordStore, change: Mapping[str, Any], field: str, reason: str
) -> None:
    got = rejection(store, {**LATIN, **change})
    assert got.startswith(f"{field}:"), got
    assert reason in got
    assert store.count(WANTED) == 0


def test_a_person_needs_a_name_and_wanted_a_warrant_country(store: RecordStore) -> None:
    nameless = {k: v for k, v in CHINESE.items() if k != "name_original_script"}
    assert "needs a last_name, a first_name or a name_original_script" in rejection(store, nameless)
    no_id = {k: v for k, v in LATIN.items() if k != "id"}
    assert rejection(store, no_id).startswith("id: Field required")
    no_warrant = {k: v for k, v in LATIN.items() if k != "warrant_country"}
    assert rejection(store, no_warrant).startswith("warrant_country: Field required")
    # A suspect has no warrant, so the same person without one is a good suspect row.
    suspect = {
        k: v
        for k, v in no_warrant.items()
        if k not in {"warrant_reference", "charges", "notice_type"}
    }
    assert ndjson(store, [suspect], SUSPECTS).inserted == 1


def test_csv_lists_are_bar_separated_and_empty_cells_unknown(store: RecordStore) -> None:
    text = (
        "id,first_name,last_name,aliases,birth_date,nationality,sex,document_number,"
        "warrant_country,charges,notice_type,dangerous,contact\n"
        "FR-2025-000200,Иван,Петров,Ivan Petrov | Vanya,1975-03,RU|BY,M,"
        "72 1234567|AB-00-12,fr,armed robbery|kidnapping,Red,yes,\n"
        "FR-2025-000201,,Dupont,,,,,,FR,,,,NCB Paris\n"
        "FR-2025-000202,,,,,,,,FR,,,,\n"
        "FR-2025-000203,Ali,Ben,,1980-02-30,FRA,,,FR,,,,\n"
    )
    report = csv(store, text)
    assert (report.inserted, report.rejected) == (2, 2)
    assert [e.line for e in report.errors] == [4, 5]
    assert "name_original_script" in report.errors[0].reason
    assert "no day 30" in report.errors[1].reason
    assert "did you mean FR?" in report.errors[1].reason
    first = store.get(WANTED, "FR-2025-000200")
    assert first is not None
    assert first.fields == {
        "first_name": "Иван",
        "last_name": "Петров",
        "aliases": ["Ivan Petrov", "Vanya"],
        "birth_date": "1975-03",
        "nationality": ["RU", "BY"],
        "sex": "male",
        "document_number": ["72 1234567", "AB-00-12"],
        "warrant_country": "FR",
        "charges": ["armed robbery", "kidnapping"],
        "notice_type": "red",
        "dangerous": True,
    }
    second = store.get(WANTED, "FR-2025-000201")
    assert second is not None
    assert second.fields == {"last_name": "Dupont", "warrant_country": "FR", "contact": "NCB Paris"}
    assert hit_ids(store, {"document_number": "AB0012"}) == ["FR-2025-000200"]


def test_csv_without_the_required_columns_is_refused(store: RecordStore) -> None:
    with pytest.raises(ImportFileError, match="warrant_country"):
        csv(store, "id,last_name\nFR-1,Dupont\n")
    with pytest.raises(ImportFileError, match="id"):
        csv(store, "last_name\nHaddad\n", SUSPECTS)
    assert csv(store, "id,last_name\nGB-1,Haddad\n", SUSPECTS).inserted == 1


def test_exact_match_through_every_document_column(store: RecordStore) -> None:
    five = {
        **LATIN,
        "document_number": [
            "P-1000001",
            "ID 2000002",
            "X3000003",
            "X3000003",
            "x-3000003",
            "DL4000004",
            "R5000005",
        ],
    }
    ndjson(store, [five, CYRILLIC])
    record = store.get(WANTED, str(LATIN["id"]))
    assert record is not None
    # Repeats (as given or once normalised) take no column; all numbers stay in the fields.
    assert [record.keys[c] for c in ("doc1", "doc2", "doc3", "doc4")] == [
        "P1000001",
        "ID2000002",
        "X3000003",
        "DL4000004",
    ]
    assert record.fields["document_number"] == five["document_number"]
    for number in ("p 1000001", "ID-2000-002", "x3000003", "DL.400.0004", "DL4OOOOO4"):
        assert hit_ids(store, {"document_number": number}) == [LATIN["id"]], number
    # Only the first four distinct numbers are searchable (see PersonKind).
    assert hit_ids(store, {"document_number": "R5000005"}) == []
    assert hit_ids(store, {"document_number": "72-1234567"}) == [CYRILLIC["id"]]
    assert hit_ids(store, {"document_number": "99999999"}) == []


def test_exact_match_by_ref_and_by_both(store: RecordStore) -> None:
    ndjson(store, list(PEOPLE))
    assert hit_ids(store, {"ref": "FR-2025-000126"}) == ["FR-2025-000126"]
    assert hit_ids(store, {"ref": "FR-2025-999999"}) == []
    # Both given: both must match the same record.
    assert hit_ids(store, {"ref": "FR-2025-000126", "document_number": "E 1234 5678"}) == [
        "FR-2025-000126"
    ]
    assert hit_ids(store, {"ref": "FR-2025-000125", "document_number": "E12345678"}) == []
    parsed = WantedPersons().parse_criteria(
        {"ref": "FR-2025-000126", "document_number": "E12345678"}
    )
    (match,) = store.search_now(WANTED, parsed, 10)
    assert match.score == 1.0
    assert match.reasons == (
        {"field": "document_number", "match": "exact"},
        {"field": "ref", "match": "exact"},
    )


@pytest.mark.parametrize(
    ("extra", "score", "reasons"),
    [
        ({}, 1.0, ()),
        ({"birth_date": "1980-02-29"}, 1.0, ({"field": "birth_date", "match": "exact"},)),
        ({"birth_date": "1980"}, 1.0, ({"field": "birth_date", "match": "compatible"},)),
        ({"birth_date": "1981"}, 0.6, ({"field": "birth_date", "match": "differs"},)),
        ({"birth_date": "1980-03-01"}, 0.6, ({"field": "birth_date", "match": "differs"},)),
        ({"nationality": "CZ"}, 1.0, ({"field": "nationality", "match": "compatible"},)),
        ({"nationality": ["cz", "FR"]}, 1.0, ({"field": "nationality", "match": "exact"},)),
        ({"nationality": ["DE"]}, 0.6, ({"field": "nationality", "match": "differs"},)),
        (
            {"birth_date": "1979", "nationality": "DE"},
            0.6,
            (
                {"field": "birth_date", "match": "differs"},
                {"field": "nationality", "match": "differs"},
            ),
        ),
    ],
)
def test_birth_date_and_nationality_weigh_on_the_score(
    store: RecordStore,
    extra: Mapping[str, object],
    score: float,
    reasons: tuple[Mapping[str, str], ...],
) -> None:
    ndjson(store, [LATIN])
    parsed = WantedPersons().parse_criteria({"document_number": "19 AB 12345", **extra})
    (match,) = store.search_now(WANTED, parsed, 10)
    assert match.score == score
    assert match.reasons == ({"field": "document_number", "match": "exact"}, *reasons)


def test_a_name_with_a_document_number_is_a_name_search_the_number_decides(
    store: RecordStore,
) -> None:
    """The number is an identifier: the record it names is found, and scores high, however
    little its names agree; the reasons say which parts did not."""
    ndjson(store, [LATIN])
    parsed = WantedPersons().parse_criteria(
        {"document_number": "19 AB 12345", "last_name": "Somebody Else", "sex": "male"}
    )
    (match,) = store.search_now(WANTED, parsed, 10)
    assert match.score == 0.97
    assert match.reasons is not None
    assert {"field": "document_number", "match": "exact"} in match.reasons
    assert {r["match"] for r in match.reasons if r["field"] == "name"} == {"none"}


def test_a_record_without_birth_date_is_not_contradicted(store: RecordStore) -> None:
    ndjson(store, [{k: v for k, v in LATIN.items() if k not in {"birth_date", "nationality"}}])
    parsed = WantedPersons().parse_criteria(
        {"ref": LATIN["id"], "birth_date": "1950", "nationality": "DE"}
    )
    (match,) = store.search_now(WANTED, parsed, 10)
    assert (match.score, match.reasons) == (1.0, ({"field": "ref", "match": "exact"},))


@pytest.mark.parametrize(
    ("criteria", "tokens"),
    [
        ({"name": "Петров"}, ("petrov",)),
        ({"last_name": "Petrov", "first_name": "Ivan"}, ("ivan", "petrov")),
        ({"last_name": "Petrov", "birth_date": "1975", "nationality": "RU"}, ("petrov",)),
    ],
)
def test_name_criteria_make_a_name_search(
    criteria: Mapping[str, object], tokens: tuple[str, ...]
) -> None:
    for kind in (WantedPersons(), TerrorismSuspects()):
        parsed = kind.parse_criteria(criteria)
        assert parsed.tokens == tokens
        assert kind.ranked(parsed)


def test_a_description_without_a_name_is_refused() -> None:
    with pytest.raises(InvalidCriteria, match="needs a name") as exc:
        WantedPersons().parse_criteria({"birth_date": "1975"})
    assert exc.value.field == "name"


@pytest.mark.parametrize(
    ("criteria", "field"),
    [
        ({}, "name"),
        ({"ref": None, "document_number": None}, "name"),
        ({"ref": None, "last_name": "--"}, "last_name"),
        ({"name": "Petrov", "birth_date_tolerance": 11}, "birth_date_tolerance"),
        ({"name": "Petrov", "sex": "yes"}, "sex"),
        ({"name": 12}, "name"),
        ({"number": "X1"}, "number"),
        ({"document_number": "X1", "mrz": "P<"}, "mrz"),
        ({"document_number": ""}, "document_number"),
        ({"document_number": "AB\u221212"}, "document_number"),
        ({"document_number": 12345}, "document_number"),
        ({"ref": "FR:wanted_persons:FR-1"}, "ref"),
        ({"ref": ["FR-1"]}, "ref"),
        ({"ref": "FR-1", "birth_date": "1980-02-30"}, "birth_date"),
        ({"ref": "FR-1", "birth_date": "2999"}, "birth_date"),
        ({"ref": "FR-1", "birth_date": 1980}, "birth_date"),
        ({"ref": "FR-1", "nationality": "FRA"}, "nationality"),
        ({"ref": "FR-1", "nationality": [1]}, "nationality"),
        ({"ref": "FR-1", "last_name": ["x"]}, "last_name"),
    ],
)
def test_bad_criteria_name_the_field(criteria: Mapping[str, object], field: str) -> None:
    with pytest.raises(InvalidCriteria) as exc:
        WantedPersons().parse_criteria(criteria)
    assert exc.value.field == field


def test_no_identifier_never_means_everything(store: RecordStore) -> None:
    ndjson(store, list(PEOPLE))
    nothing = PersonCriteria(
        document_key=None, document_number=None, ref=None, birth_date=None, nationality=()
    )
    assert WantedPersons().lookups(nothing) == ()
    assert store.search_now(WANTED, nothing, 10) == []


def test_criteria_parse() -> None:
    assert WantedPersons().parse_criteria(
        {
            "document_number": "c01x-oo t47",
            "last_name": "X",
            "birth_date": "1980-02",
            "nationality": ["fr", "DE", "FR"],
        }
    ) == PersonCriteria(
        document_key="C01X00T47",
        document_number="c01x-oo t47",
        ref=None,
        birth_date="1980-02",
        nationality=("FR", "DE"),
        tokens=("x",),
    )


def test_update_and_removal(store: RecordStore) -> None:
    ndjson(store, [LATIN, CYRILLIC])
    # A re-import updates by record id: a number no longer held no longer finds the person.
    report = ndjson(store, [{**LATIN, "document_number": ["NEW-1"]}])
    assert (report.inserted, report.updated) == (0, 1)
    assert hit_ids(store, {"document_number": "19AB12345"}) == []
    assert hit_ids(store, {"document_number": "NEW1"}) == [LATIN["id"]]
    assert store.remove(WANTED, str(LATIN["id"]))
    assert not store.remove(WANTED, str(LATIN["id"]))
    assert hit_ids(store, {"document_number": "NEW1"}) == []
    assert hit_ids(store, {"ref": LATIN["id"]}) == []
    assert store.get(WANTED, str(LATIN["id"])) is None
    assert store.count(WANTED) == 1


def test_terrorism_suspects_alongside_wanted_persons(store: RecordStore) -> None:
    both = {**LATIN, "document_number": ["N0123456"]}
    assert ndjson(store, [both]).inserted == 1
    report = ndjson(store, [SUSPECT], SUSPECTS)
    assert (report.inserted, report.rejected) == (1, 0), report.errors
    record = store.get(SUSPECTS, "GB-TS-0042")
    assert record is not None
    assert record.fields == {k: v for k, v in SUSPECT.items() if k != "id"}
    # Each category answers from its own table, with O read for 0.
    assert hit_ids(store, {"document_number": "NO123456"}, SUSPECTS) == ["GB-TS-0042"]
    assert hit_ids(store, {"document_number": "NO123456"}) == [LATIN["id"]]
    assert hit_ids(store, {"ref": "GB-TS-0042"}, SUSPECTS) == ["GB-TS-0042"]
    assert hit_ids(store, {"ref": "GB-TS-0042"}) == []
    parsed = TerrorismSuspects().parse_criteria({"ref": "GB-TS-0042", "birth_date": "1986-01"})
    (match,) = store.search_now(SUSPECTS, parsed, 10)
    assert match.score == 0.6
    assert {"field": "birth_date", "match": "differs"} in (match.reasons or ())
    # Warrant fields belong to wanted persons only.
    assert "warrant_country" in rejection(store, {**SUSPECT, "warrant_country": "GB"}, SUSPECTS)
    text = (
        "id,last_name,name_original_script,nationality,document_number,organisation\n"
        "GB-TS-0043,,阿卜杜勒,CN|af,G 123 456|H-7,Example Front\n"
    )
    assert csv(store, text, SUSPECTS).inserted == 1
    assert hit_ids(store, {"document_number": "H7"}, SUSPECTS) == ["GB-TS-0043"]
    assert store.remove(SUSPECTS, "GB-TS-0042")
    assert hit_ids(store, {"document_number": "N0123456"}, SUSPECTS) == []
    assert hit_ids(store, {"document_number": "N0123456"}) == [LATIN["id"]]


def test_old_spelling_document_numbers_still_imports(store: RecordStore) -> None:
    """Files written before the names were one give a person's documents as
    `document_numbers`: they import as `document_number`, and are found by it."""
    row = {"id": "FR-OLD", "last_name": "Petit", "warrant_country": "FR"}
    report = ndjson(store, [{**row, "document_numbers": ["19AB12345"]}])
    assert (report.inserted, report.rejected) == (1, 0), report.errors
    record = store.get(WANTED, "FR-OLD")
    assert record is not None
    assert record.fields["document_number"] == ["19AB12345"]
    assert "document_numbers" not in record.fields
