"""Stolen works of art, found by reference, by artist, or by words of title and description."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from types import MappingProxyType
from typing import Annotated, Any

import pycountry
from pydantic import (
    BaseModel,
    ConfigDict,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from connector.errors import InvalidCriteria
from connector.records.kinds.base import (
    KeyColumn,
    Kind,
    Lookup,
    Match,
    Record,
    RowError,
    TextQuery,
)
from connector.records.rows import describe_validation, empty_is_none, not_in_future
from connector.vocabulary import Category

MAX_TITLE_LENGTH = 500
MAX_ARTIST_LENGTH = 200
MAX_CRITERION_LENGTH = 500  # text, title and artist of a check
MAX_WORDS = 12  # words of a check that go to the full-text index
UNKNOWN_LANGUAGE = "und"  # ISO 639-2 "undetermined": a title whose language was not given
LANGUAGES = frozenset(str(lang.alpha_2) for lang in pycountry.languages if hasattr(lang, "alpha_2"))

_REF = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_TITLE_COLUMN = re.compile(r"^title_([A-Za-z]+)$")
# What the full-text index (unicode61) treats as separators: all but letters and digits.
_SEPARATORS = re.compile(r"[\W_]+")
# Letters NFKD leaves whole, folded as a reader without the diacritic would type them.
_UNDECOMPOSED = str.maketrans(
    {
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "þ": "th",
        "Þ": "TH",
        "ı": "i",
    }
)
_CRITERIA = ("text", "title", "artist", "ref")
_TEXT_FIELDS = ("title", "artist", "description")

Text = Annotated[str, StringConstraints(max_length=300)]


def fold(text: str) -> str:
    """Lowercase without diacritics: NFKD, combining marks dropped, ø/ł/æ/… spelt plainly."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_UNDECOMPOSED))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def normalise_artist(name: str) -> str:
    """The artist key: folded (see `fold`) with runs of whitespace made one space.

    "Józef  Chełmoński" and "jozef chelmonski" share a key.
    """
    return " ".join(fold(name).split())[:MAX_ARTIST_LENGTH]


def words_of(text: str) -> tuple[str, ...]:
    """The words of a check: split on anything but letters and digits, lowercased, one-letter
    words dropped, each once, at most 12."""
    seen: dict[str, None] = {}
    for word in _SEPARATORS.split(unicodedata.normalize("NFC", text).lower()):
        if len(word) > 1:
            seen.setdefault(word)
    return tuple(seen)[:MAX_WORDS]


def is_language(code: str) -> bool:
    return code in LANGUAGES or code == UNKNOWN_LANGUAGE


