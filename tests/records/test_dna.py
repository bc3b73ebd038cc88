"""DNA profiles: the Prüm rules, one table row each, and the index that must never miss."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.databases import DatabaseUrl

from connector.demo import DEMO_STAIN
from connector.errors import InvalidCriteria
from connector.records.dna.keys import keys_shared_at_least, profile_keys
from connector.records.dna.loci import ESS, LOCI, canonical_locus
from connector.records.dna.matching import compare
from connector.records.dna.profile import parse_profile
from connector.records.importer import import_stream
from connector.records.kinds.base import Record
from connector.records.kinds.biometrics import DnaCriteria, DnaProfiles
from connector.records.store import RecordStore
from connector.settings.config import DnaMatching, Matching
from connector.vocabulary import Category

KIND = DnaProfiles()

BASE = DEMO_STAIN  # twelve ESS loci and amelogenin, as the demo's stain


def _with(changes: Mapping[str, str | None], base: Mapping[str, str] = BASE) -> dict[str, str]:
    out = dict(base)
    for locus, value in changes.items():
        if value is None:
            out.pop(locus, None)
        else:
            out[locus] = value
    return out


def _first(n: int, base: Mapping[str, str] = BASE) -> dict[str, str]:
    return dict(list(base.items())[:n])


# (rule, asked, held, min_loci, near allowed, expected (quality, loci_compared, locus) or None)
RULES: list[tuple[str, dict[str, str], dict[str, str], int, bool, Any]] = [
    ("identical: full", BASE, BASE, 6, True, ("full", 12, None)),
    (
        "one allele differs: near",
        _with({"D8S1179": "13,15"}),
        BASE,
        6,
        True,
        ("near", 12, "D8S1179"),
    ),
    ("near not allowed", _with({"D8S1179": "13,15"}), BASE, 6, False, None),
    ("two alleles at one locus: none", _with({"D8S1179": "11,12"}), BASE, 6, True, None),
    (
        "one allele at each of two loci: none",
        _with({"D8S1179": "13,15", "FGA": "21,24"}),
        BASE,
        6,
        True,
        None,
    ),
    ("6 loci in common: full", _first(6), BASE, 6, True, ("full", 6, None)),
    ("5 loci in common: too few", _first(5), _first(12), 6, True, None),
    (
        "near needs 6 agreeing loci besides the differing one",
        _with({"D18S51": "14,17"}, _first(6)),
        BASE,
        6,
        True,
        None,
    ),
    (
        "near with 6 agreeing and the differing one",
        _with({"D18S51": "14,17"}, _first(7)),
        BASE,
        6,
        True,
        ("near", 7, "D18S51"),
    ),
    (
        "only loci held by both compared",
        _first(8),
        _with({"D3S1358": None}),
        6,
        True,
        ("full", 7, None),
    ),
    ("check raises the threshold", _first(7), BASE, 8, True, None),
    (
        "homozygote 13 is 13,13",
        _with({"D8S1179": "13"}),
        _with({"D8S1179": "13,13"}),
        6,
        True,
        ("full", 12, None),
    ),
    (
        "homozygote against a heterozygote: near",
        _with({"D8S1179": "13"}),
        BASE,
        6,
        True,
        ("near", 12, "D8S1179"),
    ),
    ("alleles in either order", _with({"D8S1179": "14,13"}), BASE, 6, True, ("full", 12, None)),
    ("wildcard 0 equals anything", _with({"D8S1179": "13,0"}), BASE, 6, True, ("full", 12, None)),
    ("wildcard 99 equals anything", _with({"D8S1179": "99,14"}), BASE, 6, True, ("full", 12, None)),
    ("wildcard 1 held equals anything", BASE, _with({"FGA": "1,22"}), 6, True, ("full", 12, None)),
    ("off-ladder <8 is a wildcard", _with({"TH01": "<8,9.3"}), BASE, 6, True, ("full", 12, None)),
    ("off-ladder >24 is a wildcard", BASE, _with({"FGA": "21,>24"}), 6, True, ("full", 12, None)),
    (
        "a wildcard locus is compared but not counted",
        _with({"D8S1179": "0,0"}, _first(6)),
        BASE,
        6,
        True,
        None,
    ),
    ("amelogenin ignored", _with({"AMEL": "X"}), BASE, 6, True, ("full", 12, None)),
    ("amelogenin absent", _with({"AMEL": None}), BASE, 6, True, ("full", 12, None)),
    (
        "microvariant asked x.3 equals x held",
        _with({"TH01": "6,9.3"}),
        _with({"TH01": "6,9"}),
        6,
        True,
        ("full", 12, None),
    ),
    (
        "microvariant asked x.3 equals x.1 held",
        BASE,
        _with({"TH01": "6,9.1"}),
        6,
        True,
        ("full", 12, None),
    ),
    (
        "repeat number asked does not equal x.3 held",
        _with({"TH01": "6,9"}),
        BASE,
        6,
        True,
        ("near", 12, "TH01"),
    ),
    (
        "microvariant of another repeat differs",
        _with({"TH01": "6,8.3"}),
        BASE,
        6,
        True,
        ("near", 12, "TH01"),
    ),
    (
        "aliases: D8, VWA, THO1",
        {
            ("D8" if k == "D8S1179" else "VWA" if k == "vWA" else "THO1" if k == "TH01" else k): v
            for k, v in BASE.items()
        },
        BASE,
        6,
        True,
        ("full", 12, None),
    ),
]


@pytest.mark.parametrize(
    ("asked", "held", "min_loci", "near", "expected"),
    [r[1:] for r in RULES],
    ids=[r[0] for r in RULES],
)
def test_prum_rules(
    asked: dict[str, str], held: dict[str, str], min_loci: int, near: bool, expected: Any
) -> None:
    found = compare(
        parse_profile(asked, minimum=0),
        parse_profile(held, minimum=0),
        min_loci=min_loci,
        near=near,
    )
    got = None if found is None else (found.quality, found.loci_compared, found.locus)
    assert got == expected


@pytest.mark.parametrize(
    ("loci", "field", "words"),
    [
        (_with({"D8S1179": "13,14,15"}), "loci.D8S1179", "mixed profile"),
        (_with({"D99": "13,14"}), "loci.D99", "not a known STR locus"),
        (_with({"D2": "10,11"}), "loci.D2", "D2S441 or D2S1338"),
        (_with({"FGA": "twenty"}), "loci.FGA", "not an allele"),
        (_with({"AMEL": "Z"}), "loci.AMEL", "amelogenin"),
        (_first(5), "loci", "5 full designated loci"),
        (_with({"D8": "13,14"}), "loci.D8", "second time"),
        (_with({"FGA": "21,22" * 4}), "loci.FGA", "at most 16 characters"),
    ],
)
def test_criteria_errors_name_the_locus(loci: dict[str, str], field: str, words: str) -> None:
    with pytest.raises(InvalidCriteria) as caught:
        KIND.parse_criteria({"loci": loci})
    assert caught.value.field == field
    assert words in caught.value.detail


def test_check_min_loci_only_raises_the_node_threshold() -> None:
    asked = KIND.parse_criteria({"loci": BASE, "min_loci": 7})
    node = Matching(dna=DnaMatching(min_loci=9, allow_near_match=False))
    assert KIND.at_node(asked, node) == DnaCriteria(profile=asked.profile, min_loci=9, near=False)
    assert KIND.at_node(asked, Matching()).min_loci == 7
    with pytest.raises(InvalidCriteria) as caught:
        KIND.parse_criteria({"loci": BASE, "min_loci": 5})
    assert caught.value.field == "min_loci"


def test_a_policy_that_does_not_search_loci_searches_nothing() -> None:
    asked = KIND.parse_criteria({"loci": BASE})
    assert KIND.restrict(asked, frozenset({"case_reference"})) is None
    assert KIND.restrict(asked, frozenset({"loci"})) == asked
    assert KIND.unused(frozenset({"case_reference"})) == {"loci", "min_loci"}


def test_every_canonical_locus_reads_back_as_itself() -> None:
    assert all(canonical_locus(locus) == locus for locus in LOCI)
    assert canonical_locus("penta_d") == "Penta D"
    assert canonical_locus("Amelogenin") == "AMEL"


def test_import_refuses_by_line_and_locus(db_url: DatabaseUrl) -> None:
    store = RecordStore.open(db_url("dna-import"))
    try:
        import orjson

        rows = [
            {"id": "P-1", "loci": BASE},
            {"id": "P-2", "loci": _with({"vWA": "16,17,18"})},
            {"id": "P-3", "loci": _first(5)},
        ]
        data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
        report = import_stream(
            store, io.BytesIO(data), category=Category.DNA_PROFILES, fmt="ndjson"
        )
        assert (report.inserted, report.rejected) == (1, 2)
        assert [e.line for e in report.errors] == [2, 3]
        assert report.errors[0].reason.startswith("loci.vWA: 3 alleles")
        assert "5 full designated loci" in report.errors[1].reason
    finally:
        store.close()


@pytest.fixture
def dna_store(db_url: DatabaseUrl) -> Iterator[RecordStore]:
    store = RecordStore.open(db_url("dna"))
    yield store
    store.close()


def test_store_finds_full_and_near_and_reports_them(dna_store: RecordStore) -> None:
    held = [
        KIND.parse_row({"id": "FULL", "loci": BASE}),
        KIND.parse_row({"id": "NEAR", "loci": _with({"FGA": "21,23"})}),
        KIND.parse_row({"id": "FAR", "loci": _with({"FGA": "19,23"})}),
    ]
    dna_store.upsert(Category.DNA_PROFILES, held)
    asked = KIND.parse_criteria({"loci": BASE})
    found = dna_store.search_now(Category.DNA_PROFILES, asked, 10)
    assert [(m.record.id, m.reasons) for m in found] == [
        ("FULL", ({"match": "full", "loci_compared": 12},)),
        ("NEAR", ({"match": "near", "loci_compared": 12, "locus": "FGA"},)),
    ]
    strict = KIND.at_node(asked, Matching(dna=DnaMatching(allow_near_match=False)))
    assert [m.record.id for m in dna_store.search_now(Category.DNA_PROFILES, strict, 10)] == [
        "FULL"
    ]


# --- the index guarantee -------------------------------------------------------------------

_ALLELES = st.sampled_from(["9", "10", "11", "12", "13", "14", "9.3", "12.2", "0", "99", "<8"])
_GENOTYPE = st.tuples(_ALLELES, _ALLELES).map(lambda pair: ",".join(pair))


@st.composite
def _profile(draw: st.DrawFn, loci: tuple[str, ...] = LOCI) -> dict[str, str]:
    chosen = draw(st.lists(st.sampled_from(loci), min_size=6, max_size=len(loci), unique=True))
    return {locus: draw(_GENOTYPE) for locus in chosen}


@st.composite
def _relative(draw: st.DrawFn, asked: dict[str, str]) -> dict[str, str]:
    """A profile built to match `asked` often: some of its loci copied (perhaps with
    wildcards or microvariants in place of an allele), one allele perhaps changed, loci
    dropped or added."""
    out: dict[str, str] = {}
    for locus, value in asked.items():
        how = draw(st.sampled_from(["copy", "copy", "copy", "wild", "drop", "micro"]))
        a, _, b = value.partition(",")
        if how == "copy":
            out[locus] = value
        elif how == "wild":
            out[locus] = f"{a},0"
        elif how == "micro" and "." not in a and a not in {"0", "99", "<8"}:
            out[locus] = f"{a}.2,{b}"  # held x.2 equals only x.2 or x.3 asked
    change: bool = draw(st.booleans())
    if out and change:
        locus = draw(st.sampled_from(sorted(out)))
        a, _, b = out[locus].partition(",")
        out[locus] = f"{a},{draw(_ALLELES)}"
    for locus in draw(st.lists(st.sampled_from(LOCI), max_size=4)):
        out.setdefault(locus, draw(_GENOTYPE))
    return out


def _brute_force(asked: dict[str, str], held: dict[str, str], min_loci: int) -> str | None:
    """The rules read straight from the annex, with no index: the reference the store is
    held to."""

    def allele(text: str) -> tuple[int, int] | None:
        if text.startswith(("<", ">")) or text in {"0", "1", "99", "*"}:
            return None
        whole, _, tenth = text.partition(".")
        return int(whole), int(tenth or 0)

    def same(x: tuple[int, int] | None, y: tuple[int, int] | None) -> bool:
        return x is None or y is None or (x[0] == y[0] and y[1] <= x[1])

    agreeing = differing = 0
    for locus in set(asked) & set(held):
        a = [allele(p) for p in (asked[locus].split(",") * 2)[:2]]
        h = [allele(p) for p in (held[locus].split(",") * 2)[:2]]
        diff = min(
            (not same(a[0], h[0])) + (not same(a[1], h[1])),
            (not same(a[0], h[1])) + (not same(a[1], h[0])),
        )
        differing += diff
        if not diff and None not in a and None not in h:
            agreeing += 1
    if agreeing < min_loci or differing > 1:
        return None
    return "full" if differing == 0 else "near"


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), min_loci=st.integers(min_value=6, max_value=9))
def test_index_never_misses_a_full_or_near_match(data: st.DataObject, min_loci: int) -> None:
    """Every pair the brute-force reference calls a match shares at least as many index keys
    as the store demands (`KeyQuery.at_least`): so the store reads it as a candidate."""
    asked = data.draw(_profile())
    held = data.draw(_relative(asked))
    try:
        asked_profile = parse_profile(asked, minimum=0)
        held_profile = parse_profile(held, minimum=0)
    except ValueError:
        return
    expected = _brute_force(asked, held, min_loci)
    found = compare(asked_profile, held_profile, min_loci=min_loci, near=True)
    assert (found.quality if found else None) == expected
    if expected is not None:
        shared = set(profile_keys(asked_profile)) & set(profile_keys(held_profile))
        assert len(shared) >= keys_shared_at_least(min_loci)


def test_planted_matches_are_all_found_through_the_store(dna_store: RecordStore) -> None:
    """Through the real store and its SQL: planted full and near matches (with wildcards and
    microvariants) among unrelated profiles, each found, nothing else reported."""
    import random

    rng = random.Random(15)
    alleles = [str(n) for n in range(8, 25)]

    def random_profile() -> dict[str, str]:
        return {locus: ",".join(rng.sample(alleles, 2)) for locus in ESS}

    asked = random_profile()
    planted = {
        "full": asked,
        "full-wild": {**asked, "FGA": asked["FGA"].split(",")[0] + ",99"},
        "near": {**asked, "TH01": asked["TH01"].split(",")[0] + ",30"},
        "near-6": {
            **{k: asked[k] for k in list(asked)[:6]},
            "D2S441": asked["D2S441"].split(",")[0] + ",31",
        },
        "two-off": {**asked, "TH01": "30,31"},
    }
    rows = [KIND.parse_row({"id": f"R{i}", "loci": random_profile()}) for i in range(2_000)]
    rows += [KIND.parse_row({"id": name, "loci": loci}) for name, loci in planted.items()]
    dna_store.upsert(Category.DNA_PROFILES, rows)
    found = dna_store.search_now(Category.DNA_PROFILES, KIND.parse_criteria({"loci": asked}), 100)
    assert {m.record.id: m.reasons[0]["match"] for m in found if m.reasons} == {
        "full": "full",
        "full-wild": "full",
        "near": "near",
        "near-6": "near",
    }


def test_profiles_held_from_before_dna_search_are_keyed_and_searched(
    dna_store: RecordStore,
) -> None:
    """Rows imported when profiles were only stored (fewer loci, names not known now) are
    keyed by `db upgrade` and searched by what still reads, never an error."""
    old = Record(
        id="OLD-1",
        category=Category.DNA_PROFILES,
        keys={"ref_key": "OLD-1"},
        fields={"loci": {**_first(7), "DYS19": "14", "D8": "X"}},
    )
    dna_store.upsert(Category.DNA_PROFILES, [old])
    assert dna_store.rebuild_keys(Category.DNA_PROFILES) == 1
    found = dna_store.search_now(Category.DNA_PROFILES, KIND.parse_criteria({"loci": BASE}), 10)
    assert [(m.record.id, m.reasons) for m in found] == [
        ("OLD-1", ({"match": "full", "loci_compared": 7},))
    ]
