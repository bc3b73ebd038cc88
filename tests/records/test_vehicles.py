"""Vehicles: VIN check digits and plates, import through the real importer, matching, removal."""

from __future__ import annotations

import io
import random
import re
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from typing import Any

import orjson
import pytest
from support.databases import DatabaseUrl

from connector.errors import ImportFileError, InvalidCriteria
from connector.records.categories import CATEGORIES
from connector.records.identifiers.vin import (
    VinCheck,
    check_digit_required,
    normalise_plate,
    normalise_vin,
    validate_vin,
    vin_check_digit,
)
from connector.records.importer import ImportReport, import_stream
from connector.records.kinds.vehicles import VehicleCriteria, Vehicles
from connector.records.store import RecordStore, make_engine
from connector.vocabulary import Category

V = Category.VEHICLES
VIN_ALPHABET = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"

# Published valid VINs (1M8GDM9AXKP042788 is the classic example of a remainder-10 "X").
US_X = "1M8GDM9AXKP042788"
US_HONDA = "1HGCM82633A004352"
JP_HONDA = "JHMCM56557C404453"
# Made-up VINs, check digits computed by reference_check_digit below.
CA_TOYOTA = "2T1BURHE3JC012345"
MX_VW = "3VWFE21C04M000001"
DE_MERCEDES = "WDB1240271A123456"
DE_VW_NO_DIGIT = "WVWZZZ1KZAW000001"  # European VWs fill position 9 with Z: no check digit


def reference_check_digit(vin: str) -> str:
    """An independent formulation: A-I, J-R count 1-9 in turn, S-Z count 2-9."""
    weights = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]
    total = 0
    for ch, weight in zip(vin, weights, strict=True):
        if ch.isdigit():
            value = int(ch)
        else:
            index = ord(ch) - ord("A")
            value = index % 9 + 1 if index < 18 else index - 16
        total += value * weight
    return "0123456789X"[total % 11]


# --- VIN and plate functions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vin", "digit"),
    [
        (US_X, "X"),
        (US_HONDA, "3"),
        (JP_HONDA, "5"),
        ("11111111111111111", "1"),
        (CA_TOYOTA, "3"),
        (MX_VW, "0"),
        (DE_MERCEDES, "7"),
    ],
)
def test_check_digit_of_valid_vins(vin: str, digit: str) -> None:
    assert vin_check_digit(vin) == digit == vin[8] == reference_check_digit(vin)


def test_check_digit_agrees_with_the_reference_on_random_vins() -> None:
    rng = random.Random(3779)
    for _ in range(500):
        vin = "".join(rng.choice(VIN_ALPHABET) for _ in range(17))
        assert vin_check_digit(vin) == reference_check_digit(vin), vin


def test_check_digit_ignores_position_9() -> None:
    assert {vin_check_digit(US_X[:8] + d + US_X[9:]) for d in "0123456789X"} == {"X"}


