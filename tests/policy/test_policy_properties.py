"""Property tests of the policy: default deny, first match, redaction, levels, safe reloads."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from connector.policy import (
    InboundRule,
    Policy,
    PolicySource,
    check_sources,
    peer_universe,
)
from connector.policy.model import RATE_UNITS, Notify
from connector.policy.schema import (
    DefaultsModel,
    FileModel,
    InboundModel,
    OutboundModel,
    WatchModel,
)
from connector.records.categories import CATEGORIES
from connector.vocabulary import ALPHA2, AgencyKind, AnswerLevel, Category, Purpose

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

GROUPS = {"g1": ["DE", "NO"], "g2": ["FR-2", "IT"]}
PEER_ENTRIES = ["DE", "FR", "FR-2", "NO", "US", "group:g1", "group:g2"]
QUERY_PEERS = ["DE", "FR", "FR-2", "FR-3", "NO", "NO-1", "US", "IT", "GB"]
ALL_FIELDS = sorted(frozenset().union(*(spec.fields for spec in CATEGORIES.values())))


def source(document: dict[str, Any]) -> list[PolicySource]:
    return [PolicySource(name="p.yaml", data=yaml.safe_dump(document).encode())]


def load(document: dict[str, Any]) -> Policy:
    report = check_sources(source(document))
    assert report.errors == (), report.errors
    assert report.policy is not None
    return report.policy


def subset(values: list[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(values), min_size=1, unique=True)


@st.composite
def rules(draw: st.DrawFn, index: int) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": f"rule {index}"}
    frm = draw(st.one_of(st.none(), st.just("*"), subset(PEER_ENTRIES)))
    if frm is not None:
        rule["from"] = frm
    for key, values in (
        ("agency_kinds", [k.value for k in AgencyKind]),
        ("purposes", [p.value for p in Purpose]),
        ("categories", [c.value for c in Category]),
    ):
        chosen = draw(st.one_of(st.none(), subset(values)))
        if chosen is not None:
            rule[key] = chosen
    case = draw(st.sampled_from([None, True, False]))
    if case is not None:
        rule["require_case"] = case
    rule["answer"] = draw(st.sampled_from([a.value for a in AnswerLevel]))
    categories = rule.get("categories", [c.value for c in Category])
    fields = sorted(frozenset().union(*(CATEGORIES[Category(c)].fields for c in categories)))
    redact = draw(st.lists(st.sampled_from(fields), unique=True, max_size=6))
    if redact:
        rule["redact"] = redact
    return rule


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(min_value=0, max_value=8))
    return {"groups": GROUPS, "inbound": [draw(rules(i)) for i in range(count)]}


queries = st.fixed_dictionaries(
    {
        "peer": st.sampled_from(QUERY_PEERS),
        "agency_kind": st.sampled_from(list(AgencyKind)),
        "purpose": st.sampled_from(list(Purpose)),
        "category": st.sampled_from(list(Category)),
        "has_case": st.booleans(),
    }
)


def reference_match(rule: dict[str, Any], query: dict[str, Any]) -> bool:
    """An independent statement of what a rule matches, written from the documentation."""
    frm = rule.get("from", "*")
    if frm != "*":
        named: set[str] = set()
        for entry in frm:
            named |= set(GROUPS[entry[6:]]) if entry.startswith("group:") else {entry}
        peer = query["peer"]
        if peer not in named and not ("-" in peer and peer.split("-")[0] in named):
            return False
    for key, value in (
        ("agency_kinds", query["agency_kind"]),
        ("purposes", query["purpose"]),
        ("categories", query["category"]),
    ):
        if key in rule and value.value not in rule[key]:
            return False
    return not (rule.get("require_case") and not query["has_case"])


@SETTINGS
@given(query=queries)
def test_an_empty_policy_denies_everything(query: dict[str, Any]) -> None:
    for policy in (Policy.deny_all(), load({}), load({"inbound": []})):
        d = policy.decide_inbound(**query)
        assert d.rule is None
        assert d.level is AnswerLevel.NONE
        assert d.fields == frozenset()


@SETTINGS
@given(document=documents(), query=queries)
def test_first_matching_rule_decides(document: dict[str, Any], query: dict[str, Any]) -> None:
    policy = load(document)
    decision = policy.decide_inbound(**query)
    expected = next((r for r in document["inbound"] if reference_match(r, query)), None)
    if expected is None:
        assert (decision.rule, decision.level) == (None, AnswerLevel.NONE)
    else:
        assert decision.rule == expected["name"]
        assert decision.level is AnswerLevel(expected["answer"])


@SETTINGS
@given(document=documents(), query=queries)
def test_a_redacted_field_is_never_revealed(
    document: dict[str, Any], query: dict[str, Any]
) -> None:
    policy = load(document)
    decision = policy.decide_inbound(**query)
    if decision.rule is None:
        return
    rule = next(r for r in policy.inbound if r.name == decision.rule)
    assert not decision.fields & rule.redact
    assert not decision.fields & decision.redacted
    shown = CATEGORIES[query["category"]].visible_fields(decision.level)
    assert decision.fields | decision.redacted == shown


@SETTINGS
@given(
    category=st.sampled_from(list(Category)),
    redact=st.lists(st.sampled_from(ALL_FIELDS), unique=True, max_size=8),
)
def test_levels_nest_hit_summary_full(category: Category, redact: list[str]) -> None:
    def fields(level: AnswerLevel) -> frozenset[str]:
        rule = InboundRule(name="r", answer=level, redact=frozenset(redact))
        return rule.decision(category).fields

    assert fields(AnswerLevel.NONE) == fields(AnswerLevel.HIT) == frozenset()
    assert fields(AnswerLevel.HIT) <= fields(AnswerLevel.SUMMARY) <= fields(AnswerLevel.FULL)
    assert fields(AnswerLevel.FULL) == frozenset(CATEGORIES[category].fields) - set(redact)


@pytest.mark.parametrize("category", list(Category))
def test_summary_is_a_strict_subset_of_full(category: Category) -> None:
    spec = CATEGORIES[category]
    assert frozenset() < spec.visible_fields(AnswerLevel.SUMMARY)
    assert spec.visible_fields(AnswerLevel.SUMMARY) < spec.visible_fields(AnswerLevel.FULL)


def _all_queries(policy: Policy) -> list[dict[str, Any]]:
    return [
        {"peer": p, "agency_kind": k, "purpose": u, "category": c, "has_case": h}
        for p in peer_universe(policy)
        for k in AgencyKind
        for u in Purpose
        for c in Category
        for h in (False, True)
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents())
def test_shadow_warnings_are_exact(document: dict[str, Any]) -> None:
    """A rule is flagged "never applies" exactly when removing it changes no decision."""
    report = check_sources(source(document))
    policy = report.policy
    assert policy is not None
    flagged = {w.rule for w in report.warnings if "never applies" in w.message}
    kept = tuple(r for r in policy.inbound if r.name not in flagged)
    pruned = Policy(digest="pruned", groups=policy.groups, inbound=kept)
    deciding: set[str | None] = set()
    for query in _all_queries(policy):
        decision = policy.decide_inbound(**query)
        deciding.add(decision.rule)
        assert pruned.decide_inbound(**query) == decision
    assert deciding - {None} == {r.name for r in kept}


# --- an invalid file never replaces the running policy ----------------------------------

VALID = """\
groups:
  nordic: [DK, FI, NO, SE]
