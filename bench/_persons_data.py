"""A synthetic population of persons from many locales and scripts, and realistic query variants."""

from __future__ import annotations

import importlib
import random
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from anyascii import anyascii

from connector.records.names.normalise import to_latin

# (Faker locale, nationality, script family, weight, further Faker locales of the same
# language whose name lists are added to the pools). Weights roughly follow who appears in
# European wanted-person and watch lists; every script the connector claims is present.
LOCALES: tuple[tuple[str, str, str, int, tuple[str, ...]], ...] = (
    ("en_US", "US", "latin", 4, ("en_NZ",)),
    ("en_GB", "GB", "latin", 3, ("en_IE",)),
    ("de_DE", "DE", "latin", 6, ("de_AT", "de_CH")),
    ("fr_FR", "FR", "latin", 6, ("fr_BE",)),
    ("fr_CA", "CA", "latin", 1, ("fr_CH",)),
    ("nl_NL", "NL", "latin", 3, ("nl_BE",)),
    ("es_ES", "ES", "latin", 5, ("es_CL",)),
    ("es_MX", "MX", "latin", 2, ("es_CO", "es_AR")),
    ("it_IT", "IT", "latin", 5, ()),
    ("pt_BR", "BR", "latin", 3, ("pt_PT",)),
    ("pl_PL", "PL", "latin", 5, ()),
    ("cs_CZ", "CZ", "latin", 2, ()),
    ("sk_SK", "SK", "latin", 2, ()),
    ("hu_HU", "HU", "latin", 2, ()),
    ("ro_RO", "RO", "latin", 4, ()),
    ("hr_HR", "HR", "latin", 2, ("sl_SI",)),
    ("sv_SE", "SE", "latin", 2, ("no_NO", "da_DK")),
    ("fi_FI", "FI", "latin", 1, ("et_EE",)),
    ("lt_LT", "LT", "latin", 1, ("lv_LV",)),
    ("tr_TR", "TR", "latin", 6, ()),
    ("az_AZ", "AZ", "latin", 1, ("uz_UZ",)),
    ("id_ID", "ID", "latin", 1, ()),
    ("yo_NG", "NG", "latin", 1, ("ha_NG",)),
    ("ru_RU", "RU", "cyrillic", 7, ()),
    ("uk_UA", "UA", "cyrillic", 5, ()),
    ("bg_BG", "BG", "cyrillic", 2, ()),
    ("mk_MK", "MK", "cyrillic", 1, ()),
    ("el_GR", "GR", "greek", 4, ()),
    ("ar_AA", "SY", "arabic", 6, ("ar_PS",)),
    ("ar_SA", "SA", "arabic", 2, ("ar_DZ",)),
    ("fa_IR", "IR", "arabic", 3, ()),
    ("he_IL", "IL", "hebrew", 2, ()),
    ("zh_CN", "CN", "han", 5, ("zh_TW",)),
    ("ko_KR", "KR", "hangul", 2, ()),
    ("hy_AM", "AM", "armenian", 1, ()),
    ("ka_GE", "GE", "georgian", 2, ()),
    ("hi_IN", "IN", "devanagari", 2, ("mr_IN",)),
    ("ne_NP", "NP", "devanagari", 1, ()),
    ("bn_BD", "BD", "bengali", 1, ()),
    ("ta_IN", "LK", "tamil", 1, ()),
    ("th_TH", "TH", "thai", 1, ()),
)
# Romanian family names are largely patronymic (Ionescu, Petrescu, Constantinescu); Faker
# lists 44, so the pool also takes each male given name's -escu form.
_PATRONYMIC = {"ro_RO": "escu"}