@pytest.mark.parametrize(
    ("raw", "vin"),
    [
        (US_X, US_X),
        ("1m8gdm9axkp042788", US_X),
        ("1M8 GDM9A XKP 042788", US_X),
        ("1M8-GDM9AX-KP042788", US_X),
        ("  1M8GDM9AXKP042788\t\n", US_X),
        ("1M8GDM9AX\u2013KP042788", US_X),  # en dash
        ("１Ｍ８ＧＤＭ９ＡＸＫＰ０４２７８８", US_X),  # full width
    ],
)
def test_normalise_vin(raw: str, vin: str) -> None:
    assert normalise_vin(raw) == vin


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            "1M8GDM9AXKP04278O",
            "'O' at position 17: ISO 3779 never uses I, O or Q (did you mean '0'?)",
        ),
        (
            "IM8GDM9AXKP042788",
            "'I' at position 1: ISO 3779 never uses I, O or Q (did you mean '1'?)",
        ),
        ("1M8GDM9AXKQ042788", "'Q' at position 11"),
        ("1m8gdm9axkp042788".replace("1", "i", 1), "'I' at position 1"),  # lowercase too
        ("1M8 GDM O", "'O' at position 7"),  # positions count VIN characters, not spaces
        ("1M8GDM9AXKP04278É", "'É' at position 17: only letters A-Z (without I, O, Q) and digits"),
        ("1M8GDM9AXKP04278_", "'_' at position 17"),
        ("1M8GDM9AXKP04278", "VIN has 16 characters; ISO 3779 requires 17"),
        ("1M8GDM9AXKP0427881", "VIN has 18 characters"),
        (" - ", "VIN is empty"),
        ("1" * 65, "longer than 64"),
    ],
)
def test_normalise_vin_refuses(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        normalise_vin(raw)


@pytest.mark.parametrize(
    ("vin", "required"),
    [
        (US_X, True),
        (CA_TOYOTA, True),
        (MX_VW, True),
        ("4" * 17, True),
        ("5" * 17, True),
        (JP_HONDA, False),
        ("LVSHCAMB1CE123456", False),
        (DE_MERCEDES, False),
        ("VF1RFB00151234567", False),
        ("SAJAA01N0EA123456", False),
        ("9BWZZZ377VT004251", False),
        ("6" * 17, False),
    ],
)
def test_check_digit_required_only_in_north_america(vin: str, required: bool) -> None:
    assert check_digit_required(vin) is required


@pytest.mark.parametrize(
    ("raw", "check"),
    [
        (US_X, VinCheck(vin=US_X, check_digit_ok=True, mandatory=True)),
        ("1hgcm8263 3a004352", VinCheck(vin=US_HONDA, check_digit_ok=True, mandatory=True)),
        (CA_TOYOTA, VinCheck(vin=CA_TOYOTA, check_digit_ok=True, mandatory=True)),
        (JP_HONDA, VinCheck(vin=JP_HONDA, check_digit_ok=True, mandatory=False)),
        (DE_MERCEDES, VinCheck(vin=DE_MERCEDES, check_digit_ok=True, mandatory=False)),
        # Advisory outside North America: a wrong digit is reported, not refused.
        (
            "WDB1240221A123456",
            VinCheck(vin="WDB1240221A123456", check_digit_ok=False, mandatory=False),
        ),
        (
            "VF1RFB00X51234567",
            VinCheck(vin="VF1RFB00X51234567", check_digit_ok=False, mandatory=False),
        ),
        (
            "LVSHCAMB5CE123456",
            VinCheck(vin="LVSHCAMB5CE123456", check_digit_ok=False, mandatory=False),
        ),  # China: advisory
        (DE_VW_NO_DIGIT, VinCheck(vin=DE_VW_NO_DIGIT, check_digit_ok=None, mandatory=False)),
    ],
)
def test_validate_vin(raw: str, check: VinCheck) -> None:
    assert validate_vin(raw) == check


@pytest.mark.parametrize(
    ("raw", "holds", "computes"),
    [
        ("1M8GDM9A1KP042788", "1", "X"),
        ("1HGCM826X3A004352", "X", "3"),
        ("2T1BURHE0JC012345", "0", "3"),
        ("3VWFE21CZ4M000001", "Z", "0"),
    ],
)
def test_validate_vin_refuses_a_wrong_mandatory_check_digit(
    raw: str, holds: str, computes: str
) -> None:
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"VIN check digit is wrong: position 9 holds {holds!r}, the VIN computes "
            f"{computes!r} (mandatory"
        ),
    ):
        validate_vin(raw)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("AB-123-CD", "AB123CD"),
        ("ab 123 cd", "AB123CD"),
        ("M.AB.1234", "MAB1234"),
        ("B·MW 1234", "BMW1234"),  # middle dot
        ("HH\u2013AB 123", "HHAB123"),  # en dash
        ("ＡＢ１２３", "AB123"),  # full width
        ("\u00a0LD 12 ABC ", "LD12ABC"),  # no-break space
        ("1", "1"),
        ("ABCDEF-123456", "ABCDEF123456"),  # 12 once the dash goes
    ],
)
def test_normalise_plate(raw: str, key: str) -> None:
    assert normalise_plate(raw) == key


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("MÜ-AB 12", "plate holds 'Ü' at position 2: plates are exchanged as Latin letters"),
        ("straße", "'ß' at position 5"),  # not silently "STRASSE"
        ("А123ВС77", "'А' at position 1"),  # Cyrillic А, not Latin A
        ("AB_123", "'_' at position 3"),
        ("AB/123", "'/' at position 3"),
        (" -.", "plate is empty"),
        ("ABCDEFG123456", "plate has 13 significant characters; at most 12"),
        ("A" * 65, "longer than 64"),
    ],
)
def test_normalise_plate_refuses(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        normalise_plate(raw)


# --- the kind, through the real importer and a real SQLite store -------------------------------


@pytest.fixture
def store(db_url: DatabaseUrl) -> Iterator[RecordStore]:
    s = RecordStore(make_engine(db_url("r")), kinds={V: Vehicles()})
    s.create_schema()
    yield s
    s.close()


def ndjson(*rows: Mapping[str, Any] | str) -> io.BytesIO:
    return io.BytesIO(
        b"".join((r.encode() if isinstance(r, str) else orjson.dumps(r)) + b"\n" for r in rows)
    )


def load(store: RecordStore, *rows: Mapping[str, Any] | str, replace: bool = False) -> ImportReport:
    return import_stream(store, ndjson(*rows), category=V, fmt="ndjson", replace=replace)


def find(store: RecordStore, **criteria: object) -> list[tuple[str, float]]:
    parsed = Vehicles().parse_criteria(criteria)
    return [(m.record.id, m.score) for m in store.search_now(V, parsed, 10)]


GOLF = {
    "vin": DE_MERCEDES,
    "plate": "B-MW 1234",
    "plate_country": "DE",
    "make": "Mercedes-Benz",
    "model": "C 220",
    "colour": "black",
    "year": 2019,
    "stolen_on": "2024-03-01",
    "status": "stolen",
    "owner_name": "Erika Mustermann",
    "remarks": "keyless theft",
}
CLIO = {
    "plate": "AB-123-CD",
    "plate_country": "FR",
    "make": "Renault",
    "model": "Clio",
    "status": "stolen",
}
ACCORD = {"id": "US-2024-000417", "vin": US_HONDA, "status": "embezzled"}

TOMORROW = (date.today() + timedelta(days=1)).isoformat()
BAD_ROWS: list[tuple[Mapping[str, Any] | str, str]] = [
    ("{not json", "not valid JSON"),
    (
        {"vin": "1M8GDM9A1KP042788", "status": "stolen"},
        "vin: VIN check digit is wrong: position 9 holds '1', the VIN computes 'X'",
    ),
    ({"vin": "1M8GDM9AXKP04278O", "status": "stolen"}, "vin: VIN holds 'O' at position 17"),
    ({"vin": "1M8GDM9AXKP0427", "status": "stolen"}, "vin: VIN has 15 characters"),
    (
        {"plate": "AB-123-CD", "status": "stolen"},
        "plate_country: a plate needs the country that issued it",
    ),
    (
        {"plate": "AB-123-CD", "plate_country": "FRA", "status": "stolen"},
        "plate_country: 'FRA' is not an ISO 3166-1 alpha-2 country code (did you mean FR?)",
    ),
    (
        {"plate": "AB-123-CD", "plate_country": "XX", "status": "stolen"},
        "plate_country: 'XX' is not an ISO 3166-1 alpha-2 country code",
    ),
    (
        {"plate": "MÜ-AB 12", "plate_country": "DE", "status": "stolen"},
        "plate: plate holds 'Ü' at position 2",
    ),
    (
        {"status": "stolen", "make": "Fiat"},
        "row: a vehicle needs a vin, or a plate with its plate_country",
    ),
    (
        {"vin": US_X, "status": "stolen", "stolen_on": TOMORROW},
        "stolen_on: the date lies in the future",
    ),
    (
        {"vin": US_X, "status": "stolen", "stolen_on": "2023-02-30"},
        "stolen_on: Input should be a valid date",
    ),
    (
        {"vin": US_X, "status": "stolen", "year": 1885},
        "year: Input should be greater than or equal to 1886",
    ),
    (
        {"vin": US_X, "status": "stolen", "year": date.today().year + 2},
        "no vehicle has that model year yet",
    ),
    (
        {"vin": US_X, "status": "stolen", "year": 2020, "stolen_on": "2018-05-01"},
        "stolen_on: 2018-05-01 lies before a vehicle of model year 2020 could be built",
    ),
    (
        {"vin": US_X, "status": "found"},
        "status: Input should be 'stolen', 'embezzled' or 'missing'",
    ),
    (
        {"vin": US_X, "status": "stolen", "vin_check_digit_ok": False},
        "vin_check_digit_ok: Extra inputs are not permitted",
    ),
    ({"vin": US_X, "status": "stolen", "id": "a/b"}, "id: String should match pattern"),
    ({"vin": US_X, "status": "stolen", "colour": "x" * 61}, "colour: String should have at most"),
]


def test_import_reports_each_bad_row_and_keeps_the_good(store: RecordStore) -> None:
    report = load(store, GOLF, *(row for row, _ in BAD_ROWS), CLIO, ACCORD)
    assert (report.inserted, report.updated, report.rejected) == (3, 0, len(BAD_ROWS))
    assert [e.line for e in report.errors] == list(range(2, 2 + len(BAD_ROWS)))
    for error, (_, reason) in zip(report.errors, BAD_ROWS, strict=True):
        assert reason in error.reason, (error.line, error.reason)
    assert store.count(V) == 3


def vid(store: RecordStore, natural: str) -> str:
    """The opaque id the store gives a vehicle imported without an id of its own."""
    return store.opaque_id_for(V, [natural])


def test_records_carry_only_the_category_fields(store: RecordStore) -> None:
    load(store, GOLF, CLIO, ACCORD, {"vin": "WDB1240221A123456", "status": "missing"})
    allowed = set(CATEGORIES[V].fields)
    golf = store.get(V, vid(store, f"VIN:{DE_MERCEDES}"))
    assert golf is not None
    assert dict(golf.fields) == GOLF  # every field, as written
    clio = store.get(V, vid(store, "PLATE:FR:AB123CD"))
    assert clio is not None
    assert clio.fields["plate"] == "AB-123-CD"  # as written; the key is normalised
    assert clio.keys == {
        "vehicle_key": "PLATE:FR:AB123CD",
        "vin": None,
        "plate_key": "AB123CD",
        "plate_country": "FR",
    }
    assert store.get(V, "US-2024-000417") is not None  # the import's own id
    # An advisory check digit that is wrong: kept, and said nowhere in the record.
    advisory = store.get(V, vid(store, "VIN:WDB1240221A123456"))
    assert advisory is not None
    assert dict(advisory.fields) == {"vin": "WDB1240221A123456", "status": "missing"}
    for record_id in store.iter_ids(V):
        got = store.get(V, record_id)
        assert got is not None
        assert set(got.fields) <= allowed
        assert re.fullmatch(r"[A-Za-z0-9._-]+", record_id)


def test_csv_import(store: RecordStore) -> None:
    text = (
        "vin,plate,plate_country,make,model,colour,year,stolen_on,status,owner_name,remarks\n"
        f"{DE_MERCEDES},B-MW 1234,de,Mercedes-Benz,C 220,black,2019,2024-03-01,stolen,,\n"
        ",AB-123-CD,FR,Renault,Clio,,,,stolen,,\n"
        "1M8GDM9A1KP042788,,,,,,,,stolen,,\n"
        ",,,,,,,,stolen,,\n"
        "1m8g-dm9a-xkp0-42788,,,,,,19x9,,missing,,\n"
    )
    report = import_stream(store, io.BytesIO(text.encode()), category=V, fmt="csv")
    assert (report.inserted, report.rejected) == (2, 3)
    assert [(e.line, e.reason.split(":")[0]) for e in report.errors] == [
        (4, "vin"),
        (5, "row"),
        (6, "year"),
    ]
    golf = store.get(V, vid(store, f"VIN:{DE_MERCEDES}"))
    assert golf is not None
    assert golf.fields["year"] == 2019
    assert golf.fields["plate_country"] == "DE"
    assert "owner_name" not in golf.fields  # an empty cell is not known, not ""


def test_csv_without_the_status_column_is_refused_before_any_row(store: RecordStore) -> None:
    text = f"vin,plate\n{US_X},\n"
    with pytest.raises(ImportFileError, match=re.escape("lacks the column(s) status")):
        import_stream(store, io.BytesIO(text.encode()), category=V, fmt="csv")
    assert store.count(V) == 0


def test_exact_match_by_vin_normalised(store: RecordStore) -> None:
    load(store, GOLF, CLIO, ACCORD)
    for query in (US_HONDA, "1hgcm82633a004352", "1HG CM826 33A-004352"):
        assert find(store, vin=query) == [("US-2024-000417", 1.0)]
    assert find(store, vin=US_X) == []
    parsed = Vehicles().parse_criteria({"vin": US_HONDA})
    (match,) = store.search_now(V, parsed, 10)
    assert match.reasons == ({"field": "vin", "match": "exact"},)


def test_match_by_plate_and_country(store: RecordStore) -> None:
    load(store, GOLF, CLIO)
    for plate in ("AB-123-CD", "ab 123 cd", "AB123CD", "ab.123.cd"):
        assert find(store, plate=plate, country="fr") == [(vid(store, "PLATE:FR:AB123CD"), 0.9)]
    assert find(store, plate="AB123CD", country="DE") == []
    assert find(store, plate="bmw1234", country="DE") == [(vid(store, f"VIN:{DE_MERCEDES}"), 0.9)]
    (match,) = store.search_now(
        V, Vehicles().parse_criteria({"plate": "AB123CD", "plate_country": "FR"}), 10
    )
    assert match.reasons == (
        {"field": "plate", "match": "exact"},
        {"field": "plate_country", "match": "exact"},
    )


def test_match_by_plate_alone_finds_it_in_every_country(store: RecordStore) -> None:
    load(store, CLIO, {**CLIO, "plate_country": "BE", "make": "Peugeot"})
    assert sorted(find(store, plate="ab-123-cd")) == sorted(
        [(vid(store, "PLATE:BE:AB123CD"), 0.9), (vid(store, "PLATE:FR:AB123CD"), 0.9)]
    )
    (match, _) = store.search_now(V, Vehicles().parse_criteria({"plate": "AB123CD"}), 10)
    assert match.reasons == ({"field": "plate", "match": "exact"},)


def test_vin_and_plate_are_either_or_and_a_vin_outranks_a_plate(store: RecordStore) -> None:
    load(store, GOLF, CLIO, ACCORD)
    assert find(store, vin=US_HONDA, plate="AB123CD", country="FR") == [
        ("US-2024-000417", 1.0),
        (vid(store, "PLATE:FR:AB123CD"), 0.9),
    ]
    # Both keys of one record: one hit, with both reasons.
    parsed = Vehicles().parse_criteria(
        {"vin": DE_MERCEDES, "plate": "B MW 1234", "plate_country": "DE"}
    )
    (match,) = store.search_now(V, parsed, 10)
    assert (match.record.id, match.score) == (vid(store, f"VIN:{DE_MERCEDES}"), 1.0)
    assert match.reasons == (
        {"field": "vin", "match": "exact"},
        {"field": "plate", "match": "exact"},
        {"field": "plate_country", "match": "exact"},
    )


def test_same_plate_on_another_vin_scores_lower_and_says_so(store: RecordStore) -> None:
    load(store, GOLF)
    parsed = Vehicles().parse_criteria({"vin": JP_HONDA, "plate": "BMW1234", "plate_country": "DE"})
    (match,) = store.search_now(V, parsed, 10)
    assert match.score == 0.5
    assert match.reasons == (
        {"field": "plate", "match": "exact"},
        {"field": "plate_country", "match": "exact"},
        {"field": "vin", "match": "different"},
    )


def test_reimport_updates_by_natural_key(store: RecordStore) -> None:
    load(store, GOLF, CLIO)
    # The VIN keeps the record; its plate changed. A plate-only record keeps its plate key.
    report = load(
        store,
        {**GOLF, "plate": "M-XY 99", "status": "missing"},
        {**CLIO, "plate": "ab 123 cd", "colour": "red"},
    )
    assert (report.inserted, report.updated) == (0, 2)
    assert find(store, plate="BMW1234") == []
    assert find(store, plate="MXY99", country="DE") == [(vid(store, f"VIN:{DE_MERCEDES}"), 0.9)]
    clio = store.get(V, vid(store, "PLATE:FR:AB123CD"))
    assert clio is not None
    assert clio.fields["colour"] == "red"
    assert store.count(V) == 2


def test_removal(store: RecordStore) -> None:
    load(store, GOLF, CLIO)
    assert store.remove(V, vid(store, f"VIN:{DE_MERCEDES}"))
    assert find(store, vin=DE_MERCEDES) == []
    assert find(store, plate="BMW1234", country="DE") == []
    assert not store.remove(V, vid(store, f"VIN:{DE_MERCEDES}"))
    assert find(store, plate="AB123CD") == [(vid(store, "PLATE:FR:AB123CD"), 0.9)]


def test_replace_makes_the_category_equal_to_the_file(store: RecordStore) -> None:
    load(store, GOLF, CLIO, ACCORD)
    report = load(store, GOLF, ACCORD, replace=True)  # the Clio was found
    assert (report.inserted, report.updated, report.unchanged, report.removed) == (0, 0, 2, 1)
    assert find(store, plate="AB123CD", country="FR") == []
    assert store.count(V) == 2
    # A file with a bad line removes nothing: the bad line might be a record still wanted.
    report = load(store, GOLF, {"vin": "1M8GDM9A1KP042788", "status": "stolen"}, replace=True)
    assert (report.removed, report.replace_skipped) == (0, "lines were rejected")
    assert find(store, vin=US_HONDA) == [("US-2024-000417", 1.0)]
    assert store.remove_except(V, {vid(store, f"VIN:{DE_MERCEDES}")}) == 1
    assert [i for i, _ in find(store, vin=US_HONDA)] == []
    assert list(store.iter_ids(V)) == [vid(store, f"VIN:{DE_MERCEDES}")]


@pytest.mark.parametrize(
    ("criteria", "field", "message"),
    [
        ({"vin": US_X, "make": "Ford"}, "make", "unknown vehicle criterion 'make'"),
        ({}, "vin", "a vehicle check needs a vin or a plate"),
        ({"plate_country": "FR"}, "vin", "a vehicle check needs a vin or a plate"),
        ({"vin": 17}, "vin", "vin must be a string"),
        ({"vin": "1M8GDM9AXKP04278O"}, "vin", "VIN holds 'O' at position 17"),
        ({"vin": "1M8GDM9AXKP0427"}, "vin", "VIN has 15 characters"),
        ({"vin": "1M8GDM9A1KP042788"}, "vin", "VIN check digit is wrong"),
        ({"plate": ["AB"]}, "plate", "plate must be a string"),
        ({"plate": "AB_12"}, "plate", "plate holds '_' at position 3"),
        (
            {"plate": "AB12", "plate_country": "FRA"},
            "plate_country",
            "plate_country 'FRA' is not an ISO 3166-1 alpha-2 code (did you mean 'FR'?)",
        ),
        (
            {"plate": "AB12", "plate_country": "ZZ"},
            "plate_country",
            "is not an ISO 3166-1 alpha-2 code",
        ),
        ({"plate": "AB12", "plate_country": 33}, "plate_country", "plate_country must be a string"),
        ({"vin": US_X, "plate_country": "US"}, "plate_country", "give a plate with it"),
    ],
)
def test_criteria_errors(criteria: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(InvalidCriteria) as caught:
        Vehicles().parse_criteria(criteria)
    assert caught.value.field == field
    assert message in caught.value.detail


def test_criteria_parsed() -> None:
    kind = Vehicles()
    assert kind.parse_criteria({"vin": "wdb1240221a123456"}) == VehicleCriteria(
        vin="WDB1240221A123456", vin_check_digit_ok=False
    )  # advisory: searched all the same
    parsed = kind.parse_criteria({"plate": " ab-123-cd", "plate_country": "fr"})
    assert parsed == VehicleCriteria(plate_key="AB123CD", plate=" ab-123-cd", country="FR")
    assert kind.lookups(parsed) == [{"plate_key": "AB123CD", "plate_country": "FR"}]
    both = kind.parse_criteria({"vin": US_X, "plate": "AB123CD"})
    assert kind.lookups(both) == [{"vin": US_X}, {"plate_key": "AB123CD"}]
    # Every lookup is served by an index: no query scans the category.
    shapes = {
        tuple(sorted(lookup))
        for lookup in [*kind.lookups(both), *kind.lookups(parsed)]
        if isinstance(lookup, Mapping)
    }
    # (an index also serves a lookup on its leading columns)
    served = {tuple(sorted(cols[:n])) for cols in kind.indexes for n in range(1, len(cols) + 1)}
    assert shapes <= served


def test_old_spelling_of_the_plate_country_still_reads() -> None:
    """Peers of wire v1 sent a plate's country as `country`."""
    kind = Vehicles()
    old = kind.parse_criteria({"plate": "AB123CD", "country": "fr"})
    assert old == kind.parse_criteria({"plate": "AB123CD", "plate_country": "FR"})
