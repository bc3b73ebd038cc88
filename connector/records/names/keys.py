"""Phonetic skeletons of name parts, and the index keys of a name that find its candidates."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import permutations

from connector.records.names.normalise import meaningful

# Spellings of one name that no sound rule joins: a transliteration's vowels and a
# language's form of the same name. The first of each group stands for all of them.
_VARIANT_GROUPS = (
    "muhammad mohammed mohammad mohamed mohamad muhammed muhamed mohamud mouhamed mamadou "
    "mamadu mehmet mehmed muhamad mohammod mahomed",
    "husayn hussein hussain husein hossein husain huseyin hosein husseyn",
    "yusuf yousef youssef yusif yousuf jusuf yousif youcef",
    "abdullah abdallah abdulla abdellah abdulah",
    "ibrahim ebrahim ibragim brahim ibrahima",
    "usama osama oussama ousama",
    "umar omar omer",
    "mustafa mustapha moustafa mostafa",
    "aleksandr alexander aleksander alexandr oleksandr alexandre aleksandar alexandros "
    "alessandro alejandro",
    "sergei sergey serhiy sergej serguei serhii sergii",
    "dmitri dmitry dmitrii dmytro dimitri",
    "yuri yuriy iouri jurij iurii yurii",
    "aleksei alexei alexey aleksey oleksii oleksiy",
    "mikhail michail mykhailo mikhael",
    "georgios giorgos yiorgos yorgos",
)
VARIANTS = {variant: group.split()[0] for group in _VARIANT_GROUPS for variant in group.split()}

# Longest first: "shch" must not be read as "sh" + "ch".
_SOUNDS = (
    ("schtsch", "S"),
    ("shtch", "S"),
    ("chtch", "S"),
    ("shch", "S"),
    ("stsch", "S"),
    ("tsch", "S"),
    ("tch", "S"),
    ("sch", "S"),
    ("sh", "S"),
    ("ch", "S"),
    ("zh", "S"),
    ("kh", "k"),
    ("gh", "g"),
    ("ph", "f"),
    ("th", "t"),
    ("dh", "d"),
    ("ts", "S"),
    ("tz", "S"),
    ("cz", "S"),
    ("sz", "S"),
    ("dz", "S"),
    ("ks", "S"),
    ("cs", "S"),
    ("ck", "k"),
    ("qu", "k"),
)
_SOUND_RE = re.compile("|".join(re.escape(a) for a, _ in _SOUNDS))
_SOUND = dict(_SOUNDS)
# Letters that sound alike across transliterations share a class: sibilants, v/w/f, d/t,
# c/k/q; vowels and the glides y, j (Yusuf, Jusuf, Iouri) carry no weight.
_LETTER = str.maketrans(
    {
        "s": "S",
        "z": "S",
        "x": "S",
        "v": "f",
        "w": "f",
        "d": "t",
        "q": "k",
        "a": None,
        "e": None,
        "i": None,
        "o": None,
        "u": None,
        "y": None,
        "j": None,
    }
)
_SOFT_C = re.compile(r"c(?=[eiy])")
_MAX_SKELETON = 24
MAX_KEY = 56


def canonical(token: str) -> str:
    """The variant group's first spelling, or the token itself."""
    return VARIANTS.get(token, token)


@lru_cache(maxsize=65536)
def skeleton(token: str) -> str:
    """The consonants of a name part by sound class, doubled letters once: Muhammad,
    Mohamed and محمد are all `mhmt`; Shcherbakov, Ščerbakov and Chtcherbakov `Srbkf`."""
    word = canonical(token)
    word = _SOUND_RE.sub(lambda m: _SOUND[m[0]], word)
    word = _SOFT_C.sub("S", word).replace("c", "k")
    if len(word) > 1 and word.endswith("h"):
        word = word[:-1]  # Fatimah / فاطمة (ftmh) / Fatima
    word = word.translate(_LETTER)
    out: list[str] = []
    for char in word:
        if not out or out[-1] != char:
            out.append(char)
    return ("".join(out) or token)[:_MAX_SKELETON]


# As _LETTER, but vowels stay, as classes: the glides y, j read as i (Iurii, Yuriy, Jurij).
_VOWELLED = str.maketrans(
    {"s": "S", "z": "S", "x": "S", "v": "f", "w": "f", "d": "t", "q": "k", "y": "i", "j": "i"}
)
_DIPHTHONGS = (("ou", "u"), ("oo", "u"), ("ee", "i"))


@lru_cache(maxsize=65536)
def sounds(token: str) -> str:
    """A name part by sound class with its vowels: what a transliteration keeps of a name
    and a skeleton throws away, so that a transliteration with a typo on top (Kanitwez /
    Kanivets, Sasonmow / Sazonov) stays one letter from the name."""
    word = canonical(token)
    for written, sound in _DIPHTHONGS:
        word = word.replace(written, sound)
    word = _SOUND_RE.sub(lambda m: _SOUND[m[0]], word)
    word = _SOFT_C.sub("S", word).replace("c", "k")
    if len(word) > 1 and word.endswith("h"):
        word = word[:-1]
    word = word.translate(_VOWELLED)
    out: list[str] = []
    for char in word:
        if not out or out[-1] != char:
            out.append(char)
    return "".join(out)