# Other ways Cyrillic is romanised than ICAO's: BGN/PCGN, French, German, scholarly.
_CYRILLIC_SYSTEMS: tuple[dict[str, str], ...] = (
    {
        "х": "kh",
        "ц": "ts",
        "ч": "ch",
        "ш": "sh",
        "щ": "shch",
        "ж": "zh",
        "й": "y",
        "ю": "yu",
        "я": "ya",
        "е": "e",
        "ы": "y",
        "э": "e",
        "ь": "",
        "ъ": "",
    },
    {
        "х": "kh",
        "ц": "ts",
        "ч": "tch",
        "ш": "ch",
        "щ": "chtch",
        "ж": "j",
        "й": "i",
        "ю": "iou",
        "я": "ia",
        "у": "ou",
        "е": "e",
        "ы": "y",
        "ь": "",
        "ъ": "",
    },
    {
        "х": "ch",
        "ц": "z",
        "ч": "tsch",
        "ш": "sch",
        "щ": "schtsch",
        "ж": "sch",
        "й": "j",
        "ю": "ju",
        "я": "ja",
        "в": "w",
        "з": "s",
        "е": "e",
        "ы": "y",
        "ь": "",
        "ъ": "",
    },
    {
        "х": "ch",
        "ц": "c",
        "ч": "č",
        "ш": "š",
        "щ": "šč",
        "ж": "ž",
        "й": "j",
        "ю": "ju",
        "я": "ja",
        "е": "e",
        "ы": "y",
        "ь": "",
        "ъ": "",
    },
)
_GREEK_ALTERNATIVE = (("ou", "u"), ("ch", "kh"), ("y", "i"), ("th", "t"))
_GERMAN_UMLAUTS = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"}
# ICAO Doc 9303 part 3, section 6: the Latin letters a machine-readable zone spells out in
# two (Müller → MUELLER, Ødegård → OEDEGAARD, Straße → STRASSE); every other letter loses
# its accent (Ł → L, Ş → S).
_ICAO_LATIN = {
    "ä": "ae",
    "å": "aa",
    "æ": "ae",
    "ö": "oe",
    "ø": "oe",
    "œ": "oe",
    "ü": "ue",
    "ß": "ss",
    "þ": "th",
    "ð": "d",
    "ł": "l",
    "ı": "i",
    "ĳ": "ij",
}
# How Persian names are romanised in passports and lists: short vowels as e and o (Hossein,
# Mohsen, Rezaei), the long ones as a, i, u (or ou), a final ی after a vowel as i, ei or y.
_PERSIAN_SHORT = "eeoa"


def icao_mrz(text: str) -> str:
    """A name as a machine-readable zone prints it: upper case, A to Z, ICAO's spellings."""
    spelt = "".join(_ICAO_LATIN.get(c, c) for c in text.lower())
    bare = "".join(c for c in unicodedata.normalize("NFKD", spelt) if not unicodedata.combining(c))
    return "".join(c for c in bare if c.isascii() and (c.isalpha() or c == " ")).upper()


def _names(provider: Any, *attrs: str) -> list[str]:
    for attr in attrs:
        value = getattr(provider, attr, None)
        if value:
            return [str(v) for v in (value.keys() if isinstance(value, dict) else value)]
    return []


@dataclass(frozen=True, slots=True, kw_only=True)
class Pools:
    locale: str
    nationality: str
    script: str
    male: list[str]
    female: list[str]
    last_male: list[str]
    last_female: list[str]


def _provider(locale: str) -> Any:
    return importlib.import_module(f"faker.providers.person.{locale}").Provider


def _pooled(providers: Sequence[Any], *attrs: str) -> list[str]:
    """One list from several providers' lists, each name once, blanks dropped."""
    out: dict[str, None] = {}
    for p in providers:
        out.update(dict.fromkeys(n for n in _names(p, *attrs) if n.strip()))
    return list(out)


def _patronymics(given: Sequence[str], suffix: str) -> list[str]:
    out = []
    for name in given:
        stem = name[:-1] if name[-1:] in "aeiuăy" else name
        if len(stem) >= 3 and " " not in stem:
            out.append(stem + suffix)
    return out


def load_pools() -> list[tuple[Pools, int]]:
    out = []
    for locale, country, script, weight, more in LOCALES:
        providers = [_provider(loc) for loc in (locale, *more)]
        male = _pooled(providers, "first_names_male", "first_names")
        female = _pooled(providers, "first_names_female", "first_names")
        last_male = _pooled(providers, "last_names_male", "male_last_names", "last_names")
        last_female = _pooled(providers, "last_names_female", "unisex_last_names", "last_names")
        if locale in _PATRONYMIC:
            derived = _patronymics(male, _PATRONYMIC[locale])
            last_male += [n for n in derived if n not in last_male]
            last_female += [n for n in derived if n not in last_female]
        pools = Pools(
            locale=locale,
            nationality=country,
            script=script,
            male=male,
            female=female,
            last_male=last_male,
            last_female=last_female,
        )
        out.append((pools, weight))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    id: str
    script: str
    native: tuple[str, str | None, str]  # given, middle, family, in the locale's script
    row: dict[str, Any]


