"""Document-number keys and travel-document criteria: normalisation, MRZ input, rejections."""

from __future__ import annotations

import pytest

from connector.errors import InvalidCriteria
from connector.records.identifiers.documents import (
    DocumentCriteria,
    document_criteria,
    normalise_document_number,
)

# ICAO 9303 specimens and a German passport; check digits recomputed, see tests/records/test_mrz.py.
TD3 = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10"
TD1_LONG = (
    "I<UTOD23145890<7349<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<"
)
DE_PASSPORT = (
    "P<D<<MUSTERMANN<<ERIKA<<<<<<<<<<<<<<<<<<<<<<\nC01X00T478D<<6408125F2702283<<<<<<<<<<<<<<<4"
)
DE_ID_CARD = (
    "IDD<<T220001293<<<<<<<<<<<<<<<\n6408125<2010315D<<<<<<<<<<<<<4\nMUSTERMANN<<ERIKA<<<<<<<<<<<<<"
)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("L898902C3", "L898902C3"),
        ("l898902c3", "L898902C3"),
        ("L898 902 C3", "L898902C3"),
        ("  L898902C3\t\n", "L898902C3"),
        ("AB-12-34", "AB1234"),
        ("AB.12/34", "AB1234"),
        ("AB<<1234<<<", "AB1234"),
        ("C01XOOT47", "C01X00T47"),  # O read for 0
        ("c01x00t47", "C01X00T47"),
        ("OOO123", "000123"),
        ("１２３４５６", "123456"),  # full-width digits
        ("ＡＢ－１２", "AB12"),  # full-width letters and hyphen
        ("AB\u00a012", "AB12"),  # no-break space
        ("AB\u200912", "AB12"),  # thin space
        ("AB\u201312", "AB12"),  # en dash
        ("AB\u201412", "AB12"),  # em dash
        ("AB\u221212", None),  # minus sign is not a dash
        ("A" * 20, "A" * 20),
        ("AB-CD-EF-GH-IJ-KL-MN-PQ-RS-TU", "ABCDEFGHIJKLMNPQRSTU"),  # 20 once dashes go
    ],
)
def test_normalise(raw: str, key: str | None) -> None:
    if key is None:
        with pytest.raises(InvalidCriteria) as caught:
            normalise_document_number(raw)
        assert caught.value.field == "document_number"
    else:
        assert normalise_document_number(raw) == key


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("C01X00T47", "c01xoot47"),
        ("AB 123-456", "ab123456"),
        ("0O0O", "O0O0"),
        ("X１２", "x-12"),
    ],
)
def test_numbers_differing_only_in_tolerated_ways_share_a_key(a: str, b: str) -> None:
    assert normalise_document_number(a) == normalise_document_number(b)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-./<", "empty"),
        ("<<<<<<<<<", "empty"),
        ("A" * 21, "at most 20"),
        ("1234-5678-9012-3456-7890-1", "at most 20"),
        ("X" * 101, "longer than 100"),
        ("ÄB123", "'Ä'"),
        ("AB123É", "'É'"),
        ("straße1", "'ß'"),  # would uppercase to SS
        ("ıd123", "'ı'"),  # dotless i, would uppercase to I
        ("ΑΒ123", "'Α'"),  # Greek capitals that look Latin
        ("АВ123", "'А'"),  # Cyrillic capitals that look Latin
        ("AB#12", "'#'"),
        ("AB_12", "'_'"),
        ("AB,12", "','"),
        ("AB\x0012", "'\\\\x00'"),
    ],
)
def test_normalise_rejects(raw: str, reason: str) -> None:
    with pytest.raises(InvalidCriteria, match=reason) as caught:
        normalise_document_number(raw)
    assert caught.value.field == "document_number"
    assert caught.value.status == 422


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        (
            {"document_number": "l898 902-c3"},
            DocumentCriteria(
                number_key="L898902C3",
                number="l898 902-c3",
                country=None,
                document_type=None,
                from_mrz=False,
            ),
        ),
        (
            {"document_number": "C01XOOT47", "document_country": "DE", "document_type": "P"},
            DocumentCriteria(
                number_key="C01X00T47",
                number="C01XOOT47",
                country="DE",
                document_type="P",
                from_mrz=False,
            ),
        ),
        (
            {"document_number": "X1", "document_country": "fr", "document_type": "id"},
            DocumentCriteria(
                number_key="X1",
                number="X1",
                country="FR",
                document_type="I",
                from_mrz=False,
            ),
        ),
        (
            {"document_number": "X1", "document_type": "AC"},
            DocumentCriteria(
                number_key="X1",
                number="X1",
                country=None,
                document_type="A",
                from_mrz=False,
            ),
        ),
        (
            {"document_number": "X1", "document_country": None, "document_type": None},
            DocumentCriteria(
                number_key="X1",
                number="X1",
                country=None,
                document_type=None,
                from_mrz=False,
            ),
        ),
        (
            {"mrz": TD3},
            DocumentCriteria(
                number_key="L898902C3",
                number="L898902C3",
                country=None,
                document_type="P",
                from_mrz=True,
            ),
        ),
        (
            {"mrz": TD1_LONG.lower()},
            DocumentCriteria(
                number_key="D23145890734",
                number="D23145890734",
                country=None,
                document_type="I",
                from_mrz=True,
            ),
        ),
        (
            {"mrz": DE_PASSPORT},
            DocumentCriteria(
                number_key="C01X00T47",
                number="C01X00T47",
                country="DE",
                document_type="P",
                from_mrz=True,
            ),
        ),
        (
            {"mrz": DE_ID_CARD},
            DocumentCriteria(
                number_key="T22000129",
                number="T22000129",
                country="DE",
                document_type="I",
                from_mrz=True,
            ),
        ),
    ],
    ids=[
        "number",
        "number-country-type",
        "lowercase-codes",
        "two-letter-type",
        "null-optionals",
        "mrz-td3",
        "mrz-td1-long",
        "mrz-de-passport",
        "mrz-de-id-card",
    ],
)
def test_document_criteria(criteria: dict[str, object], expected: DocumentCriteria) -> None:
    assert document_criteria(criteria) == expected