class ArtworkRow(BaseModel):
    """One import row of `artworks` (NDJSON object or CSV line).

    `title` is a string or a mapping of ISO 639-1 code to title. Columns `title_fr`,
    `title_de`, … add titles in those languages; a plain `title` given beside them, and
    differing from all of them, is kept under `und` (language not given).
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)

    id: Annotated[str, StringConstraints(pattern=_REF.pattern)]
    title: str | dict[str, str]
    artist: Annotated[str, StringConstraints(max_length=MAX_ARTIST_LENGTH)] | None = None
    object_type: Annotated[str, StringConstraints(max_length=60)] | None = None
    materials: Text | None = None
    dimensions: Annotated[str, StringConstraints(max_length=100)] | None = None
    period: Annotated[str, StringConstraints(max_length=100)] | None = None
    description: Annotated[str, StringConstraints(max_length=4000)] | None = None
    stolen_on: date | None = None
    stolen_from: Text | None = None
    image_ref: Annotated[str, StringConstraints(max_length=500)] | None = None
    contact: Text | None = None

    _empty = field_validator(
        "artist",
        "object_type",
        "materials",
        "dimensions",
        "period",
        "description",
        "stolen_on",
        "stolen_from",
        "image_ref",
        "contact",
        mode="before",
    )(empty_is_none)
    _past = field_validator("stolen_on")(not_in_future)

    @model_validator(mode="before")
    @classmethod
    def _merge_title_columns(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        columns = [k for k in data if isinstance(k, str) and _TITLE_COLUMN.match(k)]
        if not columns:
            return data
        rest = {k: v for k, v in data.items() if k not in columns}
        # CSV has no null: an empty title_xx cell means no title in that language.
        tagged = {k: data[k] for k in columns if data[k] not in ("", None)}
        if not tagged:
            return rest
        titles: dict[str, Any] = {}
        plain = rest.get("title")
        if isinstance(plain, Mapping):
            titles.update(plain)
        for column, value in tagged.items():
            code = column[len("title_") :]
            if code in titles and titles[code] != value:
                raise ValueError(f"{column} differs from the {code!r} title in title")
            titles[code] = value
        if (
            isinstance(plain, str)
            and plain.strip()
            and all(not isinstance(t, str) or t.strip() != plain.strip() for t in titles.values())
        ):
            titles = {UNKNOWN_LANGUAGE: plain, **titles}
        elif plain is not None and not isinstance(plain, str | Mapping):
            return data  # the title validator says what is wrong with it
        rest["title"] = titles
        return rest

    @field_validator("id", mode="before")
    @classmethod
    def _id_given(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and not v.strip()):
            raise ValueError("every artwork needs its id: the national inventory or case reference")
        return v

    @field_validator("title", mode="before")
    @classmethod
    def _title(cls, v: Any) -> str | dict[str, str]:
        if isinstance(v, str):
            return _one_title(v)
        if isinstance(v, Mapping):
            titles: dict[str, str] = {}
            for key, value in v.items():
                if not isinstance(key, str) or not isinstance(value, str | None):
                    raise ValueError(
                        "a title in several languages maps language codes to "
                        'strings, e.g. {"fr": "Le Cri", "de": "Der Schrei"}'
                    )
                code = key.strip().lower()
                if not is_language(code):
                    raise ValueError(
                        f"{key!r} is not an ISO 639-1 language code (two "
                        f"letters such as fr, de, en; {UNKNOWN_LANGUAGE} when "
                        "the language is not known)"
                    )
                if code in titles:
                    raise ValueError(f"the title in {code!r} is given twice")
                if value is not None and value.strip():
                    titles[code] = _one_title(value)
            if not titles:
                raise ValueError("the title is empty: give it in at least one language")
            return titles
        raise ValueError("a title is a string, or a mapping of language code to string")


def _one_title(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("the title is empty: give it in at least one language")
    if len(text) > MAX_TITLE_LENGTH:
        raise ValueError(f"a title is at most {MAX_TITLE_LENGTH} characters")
    return text


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtworkCriteria:
    """What an artwork check looks for; at least one of text, title, artist, ref.

    `words` are the words of text, title and artist together (at most 12) sent to the
    full-text index; `title_words` and `artist_words` are those of each criterion, which
    the score wants in the field they name.
    """

    text: str | None = None
    title: str | None = None
    artist: str | None = None
    ref: str | None = None
    words: tuple[str, ...] = ()
    text_words: tuple[str, ...] = ()
    title_words: tuple[str, ...] = ()
    artist_words: tuple[str, ...] = ()
    artist_key: str | None = None
    # The record fields the words are looked for in: fewer when a policy rule leaves one out
    # of the search (`Artworks.restrict`).
    fields: tuple[str, ...] = _TEXT_FIELDS


def artwork_criteria(raw: Mapping[str, object]) -> ArtworkCriteria:
    """Validate {"text"?, "title"?, "artist"?, "ref"?}; InvalidCriteria names the field."""
    unknown = sorted(str(key) for key in raw if key not in _CRITERIA)
    if unknown:
        raise InvalidCriteria(
            f"unknown artwork criterion {unknown[0]!r}: expected text, title, artist or ref",
            field=unknown[0],
        )
    given = {name: _string(raw, name) for name in _CRITERIA if raw.get(name) is not None}
    if not given:
        raise InvalidCriteria("an artwork check needs text, title, artist or ref", field="text")
    ref = given.get("ref")
    if ref is not None and not _REF.match(ref):
        raise InvalidCriteria(
            f"ref {ref[:70]!r} is not an artwork reference (1 to 64 "
            "letters, digits, '.', '_' or '-')",
            field="ref",
        )
    per_field: dict[str, tuple[str, ...]] = {}
    for name in ("text", "title", "artist"):
        value = given.get(name)
        if value is None:
            continue
        per_field[name] = words_of(value)
        if not per_field[name] and name != "artist":
            raise InvalidCriteria(
                f"{name} holds no word of two or more letters or digits", field=name
            )
    words = tuple(dict.fromkeys(w for ws in per_field.values() for w in ws))[:MAX_WORDS]
    artist = given.get("artist")
    return ArtworkCriteria(
        text=given.get("text"),
        title=given.get("title"),
        artist=artist,
        ref=ref,
        words=words,
        text_words=tuple(w for w in per_field.get("text", ()) if w in words),
        title_words=tuple(w for w in per_field.get("title", ()) if w in words),
        artist_words=tuple(w for w in per_field.get("artist", ()) if w in words),
        artist_key=normalise_artist(artist) if artist is not None else None,
    )


def _string(raw: Mapping[str, object], name: str) -> str:
    value = raw[name]
    if not isinstance(value, str):
        raise InvalidCriteria(f"{name} must be a string", field=name)
    text = value.strip()
    if not text:
        raise InvalidCriteria(f"{name} is empty", field=name)
    if len(text) > MAX_CRITERION_LENGTH:
        raise InvalidCriteria(
            f"{name} is longer than {MAX_CRITERION_LENGTH} characters", field=name
        )
    return text


def _tokens(value: Any) -> set[str]:
    """The folded words of a field value (a string, or a title in several languages)."""
    texts: Iterable[Any] = value.values() if isinstance(value, Mapping) else (value,)
    out: set[str] = set()
    for text in texts:
        if isinstance(text, str):
            out.update(fold(w) for w in _SEPARATORS.split(unicodedata.normalize("NFC", text)) if w)
    return out


class Artworks(Kind):
    row_model = ArtworkRow
    category = Category.ARTWORKS
    key_columns = (
        KeyColumn(name="ref_key", length=64),
        KeyColumn(name="artist_key", length=MAX_ARTIST_LENGTH, nullable=True),
    )
    natural_key = ("ref_key",)
    indexes = (("ref_key",), ("artist_key",))
    csv_required = frozenset({"id", "title"})
    text_fields = _TEXT_FIELDS
    compared = MappingProxyType(
        {
            "text": frozenset(_TEXT_FIELDS),
            "title": frozenset({"title"}),
            "artist": frozenset({"artist"}),
            "ref": frozenset(),
        }
    )
    identifying = frozenset({"title", "artist"})

    def parse_row(self, raw: Mapping[str, Any]) -> Record:
        try:
            row = ArtworkRow.model_validate(raw)
        except ValidationError as exc:
            raise RowError(describe_validation(exc)) from exc
        fields: dict[str, Any] = row.model_dump(mode="json", exclude={"id"})
        return Record(
            id=row.id,
            category=self.category,
            keys={
                "ref_key": row.id,
                "artist_key": normalise_artist(row.artist) if row.artist else None,
            },
            fields={k: v for k, v in fields.items() if v is not None},
        )

    def parse_criteria(self, raw: Mapping[str, object]) -> ArtworkCriteria:
        return artwork_criteria(raw)

    def accepts_field(self, name: str) -> bool:
        return super().accepts_field(name) or _TITLE_COLUMN.fullmatch(name) is not None

    def reference(self, criteria: ArtworkCriteria) -> str | None:
        return criteria.ref

    def restrict(
        self, criteria: ArtworkCriteria, searched: frozenset[str]
    ) -> ArtworkCriteria | None:
        # The full-text index holds title, artist and description as one text, so a word
        # found only in a field left out is dropped when the candidate is scored.
        fields = tuple(name for name in _TEXT_FIELDS if name in searched)
        by_title = "title" in searched
        by_artist = "artist" in searched
        text_words = criteria.text_words if fields else ()
        title_words = criteria.title_words if by_title else ()
        artist_words = criteria.artist_words if by_artist else ()
        artist_key = criteria.artist_key if by_artist else None
        words = tuple(dict.fromkeys((*text_words, *title_words, *artist_words)))
        if not words and artist_key is None and criteria.ref is None:
            return None
        return replace(
            criteria,
            text=criteria.text if fields else None,
            title=criteria.title if by_title else None,
            artist=criteria.artist if by_artist else None,
            words=words,
            text_words=text_words,
            title_words=title_words,
            artist_words=artist_words,
            artist_key=artist_key,
            fields=fields,
        )

    def subject(self, criteria: ArtworkCriteria) -> str | None:
        if criteria.ref is not None:
            return "ref:" + criteria.ref
        if criteria.title_words:
            return "title:" + " ".join(sorted(fold(w) for w in criteria.title_words))
        if criteria.artist_key:
            return "artist:" + criteria.artist_key
        return "text:" + " ".join(sorted(fold(w) for w in criteria.text_words))

    def variant(self, criteria: ArtworkCriteria) -> int:
        return hash(
            (
                criteria.ref,
                criteria.text_words,
                criteria.title_words,
                criteria.artist_words,
                criteria.artist_key,
                criteria.fields,
            )
        )

    def lookups(self, criteria: ArtworkCriteria) -> Sequence[Lookup]:
        found: list[Lookup] = []
        if criteria.ref is not None:
            found.append({"ref_key": criteria.ref})
        if criteria.artist_key:
            found.append({"artist_key": criteria.artist_key})
        if criteria.words:
            found.append(TextQuery(words=criteria.words))
        return tuple(found)

    def score(self, criteria: ArtworkCriteria, record: Record) -> Match | None:
        """1.0 for the reference asked for. Otherwise start at 1.0 and lower it for each
        shortfall: free-text words found nowhere in the record (by the share missing); fewer
        than half of them in title or artist (down to 0.5 when they are only in the
        description); title words not in the title, artist words not in the artist (each
        down to 0.5), unless the artist's name matches as a whole. None when no word is found
        and the artist does not match. The store then multiplies by the relevance."""
        if criteria.ref is not None and record.id == criteria.ref:
            return Match(record=record, score=1.0, reasons=({"field": "ref", "exact": True},))
        tokens = {
            name: _tokens(record.fields.get(name)) if name in criteria.fields else set()
            for name in _TEXT_FIELDS
        }
        found = {
            name: [w for w in criteria.words if fold(w) in tokens[name]] for name in _TEXT_FIELDS
        }
        exact_artist = (
            criteria.artist_key is not None and record.keys.get("artist_key") == criteria.artist_key
        )
        anywhere = {w for ws in found.values() for w in ws}
        if not anywhere and not exact_artist:
            return None
        score = 1.0
        if criteria.text_words:
            score *= sum(w in anywhere for w in criteria.text_words) / len(criteria.text_words)
            head = {*found["title"], *found["artist"]}
            share = sum(w in head for w in criteria.text_words) / len(criteria.text_words)
            score *= min(1.0, 0.5 + share)
        if criteria.title_words:
            share = sum(w in found["title"] for w in criteria.title_words) / len(
                criteria.title_words
            )
            score *= 0.5 + 0.5 * share
        if criteria.artist_words and not exact_artist:
            share = sum(w in found["artist"] for w in criteria.artist_words) / len(
                criteria.artist_words
            )
            score *= 0.5 + 0.5 * share
        reasons: list[Mapping[str, Any]] = []
        for name in _TEXT_FIELDS:
            if name == "artist" and exact_artist:
                reasons.append({"field": "artist", "words": found["artist"], "exact": True})
            elif found[name]:
                reasons.append({"field": name, "words": found[name]})
        return Match(record=record, score=round(score, 4), reasons=tuple(reasons))


__all__ = [
    "ArtworkCriteria",
    "ArtworkRow",
    "Artworks",
    "artwork_criteria",
    "fold",
    "normalise_artist",
    "words_of",
]
