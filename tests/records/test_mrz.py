"""ICAO 9303 MRZ parsing: the ICAO specimens, every check digit, long numbers and bad input."""

from __future__ import annotations

from datetime import date

import pytest

from connector.errors import InvalidCriteria
from connector.records.identifiers.mrz import Mrz, MrzFormat, check_digit, parse_mrz

TODAY = date(2024, 6, 1)

# ICAO 9303 specimens (Part 4 TD3, Part 5 TD1, Part 6 TD2, Part 7 MRV-A); every check digit
# below was recomputed independently of connector.records.identifiers.mrz.
TD3 = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10"
TD1 = (
    "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<"
)
TD2 = "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nD231458907UTO7408122F1204159<<<<<<<6"
# TD1 and TD2 with the 12-character number D23145890734 (check digit 9) overflowing into the
# optional data, and a TD1 with a 14-character one (check digit 2).
TD1_LONG = (
    "I<UTOD23145890<7349<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<"
)
TD1_LONGER = (
    "I<UTOD23145890<734122<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<8\nERIKSSON<<ANNA<MARIA<<<<<<<<<<"
)
TD2_LONG = "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nD23145890<UTO7408122F12041597349<<<2"
MRV_A = "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL8988901C4XXX4009078F96121096ZE184226B<<<<<<"
# German specimens: "D<<" for Germany, '<' as the empty personal number's check digit, and an
# identity card with '<' for sex.
DE_PASSPORT = (
    "P<D<<MUSTERMANN<<ERIKA<<<<<<<<<<<<<<<<<<<<<<\nC01X00T478D<<6408125F2702283<<<<<<<<<<<<<<<4"
)
DE_ID_CARD = (
    "IDD<<T220001293<<<<<<<<<<<<<<<\n6408125<2010315D<<<<<<<<<<<<<4\nMUSTERMANN<<ERIKA<<<<<<<<<<<<<"
)


def _erika(fmt: MrzFormat, code: str, number: str) -> Mrz:
    return Mrz(
        format=fmt,
        document_code=code,
        issuing_state="UTO",
        issuing_country=None,
        document_number=number,
        primary_identifier="ERIKSSON",
        secondary_identifier="ANNA MARIA",
        nationality="UTO",
        birth_date="740812",
        birth_date_parsed=date(1974, 8, 12),
        expiry_date="120415",
        expiry_date_parsed=date(2012, 4, 15),
        sex="F",
    )


def td3(
    *,
    code: str = "P<",
    state: str = "UTO",
    name: str = "ERIKSSON<<ANNA<MARIA",
    number: str = "L898902C3",
    nationality: str = "UTO",
    birth: str = "740812",
    sex: str = "F",
    expiry: str = "120415",
    personal: str = "ZE184226B",
) -> str:
    """A TD3 with correct check digits for the given fields."""
    line1 = (code + state + name).ljust(44, "<")
    number = number.ljust(9, "<")
    personal = personal.ljust(14, "<")
    line2 = (
        f"{number}{check_digit(number)}{nationality}{birth}{check_digit(birth)}{sex}"
        f"{expiry}{check_digit(expiry)}{personal}{check_digit(personal)}"
    )
    line2 += str(check_digit(line2[0:10] + line2[13:20] + line2[21:43]))
    return f"{line1}\n{line2}"


def flip(text: str, line: int, position: int, to: str | None = None) -> str:
    """text with one character replaced: by `to`, or a check digit by the next digit."""
    lines = text.split("\n")
    old = lines[line][position]
    new = to if to is not None else str((int(old) + 1) % 10)
    lines[line] = lines[line][:position] + new + lines[line][position + 1 :]
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("L898902C3", 6),
        ("740812", 2),
        ("120415", 9),
        ("ZE184226B<<<<<", 1),
        ("D23145890", 7),
        ("D23145890734", 9),
        ("C01X00T47", 8),
        ("<<<<<<<<<<<<<<", 0),
        ("", 0),
        ("L898902C3674081221204159ZE184226B<<<<<1", 0),  # the TD3 composite string
    ],
)
def test_check_digit(value: str, expected: int) -> None:
    assert check_digit(value) == expected


@pytest.mark.parametrize("value", ["l898902c3", "AB-12", "AB 12", "É"])
def test_check_digit_rejects_characters_outside_the_mrz_alphabet(value: str) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        check_digit(value)


