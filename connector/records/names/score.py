"""How well a person's recorded names, birth date and nationality agree with a check, and why."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import permutations
from typing import Any

from rapidfuzz.distance import OSA, Indel

from connector.records.names.keys import canonical, skeleton, sounds
from connector.records.names.normalise import PARTICLES, Name

SIMILAR_FLOOR = 0.7
"""Below this a pair of name parts is not a match at all: unrelated names of five letters
share about half their letters."""
SIMILAR_FACTOR = 0.75
"""Parts two or more edits apart that are not one name's spellings (Bednarek / Bednarczyk,
Galina / Angelina) are mostly different names: their letters' similarity counts this much,
so that one exact part does not carry a second that is another name."""
NEAR_FACTOR = 0.9
NEAR_TEXT = 0.8
"""Parts whose sounds are one consonant apart and whose letters mostly agree (Alektseew /
Alekseev) are more often one name spelt twice over: their similarity counts NEAR_FACTOR."""
ABJAD = 0.93
"""A romanised part with the recorded part's consonants, vowels supplied (Sahmaran / Shmran)."""
ABJAD_SHORT = 0.85
"""The same for a part of two consonants, one side written without any vowel (Dan / Dn)."""
TYPO_LENGTH = 0.75
"""A part one edit (a letter replaced, added, left out, or two swapped) from the recorded
one scores 1 - TYPO_LENGTH / its length: a typo says more in a long name than in a short
one, where one letter makes another name (Vera / Veda)."""

MRZ_SPELLING = 0.97
"""A part that is the other as a passport's machine-readable zone spells it (ICAO Doc 9303
part 3: Ä, Ö, Ü, Å written AE, OE, UE, AA): Mueller / Müller, Oedegaard / Ødegård."""

SAME_SOUNDS = 0.93
SAME_SOUNDS_FROM = 6
SAME_SOUNDS_SAME_START = 4
"""Two parts that read the same by sound, vowels included (see `sounds`), are one name in
two transliterations from four letters on (Darja / Daria, Zoja / Zoia) — from six when they
begin with different letters: Yeong / Jeong and Chen / Zhen are other names."""
TRANSLITERATED_TYPO = 0.97
"""A part one letter from the recorded one once both are read by sound (see `sounds`)
scores this much of what a plain typo would."""

