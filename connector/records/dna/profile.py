"""A DNA profile read from its loci: each allele a repeat number, a microvariant or a
wildcard, each locus an unordered pair; checked once, where it enters (import or check)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from connector.records.dna.loci import AMELOGENIN, POSITION, canonical_locus

WILDCARD_NUMBERS = frozenset({0, 1, 99})
"""Repeat numbers Prüm reads as "any allele" (Council Decision 2008/616/JHA, annex ch. 1)."""
WILDCARD_CODES = frozenset({"*", "O", "F", "R", "NA", "NR", "UN"})
"""Non-numerical designations read as "any allele" by the same rule (`*` is the wildcard)."""
FULL_MINIMUM = 6
"""Full designated loci (amelogenin aside) a profile needs to be imported or searched for."""

_NUMBER = re.compile(r"(\d{1,3})(?:\.(\d))?")
_OFF_LADDER = re.compile(r"[<>]\d{1,3}(?:\.\d)?")
_SEX = frozenset({"X", "Y"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Allele:
    """A designated allele: the repeat number and the microvariant's tenth (0 for none)."""

    repeats: int
    tenth: int = 0

    def __str__(self) -> str:
        return f"{self.repeats}.{self.tenth}" if self.tenth else str(self.repeats)


Genotype = tuple[Allele | None, Allele | None]
"""A locus's two alleles, designated ones first (in order), wildcards (None) last."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """The STR loci of a profile, canonical names in canonical order; amelogenin is kept
    apart (it says the sex, and is never compared)."""

    loci: tuple[tuple[str, Genotype], ...]
    amelogenin: str | None = None

    def full(self) -> tuple[tuple[str, tuple[Allele, Allele]], ...]:
        """The full designated loci: both alleles designated."""
        return tuple(
            (locus, (a, b)) for locus, (a, b) in self.loci if a is not None and b is not None
        )

    def as_fields(self) -> dict[str, str]:
        """The loci as stored and shown: canonical names, `13,14`, a wildcard as `*`."""
        out = {locus: ",".join("*" if a is None else str(a) for a in g) for locus, g in self.loci}
        if self.amelogenin is not None:
            out[AMELOGENIN] = self.amelogenin
        return out


class ProfileError(ValueError):
    """What is wrong with a profile, and where: `locus` is None for the profile as a whole."""

    def __init__(self, message: str, *, locus: str | None = None) -> None:
        super().__init__(message)
        self.locus = locus


def parse_allele(text: str) -> Allele | None:
    """An allele, or None for a wildcard (0, 1, 99, `*`, an off-ladder `<8` or `>24`, or a
    Prüm letter code): the annex compares each of these with any allele."""
    found = _NUMBER.fullmatch(text)
    if found is not None:
        repeats = int(found[1])
        if found[2] is None and repeats in WILDCARD_NUMBERS:
            return None
        return Allele(repeats=repeats, tenth=int(found[2] or 0))
    if _OFF_LADDER.fullmatch(text) or text.upper() in WILDCARD_CODES:
        return None
    raise ValueError(
        f"{text[:16]!r} is not an allele: give a repeat number (13), a microvariant (9.3), "
        "an off-ladder value (<8, >24) or a wildcard (0, 1, 99, *)"
    )


@lru_cache(maxsize=8192)
def parse_genotype(text: str) -> Genotype:
    """`13,14`; `13` is the homozygote `13,13`; more than two alleles is a mixture. Cached:
    a locus has a few dozen genotypes, and every candidate of a search is read anew."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 2:
        raise ValueError(
            f"{len(parts)} alleles ({text[:40]!r}): a mixed profile cannot be compared "
            "(at most two alleles a locus)"
        )
    if any(not p for p in parts):
        raise ValueError(f"{text[:40]!r} has an empty allele: write `13,14` or `13`")
    first = parse_allele(parts[0])
    second = first if len(parts) == 1 else parse_allele(parts[1])
    if first is None:
        return (second, None)
    if second is None:
        return (first, None)
    return (
        (first, second)
        if (first.repeats, first.tenth) <= (second.repeats, second.tenth)
        else (
            second,
            first,
        )
    )


def _amelogenin(text: str) -> str:
    parts = [p.strip().upper() for p in text.split(",")]
    if not 1 <= len(parts) <= 2 or not all(p in _SEX for p in parts):
        raise ValueError(f"{text[:16]!r} is not an amelogenin type: X, Y or X,Y")
    return ",".join(parts)


def parse_profile(raw: Mapping[str, str], *, minimum: int = FULL_MINIMUM) -> Profile:
    """A profile from locus → alleles; ProfileError names the locus as written."""
    loci: dict[str, Genotype] = {}
    amelogenin: str | None = None
    for name, text in raw.items():
        try:
            locus = canonical_locus(name)
            if locus in loci or (locus == AMELOGENIN and amelogenin is not None):
                raise ValueError(f"names locus {locus} a second time")
            if locus == AMELOGENIN:
                amelogenin = _amelogenin(text)
            else:
                loci[locus] = parse_genotype(text)
        except ValueError as exc:
            raise ProfileError(str(exc), locus=name) from None
    profile = Profile(
        loci=tuple(sorted(loci.items(), key=lambda item: POSITION[item[0]])),
        amelogenin=amelogenin,
    )
    full = len(profile.full())
    if full < minimum:
        raise ProfileError(
            f"{full} full designated loci (both alleles given, amelogenin not counted): "
            f"Prüm compares profiles of at least {minimum}"
        )
    return profile