def test_td3_builder_reproduces_the_specimen() -> None:
    assert td3() == TD3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (TD3, _erika("TD3", "P", "L898902C3")),
        (TD1, _erika("TD1", "I", "D23145890")),
        (TD2, _erika("TD2", "I", "D23145890")),
        (TD1_LONG, _erika("TD1", "I", "D23145890734")),
        (TD1_LONGER, _erika("TD1", "I", "D2314589073412")),
        (TD2_LONG, _erika("TD2", "I", "D23145890734")),
        (
            DE_PASSPORT,
            Mrz(
                format="TD3",
                document_code="P",
                issuing_state="D",
                issuing_country="DE",
                document_number="C01X00T47",
                primary_identifier="MUSTERMANN",
                secondary_identifier="ERIKA",
                nationality="D",
                birth_date="640812",
                birth_date_parsed=date(1964, 8, 12),
                expiry_date="270228",
                expiry_date_parsed=date(2027, 2, 28),
                sex="F",
            ),
        ),
        (
            DE_ID_CARD,
            Mrz(
                format="TD1",
                document_code="ID",
                issuing_state="D",
                issuing_country="DE",
                document_number="T22000129",
                primary_identifier="MUSTERMANN",
                secondary_identifier="ERIKA",
                nationality="D",
                birth_date="640812",
                birth_date_parsed=date(1964, 8, 12),
                expiry_date="201031",
                expiry_date_parsed=date(2020, 10, 31),
                sex="X",
            ),
        ),
        (
            MRV_A,
            Mrz(
                format="TD3",
                document_code="V",
                issuing_state="UTO",
                issuing_country=None,
                document_number="L8988901C",
                primary_identifier="ERIKSSON",
                secondary_identifier="ANNA MARIA",
                nationality="XXX",
                birth_date="400907",
                birth_date_parsed=date(1940, 9, 7),
                expiry_date="961210",
                expiry_date_parsed=date(2096, 12, 10),
                sex="F",
            ),
        ),
        (
            td3(state="FRA", nationality="FRA", name="DUPONT<DE<LA<TOUR<<JEAN<PIERRE"),
            Mrz(
                format="TD3",
                document_code="P",
                issuing_state="FRA",
                issuing_country="FR",
                document_number="L898902C3",
                primary_identifier="DUPONT DE LA TOUR",
                secondary_identifier="JEAN PIERRE",
                nationality="FRA",
                birth_date="740812",
                birth_date_parsed=date(1974, 8, 12),
                expiry_date="120415",
                expiry_date_parsed=date(2012, 4, 15),
                sex="F",
            ),
        ),
    ],
    ids=[
        "td3",
        "td1",
        "td2",
        "td1-long",
        "td1-longer",
        "td2-long",
        "de-passport",
        "de-id-card",
        "mrv-a",
        "fr-compound-names",
    ],
)
def test_parses_specimens(text: str, expected: Mrz) -> None:
    assert parse_mrz(text, today=TODAY) == expected


@pytest.mark.parametrize(
    ("text", "line", "position", "field"),
    [
        (TD3, 1, 9, "mrz.document_number_check_digit"),
        (TD3, 1, 19, "mrz.birth_date_check_digit"),
        (TD3, 1, 27, "mrz.expiry_date_check_digit"),
        (TD3, 1, 42, "mrz.personal_number_check_digit"),
        (TD3, 1, 43, "mrz.composite_check_digit"),
        (TD1, 0, 14, "mrz.document_number_check_digit"),
        (TD1, 1, 6, "mrz.birth_date_check_digit"),
        (TD1, 1, 14, "mrz.expiry_date_check_digit"),
        (TD1, 1, 29, "mrz.composite_check_digit"),
        (TD2, 1, 9, "mrz.document_number_check_digit"),
        (TD2, 1, 19, "mrz.birth_date_check_digit"),
        (TD2, 1, 27, "mrz.expiry_date_check_digit"),
        (TD2, 1, 35, "mrz.composite_check_digit"),
        (TD1_LONG, 0, 18, "mrz.document_number_check_digit"),
        (TD1_LONG, 1, 29, "mrz.composite_check_digit"),
        (TD1_LONGER, 0, 20, "mrz.document_number_check_digit"),
        (TD2_LONG, 1, 31, "mrz.document_number_check_digit"),
        (TD2_LONG, 1, 35, "mrz.composite_check_digit"),
        (MRV_A, 1, 9, "mrz.document_number_check_digit"),
        (MRV_A, 1, 19, "mrz.birth_date_check_digit"),
        (MRV_A, 1, 27, "mrz.expiry_date_check_digit"),
        (DE_PASSPORT, 1, 9, "mrz.document_number_check_digit"),
        (DE_PASSPORT, 1, 43, "mrz.composite_check_digit"),
        (DE_ID_CARD, 0, 14, "mrz.document_number_check_digit"),
        (DE_ID_CARD, 1, 29, "mrz.composite_check_digit"),
    ],
)
def test_each_flipped_check_digit_is_named(text: str, line: int, position: int, field: str) -> None:
    with pytest.raises(InvalidCriteria) as caught:
        parse_mrz(flip(text, line, position), today=TODAY)
    assert caught.value.field == field
    assert caught.value.status == 422