def test_typed_number_and_mrz_share_a_key() -> None:
    typed = document_criteria({"document_number": "c01x-oot47", "document_country": "DE"})
    read = document_criteria({"mrz": DE_PASSPORT})
    assert (typed.number_key, typed.country) == (read.number_key, read.country)


@pytest.mark.parametrize(
    ("criteria", "field"),
    [
        ({}, "document_number"),
        ({"document_country": "FR"}, "document_number"),
        ({"document_number": None}, "document_number"),
        ({"document_number": 12345}, "document_number"),
        ({"document_number": ""}, "document_number"),
        ({"document_number": "ΑΒ123"}, "document_number"),
        ({"document_number": "X1", "colour": "red"}, "colour"),
        ({"document_number": "X1", "zeta": 1, "alpha": 2}, "alpha"),
        ({"mrz": TD3, "surname": "ERIKSSON"}, "surname"),
        ({"mrz": TD3, "document_number": "L898902C3"}, "mrz"),
        ({"mrz": TD3, "document_country": "FR"}, "mrz"),
        ({"mrz": TD3, "document_type": "P"}, "mrz"),
        ({"mrz": None}, "mrz"),
        ({"mrz": ["P<UTO"]}, "mrz"),
        ({"mrz": "P<UTO"}, "mrz"),
        ({"mrz": TD3[:-1] + "1"}, "mrz.composite_check_digit"),
        ({"mrz": TD3.replace("L898902C36", "L898902C37")}, "mrz.document_number_check_digit"),
        ({"document_number": "X1", "document_country": "FRA"}, "document_country"),
        ({"document_number": "X1", "document_country": "XX"}, "document_country"),
        ({"document_number": "X1", "document_country": ""}, "document_country"),
        ({"document_number": "X1", "document_country": "ＦＲ"}, "document_country"),
        ({"document_number": "X1", "document_country": 33}, "document_country"),
        (
            {"document_number": "X1", "document_country": "ıT"},
            "document_country",
        ),  # dotless i, would uppercase to IT
        ({"document_number": "X1", "document_type": "Q"}, "document_type"),
        ({"document_number": "X1", "document_type": "PPP"}, "document_type"),
        ({"document_number": "X1", "document_type": ""}, "document_type"),
        ({"document_number": "X1", "document_type": "1"}, "document_type"),
        ({"document_number": "X1", "document_type": "ı"}, "document_type"),
        ({"document_number": "X1", "document_type": ["P"]}, "document_type"),
    ],
)
def test_document_criteria_rejects(criteria: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidCriteria) as caught:
        document_criteria(criteria)
    assert caught.value.field == field
    assert caught.value.problem()["field"] == field


def test_unknown_key_is_named_in_the_detail() -> None:
    with pytest.raises(InvalidCriteria, match="'colour'"):
        document_criteria({"document_number": "X1", "colour": "red"})


def test_old_spellings_of_the_criteria_still_read() -> None:
    """Peers of wire v1 sent `number` and `country`: they mean what they meant."""
    old = document_criteria({"number": "C01X00T47", "country": "de"})
    assert old == document_criteria({"document_number": "C01X00T47", "document_country": "DE"})
    # Given both ways, the name today wins.
    both = document_criteria({"number": "X1", "document_number": "C01X00T47"})
    assert both.number == "C01X00T47"
