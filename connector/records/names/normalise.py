"""Names in any script as lists of lower-case ASCII tokens, the same way for records and checks."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from anyascii import anyascii

# ICAO Doc 9303 part 3, section 6 (Cyrillic): what a machine-readable passport prints, so
# the Latin name most travellers carry. Letters not listed there fall to anyascii.
_CYRILLIC = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "е": "e",
    "ё": "e",
    "ж": "zh",
    "з": "z",
    "и": "i",
    "й": "i",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "kh",
    "ц": "ts",
    "ч": "ch",
    "ш": "sh",
    "щ": "shch",
    "ъ": "ie",
    "ы": "y",
    "ь": "",
    "э": "e",
    "ю": "iu",
    "я": "ia",
    "ґ": "g",
    "є": "ie",
    "і": "i",
    "ї": "i",
    "ў": "u",
    "ђ": "d",
    "ј": "j",
    "љ": "lj",
    "њ": "nj",
    "ћ": "c",
    "џ": "dz",
    "ѓ": "g",
    "ѕ": "dz",
    "ќ": "k",
}
# Greek as ELOT 743 (which ICAO passports of Greece and Cyprus follow): the digraphs first,
# since letter by letter "ου" would become "oy" where every Greek passport prints "ou".
_GREEK_DIGRAPHS = (
    ("ου", "ou"),
    ("αυ", "av"),
    ("ευ", "ev"),
    ("ηυ", "iv"),
    ("γγ", "ng"),
    ("γξ", "nx"),
    ("γχ", "nch"),
)
_GREEK_INITIAL = (("μπ", "b"), ("ντ", "d"), ("γκ", "g"))
_GREEK = {
    "α": "a",
    "β": "v",
    "γ": "g",
    "δ": "d",
    "ε": "e",
    "ζ": "z",
    "η": "i",
    "θ": "th",
    "ι": "i",
    "κ": "k",
    "λ": "l",
    "μ": "m",
    "ν": "n",
    "ξ": "x",
    "ο": "o",
    "π": "p",
    "ρ": "r",
    "σ": "s",
    "ς": "s",
    "τ": "t",
    "υ": "y",
    "φ": "f",
    "χ": "ch",
    "ψ": "ps",
    "ω": "o",
}
# Given names written without a space in Chinese and Korean are split by convention into
# one syllable of family name and the rest (王小明 → wang xiaoming); compound family names
# (欧阳) are rare enough that the joined comparison in scoring covers them.
_HAN_OR_HANGUL = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+")
_SPLIT = re.compile(r"[^a-z0-9]+")
# The Arabic article ال is written joined to the next word; Latin forms write it apart or
# assimilated (al-Rahman, ar-Rahman, Abdurrahman), so it is taken off before transliteration.
_ARABIC_ARTICLE = re.compile(r"(^|\s)ال(?=\w)")
# Arabic script writes short vowels not at all and long ones as consonant letters (و, ي, ا);
# inside a word those are vowels (محمود is Mahmoud, not Mhmwd), so they become vowels here
# and drop out of the phonetic key like every other vowel.
_ARABIC_LONG_VOWEL = re.compile(r"(?<=\w)[\u0648\u064a\u06cc\u0627\u0649]")
_ARABIC_VOWELS = {"\u0648": "u", "\u064a": "i", "\u06cc": "i", "\u0627": "a", "\u0649": "a"}
# A word's first alef or ʿayn carries its first vowel (Ahmad, Amir, Ali, Abbas).
_ARABIC_INITIAL = re.compile(r"(?<!\w)[\u0627\u0639]")
# Persian writes its own letters (ی ک پ چ ژ گ) and says the Arabic ones otherwise: ض ظ ذ
# are z, ث ص s, ق gh (Rezaei, Ghasemi, Mousavi, as Iranian passports print them), and و
# opening a word or before a long vowel is v (Vahid, Mousavi), but not before the article
# ال (ابوالفضل is Abolfazl).
_PERSIAN = re.compile("[\u06cc\u06a9\u067e\u0686\u0698\u06af]")
_PERSIAN_LETTERS = str.maketrans(
    {"\u0636": "z", "\u0638": "z", "\u0630": "z", "\u062b": "s", "\u0635": "s", "\u0642": "gh"}
)
_PERSIAN_V = re.compile(r"(?:(?<!\w)\u0648|\u0648(?=[\u0627\u06cc\u064a])(?!\u0627\u0644))")
# abdul/abdel/abdur + name is one name part in some romanisations and two in others.
_ABD = re.compile(r"^abd(?:ul|el|al|ol|oul|ur|ar|er|ir|us|ush|un|ulla)?(?=[a-z]{3})")
_ABD_FORMS = frozenset({"abd", "abdul", "abdel", "abdal", "abdol", "abdoul", "abdu", "bd"})

PARTICLES = frozenset(
    {
        "al",
        "el",
        "ul",
        "ad",
        "ar",
        "as",
        "at",
        "az",
        "ash",
        "bin",
        "ben",
        "ibn",
        "bint",
        "de",
        "del",
        "della",
        "der",
        "di",
        "da",
        "dos",
        "van",
        "von",
        "den",
        "y",
        "e",
        "zu",
        "ter",
        "ten",
        "mac",
        "st",
    }
)
"""Name parts that join or qualify (al-, van, bin, y): written, dropped and attached
differently everywhere, so they are neither keys nor weighed as a name part. Not those that
are as often a family name of their own: Das (Bengali), Le, Do (Vietnamese), An (Korean),
Du, Lo (Chinese), La."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Name:
    """One way of writing a person's name: its tokens, and the record field each came from."""

    tokens: tuple[str, ...]
    fields: tuple[str, ...]