def _given(rng: random.Random, pools: Pools, sex: str) -> str:
    names = pools.male if sex == "male" else pools.female
    if pools.script in ("han", "hangul"):
        # A given name is one or two syllables drawn apart: Faker's list alone would give
        # a billion people a few hundred names.
        chars = [c for n in rng.sample(names, 2) for c in n]
        return "".join(rng.sample(chars, min(len(chars), rng.choice((1, 2, 2)))))
    return rng.choice(names)


def make_person(rng: random.Random, pools: Pools, number: int) -> Person:
    sex = rng.choice(("male", "female"))
    given = _given(rng, pools, sex)
    middle = None
    if rng.random() < 0.3 and pools.script not in ("han", "hangul"):
        middle = _given(rng, pools, sex)
        if middle == given:
            middle = None
    family = rng.choice(pools.last_male if sex == "male" else pools.last_female)
    year = rng.randint(1945, 2006)
    birth = f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    row: dict[str, Any] = {
        "id": f"P{number:08d}",
        "sex": sex,
        "nationality": [pools.nationality],
        "warrant_country": "DE",
        "birth_date": birth if rng.random() < 0.9 else str(year),
    }
    if pools.script == "latin":
        held = (given, middle, family)
        if not "".join(p or "" for p in held).isascii() and rng.random() < 0.3:
            # Typed in from a passport's machine-readable zone: MUELLER for Müller.
            held = (icao_mrz(given), icao_mrz(middle) if middle else None, icao_mrz(family))
        row.update(first_name=held[0], last_name=held[2])
        if held[1]:
            row["middle_name"] = held[1]
    elif rng.random() < 0.5:
        # Held as the issuing country wrote it: the original script in the name fields.
        row.update(first_name=given, last_name=family)
        if middle:
            row["middle_name"] = middle
    else:
        # Held romanised, with the original script beside it.
        row.update(first_name=to_latin(given).title(), last_name=to_latin(family).title())
        if middle:
            row["middle_name"] = to_latin(middle).title()
        row["name_original_script"] = " ".join(p for p in (family, given, middle) if p)
    if rng.random() < 0.3:
        row["document_numbers"] = [f"{pools.nationality}{rng.randint(10**7, 10**8 - 1)}"]
    return Person(id=row["id"], script=pools.script, native=(given, middle, family), row=row)


def population(seed: int, count: int, start: int = 0) -> Iterator[Person]:
    rng = random.Random(seed)
    pools = load_pools()
    choices = [p for p, _ in pools]
    weights = [w for _, w in pools]
    for number in range(start, start + count):
        (chosen,) = rng.choices(choices, weights)
        yield make_person(rng, chosen, number)


# --- query variants ------------------------------------------------------------------------


def _persian(rng: random.Random, text: str) -> str:
    """A Persian name as Iranian passports and European lists romanise it: ض ظ ذ as z, ق as
    gh, و as v before a vowel, and e and o for the short vowels no letter writes (حسین →
    Hossein, محسن → Mohsen, رضایی → Rezaei, قاسمی → Ghasemi, موسوی → Mousavi)."""
    spelt: list[str] = []
    for i, c in enumerate(text):
        following = text[i + 1] if i + 1 < len(text) else ""
        if c in "ضظذ":
            spelt.append("z")
        elif c in "ثص":
            spelt.append("s")
        elif c == "ق":
            spelt.append(rng.choice(("gh", "gh", "q")))
        elif c == "ع":
            continue
        elif c == "و" and (i == 0 or following in "ایي"):
            spelt.append("v")
        elif c == "و":
            spelt.append(rng.choice(("ou", "o", "u")))
        else:
            spelt.append(c)
    latin = to_latin("".join(spelt)).replace("'", "").replace("`", "")
    out: list[str] = []
    for i, c in enumerate(latin):
        following = latin[i + 1] if i + 1 < len(latin) else ""
        if c == "i" and out and out[-1] in "aeiou" and not following:
            out.append(rng.choice(("i", "ei", "y")))  # Rezaei, Mousavi
            continue
        if c == "i" and out and out[-1] not in "aeiou" and following and following not in "aeiou":
            out.append(rng.choice(("i", "ei", "ey")))  # the long i of Hossein
            continue
        out.append(c)
        digraph = c + following in ("gh", "kh", "sh", "ch", "zh")
        between = c not in "aeiou" and following not in "aeiou" and not digraph and following
        if between and rng.random() < 0.6:
            if rng.random() < 0.15:
                out.append(c)  # the doubled consonant (tashdid) some spellings keep
            out.append(rng.choice(_PERSIAN_SHORT))
    return "".join(out).title()


