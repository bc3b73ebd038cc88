"""ISO 3779 vehicle identification numbers and registration plates: keys and check digits."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from operator import mul

VIN_LENGTH = 17
MAX_PLATE_LENGTH = 12
_MAX_RAW_LENGTH = 64  # refuse to normalise anything far longer than a VIN or plate with separators

# The North American check-digit algorithm (49 CFR 565), which ISO 3779 leaves optional.
# I, O and Q never occur in a VIN: they would be read as 1, 0 and 0.
_TRANSLITERATION: dict[str, int] = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_CHECK_POSITION = 8  # position 9, counted from 1
_CHECK_CHARACTERS = frozenset("0123456789X")
_EXCLUDED = {"I": "1", "O": "0", "Q": "0"}
_VIN_RE = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
# WMI first characters of North America (1-5), where the check digit is mandatory. China (L)
# uses the same check digit in practice, but no rule makes it binding abroad: advisory there.
_MANDATORY_REGIONS = frozenset("12345")

_PLATE_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_PLATE_RE = re.compile(r"[A-Z0-9]{1,12}")
_ASCII_SPACES = "".join(c for c in map(chr, range(128)) if c.isspace())
_ASCII_DROP = str.maketrans("", "", _ASCII_SPACES + "-")
# Separators drawn between the groups of a plate: full stops and the middle dots used for them.
_DOTS = frozenset(".\u00b7\u2022\u2027\u2219\u22c5\u30fb")
_ASCII_DROP_PLATE = str.maketrans("", "", _ASCII_SPACES + "-.")


@dataclass(frozen=True, slots=True, kw_only=True)
class VinCheck:
    """A normalised VIN and what its check digit (position 9) says.

    `check_digit_ok` is None when the check digit is advisory and position 9 holds a character
    that cannot be a check digit (neither 0-9 nor X): that VIN simply carries none.
    """

    vin: str
    check_digit_ok: bool | None
    mandatory: bool


def normalise_vin(raw: str) -> str:
    """The VIN as 17 uppercase characters of A-Z (without I, O, Q) and 0-9.

    NFKC, then spaces and dashes are dropped. Raises ValueError naming the first character
    that cannot be in a VIN and its position (counted from 1, separators not counted), or
    saying how many characters there are when that is not 17.
    """
    if len(raw) > _MAX_RAW_LENGTH:
        raise ValueError(f"VIN is longer than {_MAX_RAW_LENGTH} characters")
    vin = _significant(raw, _ASCII_DROP, frozenset())
    if _VIN_RE.fullmatch(vin):
        return vin
    if not vin:
        raise ValueError("VIN is empty")
    for position, ch in enumerate(vin, start=1):
        if ch in _TRANSLITERATION:
            continue
        if ch in _EXCLUDED:
            raise ValueError(
                f"VIN holds {ch!r} at position {position}: ISO 3779 never uses "
                f"I, O or Q (did you mean {_EXCLUDED[ch]!r}?)"
            )
        raise ValueError(
            f"VIN holds {ch!r} at position {position}: only letters A-Z "
            "(without I, O, Q) and digits 0-9 are allowed"
        )
    if len(vin) != VIN_LENGTH:
        raise ValueError(f"VIN has {len(vin)} characters; ISO 3779 requires {VIN_LENGTH}")
    return vin


def vin_check_digit(vin: str) -> str:
    """The check digit (0-9 or X) that position 9 of the VIN should hold.

    North American algorithm: each character transliterated to a number, weighted by
    8,7,6,5,4,3,2,10,0,9,8,7,6,5,4,3,2, summed, modulo 11; a remainder of 10 is "X".
    Raises ValueError for anything normalise_vin refuses.
    """
    return _check_digit(normalise_vin(vin))


def check_digit_required(vin: str) -> bool:
    """True when the VIN's World Manufacturer Identifier is North American (first character
    1-5), where the check digit is mandatory; elsewhere it is advisory."""
    return vin[:1].upper() in _MANDATORY_REGIONS


def validate_vin(raw: str) -> VinCheck:
    """Normalise a VIN and verify its check digit.

    Raises ValueError for characters or a length no VIN can have, and for a wrong check digit
    where it is mandatory. A wrong check digit elsewhere is reported, not refused.
    """
    vin = normalise_vin(raw)
    mandatory = check_digit_required(vin)
    expected = _check_digit(vin)
    actual = vin[_CHECK_POSITION]
    if actual == expected:
        return VinCheck(vin=vin, check_digit_ok=True, mandatory=mandatory)
    if mandatory:
        raise ValueError(
            f"VIN check digit is wrong: position 9 holds {actual!r}, the VIN "
            f"computes {expected!r} (mandatory for a North American VIN, "
            "whose first character is 1-5)"
        )
    ok = False if actual in _CHECK_CHARACTERS else None
    return VinCheck(vin=vin, check_digit_ok=ok, mandatory=False)


def normalise_plate(raw: str) -> str:
    """The matching key of a registration plate: 1-12 of A-Z and 0-9.

    NFKC, uppercase, then spaces, dashes, full stops and middle dots are dropped. Plates are
    exchanged transliterated to Latin letters; raises ValueError naming the first character
    that is anything else, and its position (separators not counted).
    """
    if len(raw) > _MAX_RAW_LENGTH:
        raise ValueError(f"plate is longer than {_MAX_RAW_LENGTH} characters")
    plate = _significant(raw, _ASCII_DROP_PLATE, _DOTS)
    if _PLATE_RE.fullmatch(plate):
        return plate
    if not plate:
        raise ValueError("plate is empty")
    for position, ch in enumerate(plate, start=1):
        if ch not in _PLATE_CHARACTERS:
            raise ValueError(
                f"plate holds {ch!r} at position {position}: plates are exchanged "
                "as Latin letters A-Z and digits 0-9 (transliterate the others)"
            )
    if len(plate) > MAX_PLATE_LENGTH:
        raise ValueError(
            f"plate has {len(plate)} significant characters; at most {MAX_PLATE_LENGTH} are allowed"
        )
    return plate


def _check_digit(vin: str) -> str:
    # C-level maps: this runs for every imported VIN. `vin` is 17 characters, as are the weights.
    total = sum(map(mul, map(_TRANSLITERATION.__getitem__, vin), _WEIGHTS))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def _significant(raw: str, ascii_drop: dict[int, int | None], drop: frozenset[str]) -> str:
    """NFKC, without whitespace, dashes (hyphen-minus and every Unicode dash) or `drop`, ASCII
    letters uppercased. Other letters stay as they are, to be refused: "ß".upper() is "SS"."""
    if raw.isascii():  # the usual case, and NFKC leaves ASCII as it is
        return raw.translate(ascii_drop).upper()
    text = unicodedata.normalize("NFKC", raw)
    return "".join(
        ch.upper() if ch.isascii() else ch
        for ch in text
        if not (ch.isspace() or ch == "-" or ch in drop or unicodedata.category(ch) == "Pd")
    )