defaults:
  channels: [ch1]
inbound:
  - name: rule1
    from: "*"
    categories: [travel_documents, vehicles]
    answer: full
    redact: [holder_name, owner_name]
  - name: rule2
    from: [group:nordic, DE, FR-2]
    agency_kinds: [border, police]
    purposes: [border_control]
    categories: [wanted_persons]
    require_case: true
    answer: summary
    notify: on_hit
    channels: [ch2]
    rate: 600/minute
  - name: rule3
    categories: [dna_profiles]
    answer: hit
    notify: always
outbound:
  - name: out1
    agency: ag1
    categories: [vehicles]
    purposes: [vehicle_check]
    to: [group:nordic]
watch:
  - record: wanted_persons/123
    notify: [ch3]
  - category: artworks
    peer: IT
"""

# Every word that is meaningful where it stands: mutating one into another of these could
# be a legitimate edit, so the mutations below always leave this set.
VOCABULARY = (
    {c.value for c in Category}
    | {p.value for p in Purpose}
    | {k.value for k in AgencyKind}
    | {a.value for a in AnswerLevel}
    | {n.value for n in Notify}
    | set(ALL_FIELDS)
    | set(ALPHA2)
    | set(RATE_UNITS)
    | {"group", "nordic"}
    | {"true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL"}
    | {
        field.alias or name
        for model in (FileModel, DefaultsModel, InboundModel, OutboundModel, WatchModel)
        for name, field in model.model_fields.items()
    }
)
TOKENS = [m for m in re.finditer(r"[A-Za-z_]+", VALID) if m.group() in VOCABULARY]
LINES = VALID.splitlines(keepends=True)


@st.composite
def typos(draw: st.DrawFn) -> str:
    """VALID with one word of its vocabulary mistyped (into a word outside it)."""
    token = draw(st.sampled_from(TOKENS))
    word = token.group()
    at = draw(st.integers(min_value=0, max_value=len(word)))
    letter = draw(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"))
    edit = draw(st.sampled_from(["insert", "delete", "replace"]))
    if edit == "insert":
        typo = word[:at] + letter + word[at:]
    elif edit == "delete":
        assume(at < len(word))
        typo = word[:at] + word[at + 1 :]
    else:
        assume(at < len(word))
        typo = word[:at] + letter + word[at + 1 :]
    assume(typo not in VOCABULARY)
    return VALID[: token.start()] + typo + VALID[token.end() :]


# A watch item of one line, repeated, is a second valid watch, so those lines are left alone.
REPEATABLE = [i for i, line in enumerate(LINES) if i < LINES.index("watch:\n")]


@st.composite
def repeated_lines(draw: st.DrawFn) -> str:
    """VALID with one line written twice: a repeated key, or a rule without its body."""
    index = draw(st.sampled_from(REPEATABLE))
    return "".join(LINES[: index + 1] + LINES[index:])


@st.composite
def stray_keys(draw: st.DrawFn) -> str:
    """VALID with an unknown key added under some mapping line."""
    candidates = [i for i, line in enumerate(LINES) if re.match(r"^\s*(- )?\w+:", line)]
    index = draw(st.sampled_from(candidates))
    line = LINES[index]
    indent = len(line) - len(line.lstrip(" -"))
    key = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10))
    assume(key not in VOCABULARY)
    return "".join([*LINES[: index + 1], " " * indent + f"{key}: 1\n", *LINES[index + 1 :]])


def test_the_unmutated_policy_is_valid() -> None:
    report = check_sources([PolicySource(name="p.yaml", data=VALID.encode())])
    assert report.errors == ()
    assert report.policy is not None
    assert len(TOKENS) > 60


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    corrupted=st.one_of(typos(), repeated_lines(), stray_keys()),
    queries=st.lists(queries, min_size=1, max_size=5),
)
def test_a_corrupted_file_never_yields_a_policy(
    corrupted: str, queries: list[dict[str, Any]]
) -> None:
    running = check_sources([PolicySource(name="p.yaml", data=VALID.encode())]).policy
    assert running is not None
    report = check_sources(
        [
            PolicySource(name="00-other.yaml", data=b"inbound: []\n"),
            PolicySource(name="p.yaml", data=corrupted.encode()),
        ]
    )
    assert report.errors, corrupted
    assert report.policy is None
    # A reload keeps the running policy when the new one has errors, so no decision moves.
    in_force = report.policy or running
    for query in queries:
        assert in_force.decide_inbound(**query) == running.decide_inbound(**query)