def to_latin(text: str, *, whole: bool = True, persian: bool | None = None) -> str:
    """Lower-case ASCII: Cyrillic and Greek as ICAO passports print them, Han and Hangul
    a syllable per character, everything else through anyascii. `whole`: the text is a
    whole name, so a run of Han or Hangul is a family name and a given name. `persian`:
    whether Arabic script is read as Persian (None: when the text has a letter only Persian
    writes; a name's fields are decided together, see `names_of`)."""
    text = unicodedata.normalize("NFC", text).casefold()
    text = _ARABIC_ARTICLE.sub(r"\1", text)
    if any("\u0600" <= c <= "\u06ff" for c in text):
        if persian or (persian is None and _PERSIAN.search(text)):
            text = _PERSIAN_V.sub("v", text.translate(_PERSIAN_LETTERS))
        text = _ARABIC_LONG_VOWEL.sub(lambda m: _ARABIC_VOWELS[m[0]], text)
        # A word's first alef or ʿayn carries its first vowel (Ahmad, Amir, Ali, Abbas),
        # which anyascii leaves out.
        text = _ARABIC_INITIAL.sub("a", text)
    # A whole name in one run is split into family and given name; written in several runs
    # (구 영순), it is split already, and each run is one part.
    whole = whole and len(_HAN_OR_HANGUL.findall(text)) == 1
    text = _HAN_OR_HANGUL.sub(_han_or_hangul if whole else _syllables, text)
    if any("\u0370" <= c <= "\u03ff" or "\u1f00" <= c <= "\u1fff" for c in text):
        text = _greek(text)
    out: list[str] = []
    for char in text:
        latin = _CYRILLIC.get(char)
        out.append(latin if latin is not None else char)
    return anyascii("".join(out)).lower()


def _han_or_hangul(found: re.Match[str]) -> str:
    syllables = [anyascii(c).lower() for c in found[0]]
    if len(syllables) < 2:
        return " " + "".join(syllables) + " "
    return " " + syllables[0] + " " + "".join(syllables[1:]) + " "


def _syllables(found: re.Match[str]) -> str:
    return " " + "".join(anyascii(c).lower() for c in found[0]) + " "


def _greek(text: str) -> str:
    # Accents and diaeresis go first, so that "ού" is still the digraph "ου".
    bare = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    words = []
    for word in bare.split(" "):
        for greek, latin in _GREEK_INITIAL:
            if word.startswith(greek):
                word = latin + word[len(greek) :]
        for greek, latin in _GREEK_DIGRAPHS:
            word = word.replace(greek, latin)
        words.append("".join(_GREEK.get(c, c) for c in word))
    return " ".join(words)


def tokens(text: str, *, whole: bool = True, persian: bool | None = None) -> tuple[str, ...]:
    """The name parts of `text`: Latin letters and digits, split at spaces, hyphens and
    punctuation; apostrophes (O'Brien, Arabic ʿayn and hamza) joined rather than split.
    `whole` as for `to_latin`; a first or last name field alone is not whole."""
    latin = to_latin(text, whole=whole, persian=persian).replace("'", "").replace("`", "")
    out: list[str] = []
    for token in _SPLIT.split(latin):
        if not token:
            continue
        if token in _ABD_FORMS:
            out.append("abd")
            continue
        joined = _ABD.match(token)
        if joined is not None and token not in ("abdullah", "abdallah", "abdulla"):
            out += ["abd", token[joined.end() :]]
            continue
        out.append(token)
    return tuple(out)


def meaningful(parts: Iterable[str]) -> tuple[str, ...]:
    """The parts that identify: no particles. A name of particles only keeps them all."""
    parts = tuple(parts)
    kept = tuple(p for p in parts if p not in PARTICLES)
    return kept or parts


def names_of(values: Mapping[str, Any]) -> tuple[Name, ...]:
    """Every written form of a person's name in a record's (or a check's) fields: first,
    middle and last name together; each alias; the name in its original script."""
    out: list[Name] = []
    main: list[tuple[str, str]] = []
    original = values.get("name_original_script")
    # A Chinese or Korean given name is one name, whose syllables a romanisation may write
    # apart (Xiong Lin for 雄林): one part, or a check of "Lin Rong" would meet Xiong Lin Rong.
    syllabic = isinstance(original, str) and _HAN_OR_HANGUL.search(original) is not None
    # One name is one language: a Persian family name makes its Arabic-looking given name
    # (ابوالفضل) Persian too.
    written = " ".join(
        v for k in ("first_name", "middle_name", "last_name") if isinstance(v := values.get(k), str)
    )
    persian = _PERSIAN.search(written) is not None or None
    for key in ("first_name", "middle_name", "last_name"):
        value = values.get(key)
        if isinstance(value, str):
            parts = tokens(value, whole=False, persian=persian)
            if syllabic and key == "first_name" and parts:
                parts = ("".join(parts),)
            main += [(t, key) for t in parts]
    if main:
        out.append(Name(tokens=tuple(t for t, _ in main), fields=tuple(f for _, f in main)))
    aliases = values.get("aliases")
    for alias in aliases if isinstance(aliases, list) else ():
        if isinstance(alias, str) and (parts := tokens(alias)):
            out.append(Name(tokens=parts, fields=("aliases",) * len(parts)))
    if isinstance(original, str) and (parts := tokens(original)):
        out.append(Name(tokens=parts, fields=("name_original_script",) * len(parts)))
    return tuple(out)
