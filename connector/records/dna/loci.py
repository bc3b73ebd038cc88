"""The canonical STR loci a profile may hold, the names labs write them under, and the two
halves of the list that the index keys are built within (`connector.records.dna.keys`)."""

from __future__ import annotations

import re
from types import MappingProxyType

AMELOGENIN = "AMEL"

ESS = (
    "D3S1358",
    "vWA",
    "D8S1179",
    "D21S11",
    "D18S51",
    "TH01",
    "FGA",
    "D1S1656",
    "D2S441",
    "D10S1248",
    "D12S391",
    "D22S1045",
)
"""The European Standard Set: the 12 loci every Prüm profile is typed at, as far as it can."""

CODIS_EXTRA = (
    "CSF1PO",
    "TPOX",
    "D5S818",
    "D7S820",
    "D13S317",
    "D16S539",
    "D2S1338",
    "D19S433",
)
"""The CODIS core 20 beyond the ESS (the other twelve are ESS loci)."""

OTHER = ("SE33", "Penta D", "Penta E")

LOCI = (*ESS, *CODIS_EXTRA, *OTHER)
"""Every STR locus a profile may name (amelogenin aside), in canonical spelling."""

# Two halves whose products of per-locus match probabilities are as even as the UK DNA-17
# frequencies allow (bench/_dna_freqs.py): the keys of the common half dominate how many
# records a search reads, so neither half may hold all the common loci.
_FIRST_HALF = frozenset(
    {"D12S391", "D1S1656", "FGA", "D3S1358", "D22S1045", "TH01"}
    | {"CSF1PO", "D5S818", "D13S317", "D2S1338", "Penta D"}
)
HALF = MappingProxyType({locus: 0 if locus in _FIRST_HALF else 1 for locus in LOCI})
"""Each locus's half of the list (0 or 1)."""

POSITION = MappingProxyType({locus: i for i, locus in enumerate(LOCI)})


def _folded(name: str) -> str:
    return re.sub(r"[\s_.\-]", "", name).upper()


_ALIASES: dict[str, str] = {_folded(locus): locus for locus in LOCI}
_ALIASES.update(
    {
        # The short forms labs and kits print, each naming one locus only.
        "D3": "D3S1358",
        "D5": "D5S818",
        "D7": "D7S820",
        "D8": "D8S1179",
        "D13": "D13S317",
        "D16": "D16S539",
        "D18": "D18S51",
        "D19": "D19S433",
        "D21": "D21S11",
        "D1": "D1S1656",
        "D10": "D10S1248",
        "D12": "D12S391",
        "D22": "D22S1045",
        "THO1": "TH01",
        "TH1": "TH01",
        "VWA31": "vWA",
        "FIBRA": "FGA",
        "CSF": "CSF1PO",
        "ACTBP2": "SE33",
        "PD": "Penta D",
        "PE": "Penta E",
        "AMEL": AMELOGENIN,
        "AM": AMELOGENIN,
        "AMELOGENIN": AMELOGENIN,
    }
)
ALIASES = MappingProxyType(_ALIASES)
"""Folded spelling (spaces, `_`, `.`, `-` dropped, upper case) → canonical locus."""

_AMBIGUOUS = {"D2": "D2S441 or D2S1338"}


def canonical_locus(name: str) -> str:
    """The canonical name of a locus written `name`; ValueError names what is wrong."""
    if name in POSITION or name == AMELOGENIN:
        return name  # as stored: every held profile's loci are canonical
    folded = _folded(name)
    found = ALIASES.get(folded)
    if found is not None:
        return found
    if folded in _AMBIGUOUS:
        raise ValueError(f"{name!r} could be {_AMBIGUOUS[folded]}: write the full locus name")
    raise ValueError(
        f"{name[:40]!r} is not a known STR locus (the ESS, CODIS core and SE33, Penta D, "
        "Penta E, and AMEL; docs/records.md lists their names)"
    )
