"""Travel-document check criteria and the document-number keys they are matched on."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from connector.errors import InvalidCriteria
from connector.records.identifiers.mrz import parse_mrz
from connector.vocabulary import (
    DOCUMENT_COUNTRY,
    DOCUMENT_NUMBER,
    DOCUMENT_TYPE,
    Category,
    current_names,
    is_country,
)

MAX_KEY_LENGTH = 20
# First letters of ICAO 9303 document codes: P passport, I/A/C identity cards, V visa.
DOCUMENT_TYPES = frozenset("ACIPV")

_MAX_RAW_LENGTH = 100  # refuse to normalise anything far longer than a number with separators
_SEPARATORS = frozenset(".-/<")
_KEY_RE = re.compile(r"[A-Z0-9]+")
_DOCUMENT_TYPE_RE = re.compile(r"[A-Z]{1,2}")
_MRZ_KEYS = frozenset({"mrz"})
_NUMBER_KEYS = frozenset({DOCUMENT_NUMBER, DOCUMENT_COUNTRY, DOCUMENT_TYPE})
_KEYS = _MRZ_KEYS | _NUMBER_KEYS


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentCriteria:
    """What a travel-document check looks for.

    `number_key` is what matching compares; `number` is the number as given (or as read from
    the MRZ). `country` is ISO 3166-1 alpha-2, `document_type` an ICAO document-code first letter.
    """

    number_key: str
    number: str
    country: str | None
    document_type: str | None
    from_mrz: bool


def normalise_document_number(raw: str) -> str:
    """The matching key of a document number.

    NFKC, then drop whitespace, dashes, dots, slashes and '<' fillers, uppercase, and map the
    letter O to the digit 0: two numbers differing only in those share a key. Raises
    InvalidCriteria(field="document_number") when nothing is left, more than 20 characters are, or
    anything but A-Z and 0-9 remains.
    """
    return _normalise(raw, field=DOCUMENT_NUMBER)


def document_criteria(criteria: Mapping[str, object]) -> DocumentCriteria:
    """Validate {"mrz": ...} or {"document_number": ..., "document_country"?: ...,
    "document_type"?: ...} (or the old spellings, `number` and `country`).

    From an MRZ, every check digit must verify; the number, issuing country and the first
    letter of the document code become the criteria.
    """
    criteria = current_names(Category.TRAVEL_DOCUMENTS, criteria)
    if not criteria.keys() <= _KEYS:  # one C comparison; the names only for the error
        unknown = sorted(str(key) for key in criteria if key not in _KEYS)
        raise InvalidCriteria(
            f"unknown document criterion {unknown[0]!r}: expected mrz, or document_number "
            "with optional document_country and document_type",
            field=unknown[0],
        )
    if "mrz" in criteria:
        return _from_mrz(criteria)
    number = criteria.get(DOCUMENT_NUMBER)
    if number is None:
        raise InvalidCriteria(
            "a document check needs a document_number or an mrz", field=DOCUMENT_NUMBER
        )
    if not isinstance(number, str):
        raise InvalidCriteria("document_number must be a string", field=DOCUMENT_NUMBER)
    return DocumentCriteria(
        number_key=_normalise(number, field=DOCUMENT_NUMBER),
        number=number,
        country=_country(criteria.get(DOCUMENT_COUNTRY)),
        document_type=_document_type(criteria.get("document_type")),
        from_mrz=False,
    )


def _from_mrz(criteria: Mapping[str, object]) -> DocumentCriteria:
    others = sorted(key for key in criteria if key != "mrz")
    if others:
        raise InvalidCriteria(
            f"mrz cannot be combined with {', '.join(others)}: the MRZ carries them",
            field="mrz",
        )
    text = criteria["mrz"]
    if not isinstance(text, str):
        raise InvalidCriteria("mrz must be a string", field="mrz")
    mrz = parse_mrz(text)
    return DocumentCriteria(
        number_key=_normalise(mrz.document_number, field="mrz"),
        number=mrz.document_number,
        country=mrz.issuing_country,
        document_type=mrz.document_code[0],
        from_mrz=True,
    )


def _normalise(raw: str, *, field: str) -> str:
    if len(raw) > _MAX_RAW_LENGTH:
        raise InvalidCriteria(
            f"document number is longer than {_MAX_RAW_LENGTH} characters", field=field
        )
    # The usual case, a plain number, skips the character-by-character pass: it would find
    # nothing to drop, and costs more than the rest of the check.
    kept = raw if raw.isascii() and raw.isalnum() else _strip_separators(raw)
    return _checked_key(kept, field=field)


def _strip_separators(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw)
    return "".join(
        ch
        for ch in text
        if not (ch.isspace() or ch in _SEPARATORS or unicodedata.category(ch) == "Pd")
    )


def _checked_key(kept: str, *, field: str) -> str:
    if not kept.isascii():
        bad = next(ch for ch in kept if not ch.isascii())
        raise InvalidCriteria(
            f"document number holds {bad!r}: only letters A-Z and digits are allowed", field=field
        )
    key = kept.upper().replace("O", "0")
    if not key:
        raise InvalidCriteria("document number is empty", field=field)
    if not _KEY_RE.fullmatch(key):
        bad = next(ch for ch in key if not _KEY_RE.fullmatch(ch))
        raise InvalidCriteria(
            f"document number holds {bad!r}: only letters A-Z and digits are allowed", field=field
        )
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidCriteria(
            f"document number has {len(key)} significant characters; at most "
            f"{MAX_KEY_LENGTH} are allowed",
            field=field,
        )
    return key


def _country(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidCriteria("document_country must be a string", field=DOCUMENT_COUNTRY)
    code = value.upper()
    if not (value.isascii() and is_country(code)):
        raise InvalidCriteria(
            f"document_country {value[:8]!r} is not an ISO 3166-1 alpha-2 code",
            field=DOCUMENT_COUNTRY,
        )
    return code


def _document_type(value: object) -> str | None:
    """The ICAO document-code first letter of a one- or two-letter code ("P", "PP", "ID")."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidCriteria("document_type must be a string", field="document_type")
    code = value.upper()
    if not (value.isascii() and _DOCUMENT_TYPE_RE.fullmatch(code) and code[0] in DOCUMENT_TYPES):
        raise InvalidCriteria(
            f"document_type {value[:8]!r} is not a one- or two-letter ICAO document code "
            "starting with A, C, I, P or V",
            field="document_type",
        )
    return code[0]