PHONETIC = (0.55, 0.4)
PHONETIC_SHORT = (0.45, 0.45)
"""A same-skeleton pair's similarity: base + weight × its letters' similarity (skeletons
of three consonants or more, and of fewer)."""
EXTRA_PART_WEIGHT = 0.15
"""What a recorded name part the check does not mention costs."""
OTHER_PERSON_WEIGHT = 0.5
"""What a record's family name costs when a check of two parts or more meets none of it, or
its first name when the check meets its middle name instead (see `_left_out`)."""
EXTRA_MIDDLE_WEIGHT = 0.05
"""A dropped middle name (or patronymic) is the commonest difference between two writings
of one name, so it costs least."""
INITIAL_WEIGHT = 0.5
"""An initial says less than a name: it counts half."""
DATE_WEIGHT = 0.2
"""The share of the score a birth date given on both sides decides."""
DATE_AGREEMENT = {
    "exact": 1.0,
    "compatible_month": 0.95,
    "compatible_year": 0.85,
    "within_tolerance": 0.2,
}
DATE_CONTRADICTS = {"same_year": 0.7, "differs": 0.5}
"""A birth date that contradicts the record (the same year but another month or day, or
years apart beyond the tolerance) multiplies the score: two full dates that disagree are
two people, however alike the names."""
NO_DATE_SPELLING = 0.5
"""With no birth date to compare, the name alone decides, and at a million persons some
other person's name is always one spelling away: what the parts' spelling lacks counts
half again (Malika Urbain / Malik Urbain). A name spelt the same loses nothing."""
KNOWN_FACTOR = 0.85
"""A part of the check that is itself a name the category holds several times over (Malika,
Parks, Selena) is more likely that name than a misspelling of a neighbour (Malik, Park,
Elena): a match that is not exact (nor a listed variant) counts this much."""
NATIONALITY_DIFFERS_FACTOR = 0.9
SEX_DIFFERS_FACTOR = 0.9
DOCUMENT_SCORE = 0.97
"""A document number the record holds, whatever the names say: the number is an identifier."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PartMatch:
    """How one name part of the check matched (or did not) a part of a recorded name."""

    part: str
    matched: str | None
    field: str
    how: str  # exact, variant, mrz_spelling, transliteration, phonetic, consonants, typo,
    # transliteration_typo, similar, initial, joined, none
    similarity: float

    def reason(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "part": self.part, "match": self.how}
        if self.matched is not None:
            out["matched"] = self.matched
            out["similarity"] = round(self.similarity, 3)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class NameScore:
    score: float
    parts: tuple[PartMatch, ...]
    spelling: float = 1.0  # the mean similarity of the check's parts, parts left out aside


@lru_cache(maxsize=1 << 17)
def part_similarity(query: str, recorded: str) -> tuple[float, str]:
    """The similarity of two name parts in [0, 1] and what kind of match it is."""
    if query == recorded:
        return 1.0, "exact"
    if len(query) == 1 or len(recorded) == 1:
        return (1.0, "initial") if query[0] == recorded[0] else (0.0, "none")
    if canonical(query) == canonical(recorded):
        return 0.95, "variant"
    if _mrz_folded(query) == _mrz_folded(recorded):
        return MRZ_SPELLING, "mrz_spelling"
    text = Indel.normalized_similarity(query, recorded)
    typo = min(len(query), len(recorded)) >= 3 and OSA.distance(query, recorded) == 1
    typo_score = 1 - TYPO_LENGTH / max(len(query), len(recorded)) if typo else 0.0
    skel, other = skeleton(query), skeleton(recorded)
    bare, bare_recorded = _consonants(query), _consonants(recorded)
    fewest_vowels = min(len(query) - len(bare), len(recorded) - len(bare_recorded))
    vowelless, unvoiced = fewest_vowels <= 1, fewest_vowels == 0
    abjad = 0.0
    if unvoiced and len(bare) == len(bare_recorded) == 2 and bare == bare_recorded:
        # Two consonants, one side without a vowel (Dan / דן, Liv / לב): less sure.
        abjad = ABJAD_SHORT
    elif (
        vowelless
        and len(bare_recorded) >= 3
        and (
            bare == bare_recorded
            or (unvoiced and len(bare_recorded) >= 4 and OSA.distance(bare, bare_recorded) == 1)
        )
    ):
        # Arabic and Hebrew write few vowels, and every romanisation supplies its own:
        # Sahmaran / Shmran, Tuhabet / Thabt are the same consonants. Only where one side
        # has (almost) no vowels: Gromova / Abramova are not one name. Consonants a letter
        # apart only where one side has no vowel at all: Mandy / Wendy are two names.
        abjad = ABJAD if bare == bare_recorded else ABJAD - 0.1
    if not abjad and len(bare_recorded) >= 2 and _vowels_supplied(query, recorded):
        # A name held as its Arabic or Persian script reads (long vowels only: رضایی is
        # rzaii), asked with the short vowels a romanisation supplies and its way of
        # writing the long ones (Rezaei, Hossein, Mousavi).
        abjad = ABJAD if len(bare_recorded) >= 3 else ABJAD_SHORT
    heard, heard_recorded = _readings(query), _readings(recorded)
    if heard & heard_recorded and min(len(query), len(recorded)) >= (
        SAME_SOUNDS_FROM if query[0] != recorded[0] else SAME_SOUNDS_SAME_START
    ):
        # The same letters by sound, vowels included: one name in two transliterations
        # (Ljudmila / Liudmila, Michaljuk / Mikhaliuk). Not a syllable or two: Shi / Zhi,
        # Fu / Wu, Yeong / Jeong are other names.
        return max(SAME_SOUNDS, min(0.95, PHONETIC[0] + PHONETIC[1] * text)), "transliteration"
    if skel == other or _alternative(query) == other or skel == _alternative(recorded):
        # The same consonants by sound with other vowels: surer the closer the letters and
        # the more consonants agree (two say little: Lan / Lin, Weng / Wang); letters far
        # apart with the same sounds are as often two names (Surina / Isern, Malika /
        # Malik).
        base, weight = PHONETIC if len(other) >= 3 else PHONETIC_SHORT
        found = min(0.95, base + weight * text)
        if abjad > max(found, typo_score):
            return abjad, "consonants"
        return (typo_score, "typo") if typo_score > found else (found, "phonetic")
    if typo:
        return typo_score, "typo"
    if abjad:
        return abjad, "consonants"
    if min(len(query), len(recorded)) >= 4 and any(
        OSA.distance(a, b) <= 1 for a in heard for b in heard_recorded
    ):
        # One letter from the name once both are read by sound: a transliteration and a
        # typo at once (Kanitwez / Kanivets, Sasonmow / Sazonov).
        return TRANSLITERATED_TYPO * (
            1 - TYPO_LENGTH / max(len(query), len(recorded))
        ), "transliteration_typo"
    sounds = Indel.normalized_similarity(skel, other)
    similarity = max(text, 0.95 * sounds) if text >= 0.6 else text
    if similarity < SIMILAR_FLOOR:
        return 0.0, "none"
    near = OSA.distance(skel, other) <= 1 and text >= NEAR_TEXT
    return (NEAR_FACTOR if near else SIMILAR_FACTOR) * similarity, "similar"


# Matches that a name of its own, spelt as the check spells it, would also produce: a
# transliteration, a listed variant or a vowel-less record's consonants would not.
_SPELLING_OF_ANOTHER = frozenset({"phonetic", "typo", "transliteration_typo", "similar"})


def _known(found: tuple[float, str], known: bool) -> tuple[float, str]:
    similarity, how = found
    if known and how in _SPELLING_OF_ANOTHER:
        return similarity * KNOWN_FACTOR, how
    return found


_VOWELS = str.maketrans("", "", "aeiou")
# Both sides of a name are lower-case ASCII by now (Müller is muller): what an MRZ spells
# with two letters is folded back to the one the accent was dropped from.
_MRZ_DIGRAPHS = re.compile(r"ae|oe|ue|aa")


def _mrz_folded(token: str) -> str:
    return _MRZ_DIGRAPHS.sub(lambda m: m[0][0], token)


# How romanisations of Persian and Arabic write the long vowels ی and و.
_LONG_VOWELS = re.compile(r"e[iy]|ou|ee|oo")
_LONG = {"ei": "i", "ey": "i", "ou": "u", "ee": "i", "oo": "u"}


def _once(token: str) -> str:
    return "".join(c for i, c in enumerate(token) if i == 0 or token[i - 1] != c)


def _vowels_supplied(query: str, recorded: str) -> bool:
    """The recorded part is the check's with only short vowels left out, once the check's
    long vowels are read as one letter (Rezaei / rzaii, Hossein / hsin): the same consonants
    in the same order, each recorded vowel where the check has it, and every vowel the check
    adds between two consonants, where a short vowel is spoken (not Malika / Malik, whose
    last vowel makes another name, nor Joan / Jan)."""
    spelt = _once(_LONG_VOWELS.sub(lambda m: _LONG[m[0]], query))
    held = _once(recorded)
    if len(held) > len(spelt) or _consonants(spelt) != _consonants(held):
        return False
    j = 0
    for i, c in enumerate(spelt):
        if j < len(held) and held[j] == c:
            j += 1
            continue
        inside = 0 < i < len(spelt) - 1
        if not (inside and c in "aeiou" and _is_consonant(spelt[i - 1])):
            return False
        if not _is_consonant(spelt[i + 1]):
            return False
    return j == len(held)


def _is_consonant(c: str) -> bool:
    return c not in "aeiou"


def _consonants(token: str) -> str:
    return token.translate(_VOWELS)


def _readings(token: str) -> set[str]:
    """The part by sound, also with German and Polish ch read as kh and French j as zh."""
    return {sounds(token), sounds(token.replace("ch", "kh")), sounds(token.replace("j", "zh"))}


def _alternative(token: str) -> str:
    """The skeleton of the other reading of ch and j: German and Polish ch is the kh of
    Х (Petuchowa / Petukhova), French j the zh of Ж (Jadan / Zhadan)."""
    return skeleton(token.replace("ch", "kh").replace("j", "zh"))


def compare_names(
    query: Sequence[str], recorded: Name, known: frozenset[str] = frozenset()
) -> NameScore:
    """The check's name parts each paired with the recorded part they best match (each
    recorded part used once, so order never matters); parts the record has and the check
    does not cost EXTRA_PART_WEIGHT each. `known`: parts of the check that are names held
    in their own right (see KNOWN_FACTOR)."""
    q = [t for t in query if t not in PARTICLES] or list(query)
    kept = [
        (t, f) for t, f in zip(recorded.tokens, recorded.fields, strict=True) if t not in PARTICLES
    ] or list(zip(recorded.tokens, recorded.fields, strict=True))
    pairs = sorted(
        (
            (*_known(part_similarity(a, b[0]), a in known), i, j)
            for i, a in enumerate(q)
            for j, b in enumerate(kept)
        ),
        key=lambda p: -p[0],
    )
    used_q: dict[int, PartMatch] = {}
    used_r: set[int] = set()
    for similarity, how, i, j in pairs:
        if similarity <= 0 or i in used_q or j in used_r:
            continue
        used_q[i] = PartMatch(
            part=q[i], matched=kept[j][0], field=kept[j][1], how=how, similarity=similarity
        )
        used_r.add(j)
    parts = tuple(
        used_q.get(i) or PartMatch(part=t, matched=None, field="name", how="none", similarity=0.0)
        for i, t in enumerate(q)
    )
    weights = [INITIAL_WEIGHT if len(p.part) == 1 else 1.0 for p in parts]
    extra = sum(
        _left_out(kept[j][1], kept, used_r, len(q)) for j in range(len(kept)) if j not in used_r
    )
    agreement = sum(w * p.similarity for w, p in zip(weights, parts, strict=True))
    score = agreement / (sum(weights) + extra)
    everything = list(zip(recorded.tokens, recorded.fields, strict=True))
    if len(query) != len(everything) and len(everything) <= 4:
        joined = _joined(query, everything)
        if joined is not None and joined.score > score:
            return joined
    return NameScore(score=score, parts=parts, spelling=agreement / sum(weights))


def _left_out(field: str, kept: Sequence[tuple[str, str]], used: set[int], asked: int) -> float:
    """What a recorded part the check does not match costs: little for a middle name, more
    for a given or family name — and much more when the check named two parts or more and
    met none of the record's family name, or met its middle name but none of its first:
    the check then names another person who shares given names (Fabia Spinelli is not
    Alessandra Fabia Spinelli, Ja Yun not Jeon Yun-ja)."""
    if field == "middle_name":
        return EXTRA_MIDDLE_WEIGHT
    met = {kept[j][1] for j in used}
    if asked >= 2 and field == "last_name" and "last_name" not in met:
        return OTHER_PERSON_WEIGHT
    if field == "first_name" and "first_name" not in met and "middle_name" in met:
        return OTHER_PERSON_WEIGHT
    return EXTRA_PART_WEIGHT


def _joined(query: Sequence[str], kept: Sequence[tuple[str, str]]) -> NameScore | None:
    """Names written with parts split or joined differently (Xiao Ming / Xiaoming): the
    parts run together, in the recorded order that fits best."""
    whole = "".join(query)
    best, order = 0.0, None
    for perm in permutations(kept):
        written = "".join(t for t, _ in perm)
        if abs(len(written) - len(whole)) > 2:
            continue  # a part left out, not parts split differently
        similarity = Indel.normalized_similarity(whole, written)
        if similarity > best:
            best, order = similarity, perm
    if order is None or best < 0.9:
        return None
    part = PartMatch(
        part=" ".join(query),
        matched=" ".join(t for t, _ in order),
        field=order[0][1],
        how="joined",
        similarity=best,
    )
    return NameScore(score=best * 0.97, parts=(part,), spelling=best)


def best_name(
    query: Sequence[str], names: Sequence[Name], known: frozenset[str] = frozenset()
) -> NameScore:
    """The recorded name (main, an alias, the original script) that agrees best."""
    best: NameScore | None = None
    for name in names:
        found = compare_names(query, name, known)
        if best is None or found.score > best.score:
            best = found
    # No recorded name at all: every part of the check is unmatched.
    return best or NameScore(
        score=0.0,
        parts=tuple(
            PartMatch(part=t, matched=None, field="name", how="none", similarity=0.0) for t in query
        ),
    )


def compare_birth_dates(given: str, recorded: str, tolerance: int) -> str:
    """exact; compatible_month / compatible_year (equal as far as the less precise goes);
    same_year (day or month differ); within_tolerance (years apart, no more than allowed);
    differs."""
    if given == recorded:
        return "exact" if len(given) == 10 else f"compatible_{_precision(given)}"
    shared = min(len(given), len(recorded))
    if given[:shared] == recorded[:shared]:
        return "compatible_month" if shared == 7 else "compatible_year"
    if given[:4] == recorded[:4]:
        return "same_year"
    if abs(int(given[:4]) - int(recorded[:4])) <= tolerance:
        return "within_tolerance"
    return "differs"


def _precision(date: str) -> str:
    return {4: "year", 7: "month"}.get(len(date), "day")


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonQuery:
    """What a name search compares: the name parts and the optional other facts."""

    tokens: tuple[str, ...]
    birth_date: str | None = None
    birth_tolerance: int = 0
    nationality: tuple[str, ...] = ()
    sex: str | None = None
    document_keys: tuple[str, ...] = ()
    known: frozenset[str] = frozenset()


def score_person(
    query: PersonQuery,
    names: Sequence[Name],
    fields: Mapping[str, Any],
    document_keys: Sequence[str],
) -> tuple[float, tuple[dict[str, Any], ...]]:
    """A score in [0, 1] and its reasons: the name's agreement, moved by the birth date
    (a share of the score), lowered by a nationality or sex that differ, raised to
    DOCUMENT_SCORE by a document number the record holds."""
    name = best_name(query.tokens, names, query.known)
    score = name.score
    reasons: list[dict[str, Any]] = [p.reason() for p in name.parts]
    recorded_birth = fields.get("birth_date")
    if query.birth_date is not None and isinstance(recorded_birth, str):
        verdict = compare_birth_dates(query.birth_date, recorded_birth, query.birth_tolerance)
        if verdict in DATE_CONTRADICTS:
            score *= DATE_CONTRADICTS[verdict]
        else:
            score = (1 - DATE_WEIGHT) * score + DATE_WEIGHT * DATE_AGREEMENT[verdict]
        reasons.append({"field": "birth_date", "match": verdict})
    else:
        score = max(0.0, score - NO_DATE_SPELLING * (1 - name.spelling))
    recorded_nationality = fields.get("nationality")
    if query.nationality and isinstance(recorded_nationality, list) and recorded_nationality:
        given, held = set(query.nationality), set(recorded_nationality)
        verdict = "exact" if given == held else "compatible" if given & held else "differs"
        if verdict == "differs":
            score *= NATIONALITY_DIFFERS_FACTOR
        reasons.append({"field": "nationality", "match": verdict})
    recorded_sex = fields.get("sex")
    if query.sex in ("male", "female") and recorded_sex in ("male", "female"):
        same = query.sex == recorded_sex
        score *= 1.0 if same else SEX_DIFFERS_FACTOR
        reasons.append({"field": "sex", "match": "exact" if same else "differs"})
    if query.document_keys and set(query.document_keys) & set(document_keys):
        score = max(score, DOCUMENT_SCORE)
        reasons.append({"field": "document_number", "match": "exact"})
    return round(min(1.0, score), 4), tuple(reasons)