def _romanise(rng: random.Random, text: str, script: str, *, persian: bool = False) -> str:
    """Another country's romanisation of a name than the one on record."""
    if script == "cyrillic":
        table = rng.choice(_CYRILLIC_SYSTEMS)
        return to_latin("".join(table.get(c, c) for c in text.lower())).title()
    if script == "greek":
        latin = to_latin(text)
        for a, b in rng.sample(_GREEK_ALTERNATIVE, 2):
            latin = latin.replace(a, b)
        return latin.title()
    if persian:
        return _persian(rng, text)
    if script in ("arabic", "hebrew"):
        # Abjads write no short vowels: every romanisation supplies its own.
        latin = to_latin(text).replace("'", "").replace("`", "")
        out = []
        for i, c in enumerate(latin):
            out.append(c)
            following = latin[i + 1] if i + 1 < len(latin) else ""
            if c not in "aeiou" and following and following not in "aeiou" and rng.random() < 0.6:
                out.append(rng.choice("aaeiou"))
        return "".join(out).title()
    if script in ("han", "hangul"):
        syllables = [anyascii(c).lower() for c in text]
        return (
            rng.choice(("", "-", " ")).join(syllables).title()
            if len(syllables) > 1
            else "".join(syllables).title()
        )
    if script == "latin":
        if any(c in _GERMAN_UMLAUTS for c in text) and rng.random() < 0.5:
            return "".join(_GERMAN_UMLAUTS.get(c, c) for c in text)
        return "".join(
            c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
        )
    return anyascii(text).title()


def _misspell(rng: random.Random, word: str) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    letters = "aeioulnrstmkdh"
    match rng.randrange(4):
        case 0:
            return word[:i] + rng.choice(letters) + word[i + 1 :]
        case 1:
            return word[:i] + word[i + 1 :]
        case 2:
            return word[:i] + rng.choice(letters) + word[i:]
        case _:
            return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    target: str | None
    criteria: dict[str, Any]
    variants: tuple[str, ...]


def variant_query(rng: random.Random, person: Person, target: str | None) -> Query:
    """A check as another country would send it for this person: its own romanisation,
    sometimes a typo, the order swapped, the middle name dropped, the birth year only."""
    given, middle, family = person.native
    variants: list[str] = []
    parts = [given, middle, family]
    if person.script != "latin" or rng.random() < 0.5:
        held_latin = "name_original_script" in person.row
        if person.script != "latin" and held_latin and rng.random() < 0.3:
            variants.append("original_script")  # held romanised, asked in the script
        elif (
            person.script == "latin"
            and not person.row["first_name"].isascii()
            and (rng.random() < 0.4)
        ):
            # Read off the passport's machine-readable zone at the border.
            parts = [icao_mrz(p) if p else None for p in parts]
            variants.append("mrz_spelling")
        else:
            persian = person.row["nationality"] == ["IR"]
            parts = [
                _romanise(rng, p, person.script, persian=persian) if p else None for p in parts
            ]
            variants.append("persian_romanisation" if persian else "transliteration")
    if middle and rng.random() < 0.6:
        parts[1] = None
        variants.append("middle_dropped")
    if person.script == "latin" and person.row["last_name"] != family:
        variants.append("held_as_mrz")  # the record spells MUELLER; the check may say Müller
    words = [p for p in parts if p]
    if rng.random() < 0.35:
        j = rng.randrange(len(words))
        words[j] = _misspell(rng, words[j])
        variants.append("misspelling")
    if rng.random() < 0.4:
        words = [words[-1], *words[:-1]]
        variants.append("swapped")
    criteria: dict[str, Any] = {"name": " ".join(words)}
    birth = str(person.row["birth_date"])
    roll = rng.random()
    if roll < 0.45:
        criteria["birth_date"] = birth[:4]
        variants.append("year_only")
    elif roll < 0.9:
        criteria["birth_date"] = birth
    if rng.random() < 0.3:
        criteria["nationality"] = person.row["nationality"][0]
    return Query(target=target, criteria=criteria, variants=tuple(variants))


def labelled_queries(seed: int, people: Sequence[Person]) -> list[Query]:
    rng = random.Random(seed * 7919 + 1)
    return [variant_query(rng, p, p.id) for p in people]
