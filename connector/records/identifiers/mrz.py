"""ICAO 9303 machine-readable zones: parse TD1, TD2 and TD3 and verify every check digit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from connector.errors import InvalidCriteria
from connector.vocabulary import country_from_alpha3

MrzFormat = Literal["TD1", "TD2", "TD3"]
Sex = Literal["M", "F", "X"]

# (line count, line length) -> format, and the same formats written as one unbroken line.
_LAYOUTS: dict[tuple[int, int], MrzFormat] = {(3, 30): "TD1", (2, 36): "TD2", (2, 44): "TD3"}
_CONCATENATED: dict[int, tuple[int, int]] = {90: (3, 30), 72: (2, 36), 88: (2, 44)}

_WEIGHTS = (7, 3, 1)
_LINE_RE = re.compile(r"[A-Za-z0-9<]*")
_CODE_RE = re.compile(r"[A-Z<]{3}")
_DATE_RE = re.compile(r"[0-9<]{6}")
_DOCUMENT_CODE_RE = re.compile(r"[A-Z][A-Z<]")
# First letters of ICAO 9303 document codes: A/C/I official travel documents (TD1, TD2),
# P passports (TD3), V visas (MRV-A at TD3 size, MRV-B at TD2 size).
_DOCUMENT_CODE_LETTERS = frozenset("ACIPV")
_SEX: dict[str, Sex] = {"M": "M", "F": "F", "X": "X", "<": "X"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Mrz:
    """The fields of a machine-readable zone whose check digits all verify.

    Codes are as written with '<' fillers stripped (Germany's "D<<" is "D"). Dates are kept as
    written (YYMMDD, '<' for an unknown part) and parsed where they are calendar dates.
    """

    format: MrzFormat
    document_code: str
    issuing_state: str
    issuing_country: str | None
    document_number: str
    primary_identifier: str
    secondary_identifier: str
    nationality: str
    birth_date: str
    birth_date_parsed: date | None
    expiry_date: str
    expiry_date_parsed: date | None
    sex: Sex


def check_digit(s: str) -> int:
    """The ICAO 9303 check digit of s: weights 7, 3, 1; '<' is 0, digits as is, A-Z are 10-35.

    Raises ValueError for a character outside [A-Z0-9<].
    """
    total = 0
    for i, ch in enumerate(s):
        if ch == "<":
            value = 0
        elif "0" <= ch <= "9":
            value = ord(ch) - ord("0")
        elif "A" <= ch <= "Z":
            value = ord(ch) - ord("A") + 10
        else:
            raise ValueError(f"character {ch!r} is not allowed in an MRZ")
        total += value * _WEIGHTS[i % 3]
    return total % 10


def parse_mrz(text: str, *, today: date | None = None) -> Mrz:
    """Parse and verify a TD1, TD2 or TD3 machine-readable zone.

    Lines are separated by newlines, or written as one line of exactly 90, 72 or 88 characters;
    surrounding whitespace and lowercase are tolerated. `today` (default: date.today()) decides
    the century of the birth date, which may not lie in the future. Raises InvalidCriteria with
    `field` "mrz" for the shape, "mrz.<name>_check_digit" for a check digit that does not verify
    and "mrz.<name>" for a field that cannot be what it is.
    """
    fmt, lines = _split(text)
    code = lines[0][0:2]
    if not _DOCUMENT_CODE_RE.fullmatch(code) or code[0] not in _DOCUMENT_CODE_LETTERS:
        raise InvalidCriteria(
            f"MRZ document code {code!r} does not start with an ICAO 9303 document letter "
            "(A, C, I, P or V)",
            field="mrz.document_code",
        )
    if fmt == "TD1":
        fields, name = _td1(lines), lines[2]
    else:
        fields, name = _td2_td3(lines, visa=code[0] == "V"), lines[0][5:]
    primary, secondary = _names(name)
    birth = fields.birth
    expiry = fields.expiry
    return Mrz(
        format=fmt,
        document_code=code.rstrip("<"),
        issuing_state=_state(lines[0][2:5], "issuing_state"),
        issuing_country=country_from_alpha3(lines[0][2:5]),
        document_number=fields.number,
        primary_identifier=primary,
        secondary_identifier=secondary,
        nationality=_state(fields.nationality, "nationality"),
        birth_date=_date_field(birth, "birth_date"),
        birth_date_parsed=_birth(birth, date.today() if today is None else today),
        expiry_date=_date_field(expiry, "expiry_date"),
        expiry_date_parsed=_expiry(expiry),
        sex=_sex(fields.sex),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Fields:
    """The raw fields common to every layout, cut out of the lines after the checks."""

    number: str
    nationality: str
    birth: str
    expiry: str
    sex: str


def _split(text: str) -> tuple[MrzFormat, list[str]]:
    lines = [line.strip() for line in text.strip().splitlines()]
    lines = [line for line in lines if line]
    for n, line in enumerate(lines, start=1):
        if not _LINE_RE.fullmatch(line):
            bad = next(ch for ch in line if not _LINE_RE.fullmatch(ch))
            raise InvalidCriteria(
                f"MRZ line {n} holds {bad!r}: only A-Z, 0-9 and '<' are allowed", field="mrz"
            )
    if len(lines) == 1 and len(lines[0]) in _CONCATENATED:
        count, length = _CONCATENATED[len(lines[0])]
        lines = [lines[0][i * length : (i + 1) * length] for i in range(count)]
    lengths = {len(line) for line in lines}
    fmt = _LAYOUTS.get((len(lines), lengths.pop())) if len(lengths) == 1 else None
    if not lines:
        raise InvalidCriteria(
            "MRZ is empty; expected TD1 (3 × 30), TD2 (2 × 36) or TD3 (2 × 44)", field="mrz"
        )
    if fmt is None:
        shape = " + ".join(str(len(line)) for line in lines)
        raise InvalidCriteria(
            f"MRZ has {len(lines)} line(s) of {shape} characters; expected TD1 (3 × 30), "
            "TD2 (2 × 36) or TD3 (2 × 44)",
            field="mrz",
        )
    return fmt, [line.upper() for line in lines]


def _td1(lines: list[str]) -> _Fields:
    """ICAO 9303 Part 5: number on line 1 (overflowing into optional data 1), dates on line 2."""
    l1, l2 = lines[0], lines[1]
    number = _document_number(l1[5:14], l1[14], l1[15:30])
    _verify(l2[0:6], l2[6], "birth_date")
    _verify(l2[8:14], l2[14], "expiry_date")
    _verify(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29], l2[29], "composite")
    return _Fields(number=number, nationality=l2[15:18], birth=l2[0:6], expiry=l2[8:14], sex=l2[7])


def _td2_td3(lines: list[str], *, visa: bool) -> _Fields:
    """ICAO 9303 Parts 4, 6 and 7: everything but the name is on line 2.

    TD3 has a checked personal number and a composite; TD2 a composite and, like TD1, a number
    that may overflow into the optional data. Visas (MRV-A, MRV-B) have neither composite nor
    personal-number check, and no overflow.
    """
    l2 = lines[1]
    td3 = len(l2) == 44
    if td3 or visa:
        number = _plain_number(l2[0:9], l2[9])
    else:
        number = _document_number(l2[0:9], l2[9], l2[28:35])
    _verify(l2[13:19], l2[19], "birth_date")
    _verify(l2[21:27], l2[27], "expiry_date")
    if not visa:
        if td3:
            personal, check = l2[28:42], l2[42]
            if not (check == "<" and personal == "<" * len(personal)):
                _verify(personal, check, "personal_number")
        _verify(l2[0:10] + l2[13:20] + l2[21:-1], l2[-1], "composite")
    return _Fields(
        number=number, nationality=l2[10:13], birth=l2[13:19], expiry=l2[21:27], sex=l2[20]
    )


def _document_number(field: str, check: str, optional: str) -> str:
    """The document number, reading the ICAO long-number form when the check digit is '<'.

    A number longer than 9 characters puts its first 9 in the number field, '<' in the check
    digit position, and the rest followed by the check digit of the whole number at the start
    of the optional data, ended by a filler.
    """
    if check != "<":
        return _plain_number(field, check)
    overflow = optional.split("<", 1)[0]
    if "<" in field or len(overflow) < 2 or not overflow[-1].isdigit():
        raise InvalidCriteria(
            "MRZ document number check digit is '<' but the optional data does not continue "
            "a long document number with its check digit",
            field="mrz.document_number_check_digit",
        )
    number = field + overflow[:-1]
    _verify(number, overflow[-1], "document_number")
    return number


def _plain_number(field: str, check: str) -> str:
    _verify(field, check, "document_number")
    number = field.rstrip("<")
    if not number or "<" in number:
        raise InvalidCriteria(
            f"MRZ document number {field!r} is empty or has a filler inside it",
            field="mrz.document_number",
        )
    return number


def _verify(value: str, check: str, name: str) -> None:
    if not check.isdigit() or int(check) != check_digit(value):
        label = name.replace("_", " ")
        raise InvalidCriteria(
            f"MRZ {label} check digit {check!r} does not verify", field=f"mrz.{name}_check_digit"
        )


def _names(field: str) -> tuple[str, str]:
    primary, _, secondary = field.partition("<<")
    return _words(primary), _words(secondary)


def _words(part: str) -> str:
    return " ".join(word for word in part.split("<") if word)


def _state(code: str, name: str) -> str:
    stripped = code.rstrip("<")
    if not _CODE_RE.fullmatch(code) or not stripped:
        raise InvalidCriteria(
            f"MRZ {name.replace('_', ' ')} {code!r} is not a state code", field=f"mrz.{name}"
        )
    return stripped


def _date_field(yymmdd: str, name: str) -> str:
    if not _DATE_RE.fullmatch(yymmdd):
        raise InvalidCriteria(
            f"MRZ {name.replace('_', ' ')} {yymmdd!r} is not YYMMDD", field=f"mrz.{name}"
        )
    return yymmdd


def _ymd(yymmdd: str) -> tuple[int, int, int] | None:
    if not yymmdd.isdigit():
        return None
    return int(yymmdd[0:2]), int(yymmdd[2:4]), int(yymmdd[4:6])


def _birth(yymmdd: str, today: date) -> date | None:
    """20YY unless that lies after today, then 19YY; None for an unknown or impossible date."""
    ymd = _ymd(yymmdd)
    if ymd is None:
        return None
    yy, mm, dd = ymd
    for century in (2000, 1900):
        try:
            born = date(century + yy, mm, dd)
        except ValueError:
            continue
        if born <= today:
            return born
    return None


def _expiry(yymmdd: str) -> date | None:
    """Always 20YY; None for an impossible date."""
    ymd = _ymd(yymmdd)
    if ymd is None:
        return None
    yy, mm, dd = ymd
    try:
        return date(2000 + yy, mm, dd)
    except ValueError:
        return None


def _sex(ch: str) -> Sex:
    sex = _SEX.get(ch)
    if sex is None:
        raise InvalidCriteria(f"MRZ sex {ch!r} is not M, F, X or '<'", field="mrz.sex")
    return sex