def key_parts(tokens: Sequence[str]) -> list[str]:
    """The skeletons that key a name: particles and initials never do, each once."""
    out: list[str] = []
    for token in meaningful(tokens):
        if len(token) > 1 and (skel := skeleton(token)) not in out:
            out.append(skel)
    return out


DELETION_FROM = 2
"""Skeletons this long or longer are also keyed with each one letter left out: a typo in a
name part (Tomczak / Tnmczak, Nicolas / Nciolas) then still shares a key with it."""


def _one_letter_off(text: str, shortest: int) -> list[str]:
    """`text` and, from `shortest` letters on, each way of leaving one letter out: two
    strings one edit apart always share one of these (symmetric deletion)."""
    if len(text) < shortest:
        return [text]
    return list(dict.fromkeys([text, *(text[:i] + text[i + 1 :] for i in range(len(text)))]))


def deletions(skel: str) -> list[str]:
    """The skeleton itself and, when long enough, each way of leaving one letter out."""
    return _one_letter_off(skel, DELETION_FROM)


LETTER_DELETION_FROM = 4


def letter_deletions(part: str) -> list[str]:
    """A name part as spelt and, when long enough, each way of leaving one letter out."""
    return _one_letter_off(part, LETTER_DELETION_FROM)


def name_keys(tokens: Sequence[str], *, typos: bool = True) -> list[str]:
    """A name's index keys, most selective first. `e`: two parts as spelt, order-free —
    short names (Im Sang-ho, Eriş İnönü) have skeletons of a consonant or two that
    thousands share, their letters far fewer. `t`: one part's skeleton, or that
    skeleton with one letter left out (`typos`), with another part's whole skeleton — so
    one misspelt part still meets its name through the other part, however common that
    one is. `q`: a part with the first two letters of another (a part spelt further off,
    a romanisation's tail). `s`: each part alone."""
    parts = key_parts(tokens)
    spelt = sorted(dict.fromkeys(t for t in meaningful(tokens) if len(t) > 1))
    keys = [f"e:{a}|{b}" for i, a in enumerate(spelt) for b in spelt[i + 1 :]]
    keys += [
        f"t:{d}|{b}" for a, b in permutations(parts, 2) for d in (deletions(a) if typos else [a])
    ]
    keys += [
        f"d:{d}|{skeleton(b)}"
        for a, b in permutations(spelt, 2)
        for d in (letter_deletions(a) if typos else [a])
    ]
    keys += [f"q:{a}|{b[:2]}" for a, b in permutations(parts, 2)]
    keys += [f"s:{part}" for part in parts]
    return [k[:MAX_KEY] for k in dict.fromkeys(keys)]


def _joined(tokens: Sequence[str]) -> list[list[str]]:
    """The name with two adjacent parts run together, each way (Xiao Ming / Xiaoming);
    particles too, since a syllable of one language is a particle of another (Zhi Bin /
    Zhibin, bin as in Hassan bin Ali)."""
    return [
        [*tokens[:i], tokens[i] + tokens[i + 1], *tokens[i + 2 :]] for i in range(len(tokens) - 1)
    ]


def held_keys(tokens: Sequence[str]) -> list[str]:
    """`n:` and each part as spelt: not to find anyone by, but to count how many persons
    hold a part of a check's name as a name of their own (see score.KNOWN_FACTOR)."""
    return [f"n:{t}"[:MAX_KEY] for t in dict.fromkeys(meaningful(tokens)) if len(t) > 1]


def record_keys(names: Iterable[Sequence[str]]) -> list[str]:
    """The keys of every written form of a person's name, each once; also of each form with
    two adjacent parts joined, without typo keys (a typo and a different split at once is
    left to the other keys)."""
    out: dict[str, None] = {}
    for tokens in names:
        out.update(dict.fromkeys(name_keys(tokens)))
        out.update(dict.fromkeys(held_keys(tokens)))
        for joined in _joined(tokens):
            out.update(dict.fromkeys(name_keys(joined, typos=False)))
    return list(out)


def query_keys(tokens: Sequence[str]) -> list[str]:
    """The keys a check looks up: those of its name, then those of its name with two
    adjacent parts joined. A single part also looks up its skeleton with a letter left
    out, which meets a record's name written with one letter fewer."""
    out = dict.fromkeys(name_keys(tokens))
    for joined in _joined(tokens):
        out.update(dict.fromkeys(name_keys(joined, typos=False)))
    parts = key_parts(tokens)
    if len(parts) == 1:
        out.update(dict.fromkeys(f"s:{d}" for d in deletions(parts[0])[1:]))
    out.update(dict.fromkeys(held_keys(tokens)))
    # Rare before common: pairs as spelt, a part spelt (or a letter off) with another by
    # sound, pairs by sound, then cut pairs, then single parts; the counted parts last.
    return sorted(out, key=lambda k: "edtqsn".index(k[0]))
