"""Index keys of a DNA profile: the genotypes of three full designated loci of one half of
the locus list. Why no full or near match can be missed: docs/records.md §DNA."""

from __future__ import annotations

from itertools import combinations
from math import comb

from connector.records.dna.loci import HALF, POSITION
from connector.records.dna.profile import Profile


def profile_keys(profile: Profile) -> list[str]:
    """Every triple of full designated loci within one half, with their genotypes compared
    by repeat number only (a microvariant equals its repeat number in some direction, so
    two agreeing loci always give the same key)."""
    halves: tuple[list[str], list[str]] = ([], [])
    for locus, (a, b) in profile.full():
        halves[HALF[locus]].append(f"{POSITION[locus]}={a.repeats}/{b.repeats}")
    return ["d:" + ";".join(triple) for half in halves for triple in combinations(half, 3)]


def keys_shared_at_least(agreeing: int) -> int:
    """The fewest keys two profiles share when `agreeing` full designated loci agree, however
    those loci fall into the two halves: every match shares at least this many."""
    return min(comb(first, 3) + comb(agreeing - first, 3) for first in range(agreeing + 1))
