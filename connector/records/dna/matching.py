"""The Prüm matching rules (Council Decision 2008/616/JHA, annex chapter 1; docs/records.md):
full and near matches between a requesting and a requested profile."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from connector.records.dna.profile import Allele, Genotype, Profile


@dataclass(frozen=True, slots=True, kw_only=True)
class DnaMatch:
    """How a requested profile matched: `loci_compared` counts the loci both profiles hold
    (amelogenin aside), `matched` the full designated ones among them that agree whole;
    `locus` is where a near match's one differing allele is."""

    quality: Literal["full", "near"]
    loci_compared: int
    matched: int
    locus: str | None = None


def same_allele(asked: Allele | None, held: Allele | None) -> bool:
    """A wildcard equals any allele. A microvariant asked for, x.k, also equals x and the
    microvariants x.1 … x.k held (the annex's table); a repeat number equals itself."""
    if asked is None or held is None:
        return True
    return asked.repeats == held.repeats and held.tenth <= asked.tenth


def allele_differences(asked: Genotype, held: Genotype) -> int:
    """How many of the two alleles differ, the pair read in whichever order differs less."""
    a1, a2 = asked
    h1, h2 = held
    straight = (not same_allele(a1, h1)) + (not same_allele(a2, h2))
    if not straight:
        return 0
    crossed = (not same_allele(a1, h2)) + (not same_allele(a2, h1))
    return min(straight, crossed)


def compare(asked: Profile, held: Profile, *, min_loci: int, near: bool) -> DnaMatch | None:
    """A full match (every compared allele equal) or, when `near`, a near match (exactly
    one allele differs), in both cases with at least `min_loci` full designated loci that
    agree; None otherwise. Only loci held by both profiles are compared."""
    theirs = dict(held.loci)
    compared = matched = differing = 0
    where: str | None = None
    for locus, mine in asked.loci:
        other = theirs.get(locus)
        if other is None:
            continue
        compared += 1
        diff = allele_differences(mine, other)
        if diff:
            differing += diff
            if differing > (1 if near else 0):
                return None
            where = locus
        elif None not in mine and None not in other:
            matched += 1
    if matched < min_loci:
        return None
    if differing:
        return DnaMatch(quality="near", loci_compared=compared, matched=matched, locus=where)
    return DnaMatch(quality="full", loci_compared=compared, matched=matched)