@pytest.mark.parametrize(
    ("text", "line", "position", "to", "field"),
    [
        # A letter or a filler where a check digit belongs.
        (TD3, 1, 19, "A", "mrz.birth_date_check_digit"),
        (TD3, 1, 43, "<", "mrz.composite_check_digit"),
        (TD3, 1, 9, "<", "mrz.document_number_check_digit"),  # TD3 has no long-number form
        (TD3, 1, 42, "<", "mrz.personal_number_check_digit"),  # personal number present
        # The empty personal number's check digit may be '<' or 0, nothing else.
        (DE_PASSPORT, 1, 42, "1", "mrz.personal_number_check_digit"),
        # '<' in the check-digit position with no long number in the optional data.
        (TD1, 0, 14, "<", "mrz.document_number_check_digit"),
        (TD2, 1, 9, "<", "mrz.document_number_check_digit"),
        # A filler inside the principal part of a long number.
        (TD1_LONG, 0, 13, "<", "mrz.document_number_check_digit"),
        # The check digit of a long number must be a digit.
        (TD1_LONG, 0, 18, "A", "mrz.document_number_check_digit"),
    ],
)
def test_malformed_check_digits(text: str, line: int, position: int, to: str, field: str) -> None:
    with pytest.raises(InvalidCriteria) as caught:
        parse_mrz(flip(text, line, position, to), today=TODAY)
    assert caught.value.field == field


def test_empty_personal_number_check_digit_may_be_zero() -> None:
    # The composite changes with it: 0 and '<' both count 0, so it still verifies.
    mrz = parse_mrz(flip(DE_PASSPORT, 1, 42, "0"), today=TODAY)
    assert mrz.document_number == "C01X00T47"


@pytest.mark.parametrize(
    "text",
    [
        TD3.lower(),
        f"  \n{TD3}\n\n  ",
        TD3.replace("\n", "\r\n"),
        TD3.replace("\n", "\n\n"),
        "\t" + TD3.replace("\n", "  \n  ") + "\t",
        TD3.replace("\n", ""),
        f" {TD3.replace(chr(10), '').lower()} ",
    ],
    ids=[
        "lowercase",
        "blank-lines-around",
        "crlf",
        "blank-line-between",
        "padded-lines",
        "concatenated",
        "concatenated-lowercase-padded",
    ],
)
def test_tolerated_layouts(text: str) -> None:
    assert parse_mrz(text, today=TODAY) == parse_mrz(TD3, today=TODAY)


@pytest.mark.parametrize(
    "text",
    [TD1, TD2, TD1_LONG, TD2_LONG, DE_ID_CARD],
    ids=["td1", "td2", "td1-long", "td2-long", "de-id-card"],
)
def test_concatenated_td1_td2(text: str) -> None:
    concatenated = text.replace("\n", "").lower()
    assert parse_mrz(concatenated, today=TODAY) == parse_mrz(text, today=TODAY)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n  ",
        TD3.split("\n")[1],  # one line
        TD3 + "\n" + TD3.split("\n")[1],  # three lines of 44
        TD1.rsplit("\n", 1)[0],  # two lines of 30
        TD3[:-1],  # 44 + 43
        TD3 + "<",  # 44 + 45
        TD2.split("\n")[0] + "\n" + TD3.split("\n")[1],  # 36 + 44
        TD3.replace("\n", "")[:-1],  # 87 concatenated
        TD1.replace("\n", "") + "<",  # 91 concatenated
        TD3.replace("\n", "") + TD3.replace("\n", ""),  # 176 concatenated
    ],
    ids=[
        "empty",
        "whitespace",
        "one-line",
        "three-lines-of-44",
        "two-lines-of-30",
        "44+43",
        "44+45",
        "36+44",
        "87-concatenated",
        "91-concatenated",
        "twice-concatenated",
    ],
)
def test_bad_shapes(text: str) -> None:
    with pytest.raises(InvalidCriteria, match="expected TD1") as caught:
        parse_mrz(text, today=TODAY)
    assert caught.value.field == "mrz"


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        (TD3.replace("ANNA<MARIA", "ANNA MARIA"), "' '"),
        (TD3.replace("ERIKSSON", "ERIKSSÖN"), "'Ö'"),
        (TD3.replace("L898902C3", "L898-02C3"), "'-'"),
        (TD3.replace("<<<<<10", "<<<<«10"), "'«'"),
        (TD3.replace("L898902C3", "L８98902C3"), "'８'"),  # full-width digit
        (TD3.replace("ERIKSSON", "ERİKSSON"), "'İ'"),
        (TD3.replace("ERIKSSON", "ERıKSSON"), "'ı'"),  # would uppercase to I
    ],
)
def test_bad_characters(text: str, bad: str) -> None:
    with pytest.raises(InvalidCriteria, match=bad) as caught:
        parse_mrz(text, today=TODAY)
    assert caught.value.field == "mrz"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (td3(code="Q<"), "mrz.document_code"),
        (td3(code="1<"), "mrz.document_code"),
        (td3(code="P1"), "mrz.document_code"),
        (td3(code="<P"), "mrz.document_code"),
        (td3(sex="Q"), "mrz.sex"),
        (td3(state="U1O"), "mrz.issuing_state"),
        (td3(state="<<<"), "mrz.issuing_state"),
        (td3(nationality="123"), "mrz.nationality"),
        (td3(birth="74O812"), "mrz.birth_date"),
        (td3(expiry="12A415"), "mrz.expiry_date"),
        (td3(number="<<<<<<<<<"), "mrz.document_number"),
        (td3(number="AB<<12345"), "mrz.document_number"),
    ],
)
def test_impossible_fields(text: str, field: str) -> None:
    with pytest.raises(InvalidCriteria) as caught:
        parse_mrz(text, today=TODAY)
    assert caught.value.field == field


@pytest.mark.parametrize(("sex", "expected"), [("M", "M"), ("F", "F"), ("X", "X"), ("<", "X")])
def test_sex(sex: str, expected: str) -> None:
    assert parse_mrz(td3(sex=sex), today=TODAY).sex == expected


@pytest.mark.parametrize(
    ("birth", "today", "expected"),
    [
        ("740812", TODAY, date(1974, 8, 12)),
        ("150101", TODAY, date(2015, 1, 1)),
        ("240601", TODAY, date(2024, 6, 1)),  # born today
        ("240602", TODAY, date(1924, 6, 2)),  # tomorrow is in the future: last century
        ("300101", TODAY, date(1930, 1, 1)),
        ("000229", TODAY, date(2000, 2, 29)),
        ("000229", date(1999, 12, 31), None),  # 2000 is future, 1900 had no 29 February
        ("991231", date(2100, 1, 1), date(2099, 12, 31)),
        ("7408<<", TODAY, None),  # unknown day
        ("74<<<<", TODAY, None),  # unknown month and day
        ("740800", TODAY, None),  # day written as 00
        ("741332", TODAY, None),
    ],
)
def test_birth_date_century(birth: str, today: date, expected: date | None) -> None:
    mrz = parse_mrz(td3(birth=birth), today=today)
    assert mrz.birth_date == birth
    assert mrz.birth_date_parsed == expected


@pytest.mark.parametrize(
    ("expiry", "expected"),
    [
        ("120415", date(2012, 4, 15)),
        ("991231", date(2099, 12, 31)),
        ("000101", date(2000, 1, 1)),
        ("250229", None),
        ("<<<<<<", None),
    ],
)
def test_expiry_date_is_this_century(expiry: str, expected: date | None) -> None:
    mrz = parse_mrz(td3(expiry=expiry), today=TODAY)
    assert mrz.expiry_date == expiry
    assert mrz.expiry_date_parsed == expected


def test_today_defaults_to_the_current_date() -> None:
    assert parse_mrz(TD3).birth_date_parsed == date(1974, 8, 12)


@pytest.mark.parametrize(
    ("name", "primary", "secondary"),
    [
        ("ERIKSSON<<ANNA<MARIA", "ERIKSSON", "ANNA MARIA"),
        ("ERIKSSON", "ERIKSSON", ""),
        ("<<ANNA", "", "ANNA"),
        ("VAN<DER<BERG<<JAN", "VAN DER BERG", "JAN"),
        ("O<BRIEN<<SEAN<<PATRICK", "O BRIEN", "SEAN PATRICK"),
    ],
)
def test_names(name: str, primary: str, secondary: str) -> None:
    mrz = parse_mrz(td3(name=name), today=TODAY)
    assert (mrz.primary_identifier, mrz.secondary_identifier) == (primary, secondary)


@pytest.mark.parametrize(
    ("state", "issuing_state", "country"),
    [
        ("UTO", "UTO", None),
        ("D<<", "D", "DE"),
        ("FRA", "FRA", "FR"),
        ("GBD", "GBD", "GB"),
        ("UNO", "UNO", None),
        ("XXA", "XXA", None),
    ],
)
def test_issuing_country(state: str, issuing_state: str, country: str | None) -> None:
    mrz = parse_mrz(td3(state=state), today=TODAY)
    assert (mrz.issuing_state, mrz.issuing_country) == (issuing_state, country)
