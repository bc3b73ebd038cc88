"""Evaluation of a loaded policy: inbound and outbound decisions, watches, explain, matrix, diff."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.policy import (
    ANY_OTHER_PEER,
    InboundDecision,
    Notify,
    Policy,
    Rate,
    check_policy,
    diff,
    explain,
    load_policy,
    matrix,
    peer_universe,
)
from connector.records.categories import CATEGORIES
from connector.vocabulary import AgencyKind, AnswerLevel, Category, Purpose

A = AgencyKind
P = Purpose
C = Category
L = AnswerLevel

POLICY = """\
groups:
  schengen: [AT, BE, DE, FR, NL]
  nordic: [DK, FI, NO, SE]
defaults:
  channels: [duty-officer]
inbound:
  - name: documents for everyone
    from: "*"
    categories: [travel_documents]
    answer: full
    redact: [holder_name]
  - name: terrorism needs a case
    from: [group:schengen]
    categories: [terrorism_suspects]
    purposes: [counter_terrorism]
    require_case: true
    answer: summary
    notify: always
  - name: wanted persons for border and police
    from: [group:schengen, group:nordic]
    agency_kinds: [border, police]
    purposes: [border_control, criminal_investigation]
    categories: [wanted_persons]
    answer: summary
    redact: [contact, address]
    notify: on_hit
    channels: [webhook]
    rate: 10/minute
  - name: wanted persons, hit only for the nordics
    from: [group:nordic]
    categories: [wanted_persons]
    answer: hit
  - name: no vehicles for the second French node
    from: [FR-2]
    categories: [vehicles]
    answer: none
    reason: that node has no vehicle mandate
  - name: vehicles for France
    from: FR
    categories: [vehicles]
    answer: full
outbound:
  - agency: border-police
    categories: [travel_documents, wanted_persons]
    purposes: [border_control]
    to: [group:schengen]
  - name: customs ask about vehicles anywhere
    agency: [customs]
    categories: [vehicles]
    to: "*"
  - agency: "*"
    categories: [artworks]
    to: [IT]
watch:
  - record: wanted_persons/FR-2025-000123
  - name: anything from RU
    peer: RU
  - category: terrorism_suspects
    peer: DE
    notify: [webhook]
"""


DOCS = "documents for everyone"
TERROR = "terrorism needs a case"
WANTED = "wanted persons for border and police"
NORDIC = "wanted persons, hit only for the nordics"
FR2 = "no vehicles for the second French node"
VEHICLES = "vehicles for France"
OUT0 = "outbound[0] border-police"


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return load_policy(write(tmp_path, {"10-policy.yaml": POLICY}))


def fields(category: Category, level: AnswerLevel, *redact: str) -> frozenset[str]:
    return CATEGORIES[category].visible_fields(level) - set(redact)


@pytest.mark.parametrize(
    ("peer", "kind", "purpose", "category", "has_case", "rule", "level"),
    [
        # default deny
        ("US", A.BORDER, P.BORDER_CONTROL, C.WANTED_PERSONS, False, None, L.NONE),
        ("DE", A.BORDER, P.BORDER_CONTROL, C.DNA_PROFILES, True, None, L.NONE),
        # "*" matches anyone, including peers no rule names
        ("US", A.CUSTOMS, P.IDENTIFICATION, C.TRAVEL_DOCUMENTS, False, DOCS, L.FULL),
        # groups, agency kinds, purposes
        ("DE", A.BORDER, P.BORDER_CONTROL, C.WANTED_PERSONS, False, WANTED, L.SUMMARY),
        ("DE", A.CUSTOMS, P.BORDER_CONTROL, C.WANTED_PERSONS, False, None, L.NONE),
        ("DE", A.POLICE, P.IDENTIFICATION, C.WANTED_PERSONS, False, None, L.NONE),
        # first match wins: Norway is in both groups, the earlier rule decides...
        ("NO", A.POLICE, P.CRIMINAL_INVESTIGATION, C.WANTED_PERSONS, False, WANTED, L.SUMMARY),
        # ...and the later one only where the earlier does not match
        ("NO", A.CUSTOMS, P.IDENTIFICATION, C.WANTED_PERSONS, False, NORDIC, L.HIT),
        # require_case
        ("FR", A.POLICE, P.COUNTER_TERRORISM, C.TERRORISM_SUSPECTS, False, None, L.NONE),
        ("FR", A.POLICE, P.COUNTER_TERRORISM, C.TERRORISM_SUSPECTS, True, TERROR, L.SUMMARY),
        ("FR", A.POLICE, P.CRIMINAL_INVESTIGATION, C.TERRORISM_SUSPECTS, True, None, L.NONE),
        # a bare country stands for all its nodes; a suffixed id for one node only
        ("DE-2", A.BORDER, P.BORDER_CONTROL, C.WANTED_PERSONS, False, WANTED, L.SUMMARY),
        ("FR", A.POLICE, P.VEHICLE_CHECK, C.VEHICLES, False, VEHICLES, L.FULL),
        ("FR-3", A.POLICE, P.VEHICLE_CHECK, C.VEHICLES, False, VEHICLES, L.FULL),
        ("FR-2", A.POLICE, P.VEHICLE_CHECK, C.VEHICLES, False, FR2, L.NONE),
        ("FRA", A.POLICE, P.VEHICLE_CHECK, C.VEHICLES, False, None, L.NONE),
    ],
)  # fmt: skip
def test_inbound_decisions(
    policy: Policy,
    peer: str,
    kind: AgencyKind,
    purpose: Purpose,
    category: Category,
    has_case: bool,
    rule: str | None,
    level: AnswerLevel,
) -> None:
    decision = policy.decide_inbound(
        peer=peer, agency_kind=kind, purpose=purpose, category=category, has_case=has_case
    )
    assert (decision.rule, decision.level) == (rule, level)
    assert decision.allowed is (level is not L.NONE)


def test_default_deny_decision_is_empty(policy: Policy) -> None:
    decision = policy.decide_inbound(
        peer="US",
        agency_kind=A.NCB,
        purpose=P.IDENTIFICATION,
        category=C.FINGERPRINTS,
        has_case=True,
    )
    assert decision == InboundDecision(
        rule=None,
        level=L.NONE,
        fields=frozenset(),
        redacted=frozenset(),
        reason=None,
        notify=Notify.NEVER,
        channels=(),
        rate=None,
    )


def test_effects_of_the_deciding_rule(policy: Policy) -> None:
    d = policy.decide_inbound(
        peer="NL",
        agency_kind=A.BORDER,
        purpose=P.BORDER_CONTROL,
        category=C.WANTED_PERSONS,
        has_case=False,
    )
    # `address` is not a summary field, so only `contact` is actually withheld.
    assert d.fields == fields(C.WANTED_PERSONS, L.SUMMARY, "contact")
    assert d.redacted == {"contact"}
    assert d.notify is Notify.ON_HIT
    assert d.channels == ("webhook",)
    assert d.rate == Rate(count=10, per_seconds=60, text="10/minute")
    assert d.reason is None


@pytest.mark.parametrize(
    ("peer", "category", "kind", "purpose", "has_case", "expected"),
    [
        # redact at full
        ("US", C.TRAVEL_DOCUMENTS, A.POLICE, P.IDENTIFICATION, False,
         {"fields": fields(C.TRAVEL_DOCUMENTS, L.FULL, "holder_name"),
          "redacted": {"holder_name"}, "notify": Notify.NEVER, "channels": ()}),
        # default channels apply when a rule notifies and names none
        ("BE", C.TERRORISM_SUSPECTS, A.NCB, P.COUNTER_TERRORISM, True,
         {"fields": fields(C.TERRORISM_SUSPECTS, L.SUMMARY), "redacted": set(),
          "notify": Notify.ALWAYS, "channels": ("duty-officer",)}),
        # hit reveals no field at all
        ("SE", C.WANTED_PERSONS, A.CUSTOMS, P.IDENTIFICATION, False,
         {"fields": set(), "redacted": set(), "notify": Notify.NEVER, "channels": ()}),
        # reason travels with a none
        ("FR-2", C.VEHICLES, A.POLICE, P.VEHICLE_CHECK, False,
         {"fields": set(), "reason": "that node has no vehicle mandate"}),
    ],
)  # fmt: skip
def test_decision_effects(
    policy: Policy,
    peer: str,
    category: Category,
    kind: AgencyKind,
    purpose: Purpose,
    has_case: bool,
    expected: dict[str, object],
) -> None:
    d = policy.decide_inbound(
        peer=peer, agency_kind=kind, purpose=purpose, category=category, has_case=has_case
    )
    for attribute, value in expected.items():
        assert getattr(d, attribute) == value, attribute


def test_decisions_are_memoised_consistently(policy: Policy) -> None:
    query = {
        "peer": "DE",
        "agency_kind": A.BORDER,
        "purpose": P.BORDER_CONTROL,
        "category": C.WANTED_PERSONS,
        "has_case": False,
    }
    first = policy.decide_inbound(**query)  # type: ignore[arg-type]
    assert policy.decide_inbound(**query) is first  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("agency", "peer", "category", "purpose", "allowed", "rule"),
    [
        ("border-police", "DE", C.WANTED_PERSONS, P.BORDER_CONTROL, True, OUT0),
        ("border-police", "DE", C.WANTED_PERSONS, P.IDENTIFICATION, False, None),
        ("border-police", "US", C.WANTED_PERSONS, P.BORDER_CONTROL, False, None),
        ("border-police", "DE", C.VEHICLES, P.BORDER_CONTROL, False, None),
        ("customs", "US", C.VEHICLES, P.VEHICLE_CHECK, True, "customs ask about vehicles anywhere"),
        ("customs", "IT", C.ARTWORKS, P.ART_TRAFFICKING, True, "outbound[2] *"),
        ("museum-police", "IT-2", C.ARTWORKS, P.ART_TRAFFICKING, True, "outbound[2] *"),
        ("museum-police", "FR", C.ARTWORKS, P.ART_TRAFFICKING, False, None),
        ("unknown-agency", "DE", C.TRAVEL_DOCUMENTS, P.BORDER_CONTROL, False, None),
    ],
)  # fmt: skip
def test_outbound_decisions(
    policy: Policy,
    agency: str,
    peer: str,
    category: Category,
    purpose: Purpose,
    allowed: bool,
    rule: str | None,
) -> None:
    d = policy.decide_outbound(agency=agency, peer=peer, category=category, purpose=purpose)
    assert (d.allowed, d.rule) == (allowed, rule)


def test_allowed_peers_keeps_order(policy: Policy) -> None:
    peers = ["US", "NL", "DE", "SE", "AT"]
    assert policy.allowed_peers(
        agency="border-police",
        category=C.TRAVEL_DOCUMENTS,
        purpose=P.BORDER_CONTROL,
        peers=peers,
    ) == ("NL", "DE", "AT")


@pytest.mark.parametrize(
    ("peer", "category", "hits", "names"),
    [
        ("ES", C.WANTED_PERSONS, ["FR-2025-000123"], ["watch[0] wanted_persons/FR-2025-000123"]),
        ("ES", C.WANTED_PERSONS, ["FR-2025-000999"], []),
        ("ES", C.VEHICLES, ["FR-2025-000123"], []),
        ("RU", C.ARTWORKS, [], ["anything from RU"]),
        ("DE", C.TERRORISM_SUSPECTS, [], ["watch[2] terrorism_suspects DE"]),
        ("DE-2", C.TERRORISM_SUSPECTS, [], ["watch[2] terrorism_suspects DE"]),
        ("DE", C.WANTED_PERSONS, [], []),
    ],
)
def test_watches(
    policy: Policy, peer: str, category: Category, hits: list[str], names: list[str]
) -> None:
    found = policy.watches_for(peer=peer, category=category, hit_ids=hits)
    assert [w.name for w in found] == names


def test_watch_channels_default(policy: Policy) -> None:
    by_name = {w.name: w for w in policy.watches}
    assert by_name["anything from RU"].channels == ("duty-officer",)
    assert by_name["watch[2] terrorism_suspects DE"].channels == ("webhook",)
    record = by_name["watch[0] wanted_persons/FR-2025-000123"]
    assert (record.record_category, record.record_id) == (C.WANTED_PERSONS, "FR-2025-000123")


def test_policy_shape(policy: Policy, tmp_path: Path) -> None:
    assert policy.groups["nordic"] == {"DK", "FI", "NO", "SE"}
    assert policy.channels == ("duty-officer",)
    assert policy.files == ("10-policy.yaml",)
    assert [r.name for r in policy.inbound][:2] == [
        "documents for everyone",
        "terrorism needs a case",
    ]
    assert policy.inbound[0].file == str(tmp_path / "10-policy.yaml")
    assert policy.inbound[0].line == 7
    assert policy.node_ids() >= {"FR", "FR-2", "IT", "RU", "NO"}


def test_deny_all() -> None:
    policy = Policy.deny_all()
    assert policy == Policy.deny_all()
    assert len({policy, Policy.deny_all()}) == 1
    assert policy.inbound == ()
    assert policy.outbound == ()
    assert policy.watches == ()
    assert policy.digest.startswith("sha256:")
    for category in Category:
        d = policy.decide_inbound(
            peer="FR", agency_kind=A.NCB, purpose=P.IDENTIFICATION, category=category, has_case=True
        )
        assert (d.rule, d.level) == (None, L.NONE)
    assert not policy.decide_outbound(
        agency="x", peer="FR", category=C.VEHICLES, purpose=P.VEHICLE_CHECK
    ).allowed


def test_files_load_in_name_order_as_one_policy(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "20-later.yaml": "inbound:\n  - name: b\n    from: [group:g]\n    answer: hit\n",
            "10-first.yaml": "groups:\n  g: [DE]\ninbound:\n  - name: a\n    from: [DE]\n"
            "    categories: [vehicles]\n    answer: full\n",
        },
    )
    policy = load_policy(tmp_path)
    assert [r.name for r in policy.inbound] == ["a", "b"]
    assert policy.files == ("10-first.yaml", "20-later.yaml")
    d = policy.decide_inbound(
        peer="DE",
        agency_kind=A.POLICE,
        purpose=P.VEHICLE_CHECK,
        category=C.VEHICLES,
        has_case=False,
    )
    assert d.rule == "a"


def test_digest_covers_names_and_bytes(tmp_path: Path) -> None:
    text = "inbound: []\n"
    one = load_policy(write(tmp_path / "one", {"a.yaml": text})).digest
    same = load_policy(write(tmp_path / "same", {"a.yaml": text})).digest
    renamed = load_policy(write(tmp_path / "renamed", {"b.yaml": text})).digest
    edited = load_policy(write(tmp_path / "edited", {"a.yaml": text + "# note\n"})).digest
    assert one == same
    assert len({one, renamed, edited}) == 3
    assert one.startswith("sha256:")
    assert len(one) == len("sha256:") + 64


def test_comment_only_files_are_fine(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"00-notes.yaml": "# nothing yet\n", "01-empty.yaml": "", "02-dashes.yaml": "---\n"},
    )
    report = check_policy(tmp_path)
    assert report.errors == ()
    assert report.policy is not None
    assert report.policy.inbound == ()


# --- explain -------------------------------------------------------------------------


def test_explain_names_rule_fields_and_misses(policy: Policy) -> None:
    e = explain(
        policy,
        peer="DE",
        agency_kind=A.BORDER,
        purpose=P.BORDER_CONTROL,
        category=C.WANTED_PERSONS,
    )
    assert e.rule == "wanted persons for border and police"
    assert e.level is L.SUMMARY
    assert e.fields == fields(C.WANTED_PERSONS, L.SUMMARY, "contact")
    assert e.redacted == {"contact"}
    assert e.line == 19
    assert [(s.rule, s.why) for s in e.skipped] == [
        ("documents for everyone", "categories: wanted_persons is not in [travel_documents]"),
        (
            "terrorism needs a case",
            "categories: wanted_persons is not in [terrorism_suspects]; "
            "purposes: border_control is not in [counter_terrorism]; "
            "require_case: the query gives no case reference",
        ),
    ]
    text = "\n".join(e.lines())
    assert "decided by: 'wanted persons for border and police'" in text
    assert "fields redacted: contact" in text


def test_explain_default_deny_lists_every_rule(policy: Policy) -> None:
    e = explain(
        policy,
        peer="US",
        agency_kind=A.POLICE,
        purpose=P.CRIMINAL_INVESTIGATION,
        category=C.WANTED_PERSONS,
        has_case=True,
    )
    assert e.rule is None
    assert e.level is L.NONE
    assert e.file is None
    assert len(e.skipped) == len(policy.inbound)
    assert e.skipped[2].why == "from: US is not in [group:schengen, group:nordic]"
    assert e.skipped[4].why == (
        "categories: wanted_persons is not in [vehicles]; from: US is not in [FR-2]"
    )
    assert "default applies (deny)" in "\n".join(e.lines())


def test_explain_require_case(policy: Policy) -> None:
    e = explain(
        policy,
        peer="AT",
        agency_kind=A.POLICE,
        purpose=P.COUNTER_TERRORISM,
        category=C.TERRORISM_SUSPECTS,
    )
    assert e.skipped[1].why == "require_case: the query gives no case reference"
    assert e.skipped[0].why == "categories: terrorism_suspects is not in [travel_documents]"


# --- matrix and diff -------------------------------------------------------------------


def test_matrix_rows(policy: Policy) -> None:
    rows = {(r.peer, r.category): r for r in matrix(policy, peers=["DE", "NO", "US"])}
    assert len(rows) == 3 * len(Category)
    de = rows[("DE", C.WANTED_PERSONS)]
    assert (de.level, de.rule, de.conditional) == (
        L.SUMMARY,
        "wanted persons for border and police",
        True,
    )
    no = rows[("NO", C.WANTED_PERSONS)]
    assert (no.level, no.conditional) == (L.SUMMARY, True)  # hit at worst, never none
    us_docs = rows[("US", C.TRAVEL_DOCUMENTS)]
    assert (us_docs.level, us_docs.conditional) == (L.FULL, False)
    assert us_docs.fields == fields(C.TRAVEL_DOCUMENTS, L.FULL, "holder_name")
    assert rows[("US", C.DNA_PROFILES)].level is L.NONE
    assert rows[("US", C.DNA_PROFILES)].rule is None
    assert rows[("DE", C.TERRORISM_SUSPECTS)].level is L.SUMMARY  # with a case reference


def test_peer_universe_and_other_peer(policy: Policy) -> None:
    universe = peer_universe(policy)
    assert universe[-1] == ANY_OTHER_PEER
    assert {"FR", "FR-2", "NO", "RU"} <= set(universe)
    rows = matrix(policy, peers=[ANY_OTHER_PEER])
    by_category = {r.category: r.level for r in rows}
    assert by_category[C.TRAVEL_DOCUMENTS] is L.FULL
    assert by_category[C.WANTED_PERSONS] is L.NONE


def test_diff_lists_changed_outcomes(policy: Policy, tmp_path: Path) -> None:
    changed_text = POLICY.replace(
        "  - name: vehicles for France\n    from: FR\n    categories: [vehicles]\n    answer: full",
        "  - name: vehicles for France\n    from: FR\n    categories: [vehicles]\n"
        "    answer: summary",
    )
    assert changed_text != POLICY
    new = load_policy(write(tmp_path / "new", {"10-policy.yaml": changed_text}))
    changes = diff(policy, new, peers=["FR", "FR-2", "DE"])
    assert {c.peer for c in changes} == {"FR"}
    assert {c.category for c in changes} == {C.VEHICLES}
    assert len(changes) == len(AgencyKind) * len(Purpose) * 2
    first = changes[0]
    assert (first.old.level, first.new.level) == (L.FULL, L.SUMMARY)
    assert first.changed == ("level", "fields")


def test_diff_ignores_renames_unless_asked(policy: Policy, tmp_path: Path) -> None:
    renamed = POLICY.replace("name: vehicles for France", "name: French vehicles")
    new = load_policy(write(tmp_path / "new", {"10-policy.yaml": renamed}))
    assert diff(policy, new, peers=["FR"]) == []
    changes = diff(policy, new, peers=["FR"], include_renames=True)
    assert changes
    assert all(c.changed == ("rule",) for c in changes)


def test_diff_of_identical_policies_is_empty(policy: Policy) -> None:
    assert diff(policy, policy, peers=peer_universe(policy)) == []


def test_what_each_rule_searches_is_decided_when_the_policy_loads(tmp_path: Path) -> None:
    loaded = load_policy(
        write(
            tmp_path / "s",
            {
                "p.yaml": "inbound:\n"
                "  - name: persons at hit\n    from: [IT]\n    answer: hit\n"
                "  - name: narrowed\n    from: [ES]\n    answer: summary\n"
                "    search: [last_name, vin]\n"
                "  - name: full\n    from: [FR]\n    answer: full\n"
            },
        )
    )

    def decide(peer: str, category: Category) -> InboundDecision:
        return loaded.decide_inbound(
            peer=peer,
            agency_kind=A.NCB,
            purpose=P.CRIMINAL_INVESTIGATION,
            category=category,
            has_case=False,
        )

    person = decide("IT", C.WANTED_PERSONS)
    assert person.searched == frozenset(
        {"first_name", "middle_name", "last_name", "aliases", "name_original_script"}
        | {"document_number"}
    )
    assert person.restricted
    assert person.unused == {"birth_date", "birth_date_tolerance", "nationality", "sex"}
    document = decide("IT", C.TRAVEL_DOCUMENTS)
    assert document.searched == {"document_number", "document_country"}
    assert document.unused == {"document_type"}  # an MRZ's type is left out, but it is used
    art = decide("IT", C.ARTWORKS)
    assert art.searched == {"title", "artist"}
    assert art.unused == frozenset()  # text is still looked for in the title and artist
    # A rule's `search:` applies to each category as far as it has those fields.
    assert decide("ES", C.WANTED_PERSONS).searched == {"last_name"}
    assert decide("ES", C.VEHICLES).searched == {"vin"}
    assert decide("ES", C.VEHICLES).unused == {"plate", "plate_country"}
    # At `full` everything is searched: nothing to narrow, nothing to pay per check.
    for category in Category:
        assert not decide("FR", category).restricted
    assert (
        "fields searched: document_country, document_number"
        in explain(
            loaded,
            peer="IT",
            agency_kind=A.NCB,
            purpose=P.CRIMINAL_INVESTIGATION,
            category=C.TRAVEL_DOCUMENTS,
            has_case=False,
        ).lines()
    )


def test_a_policy_written_with_old_field_names_keeps_its_meaning(tmp_path: Path) -> None:
    """`number`, `country` and `document_numbers` were a record's field names before each
    thing had one name: a policy that redacts or searches by them does what it did."""
    loaded = load_policy(
        write(
            tmp_path / "old",
            {
                "p.yaml": "inbound:\n"
                "  - name: documents\n    from: [IT]\n    answer: summary\n"
                "    categories: [travel_documents, wanted_persons]\n"
                "    redact: [country]\n    search: [number, document_numbers, last_name]\n"
            },
        )
    )
    decision = loaded.decide_inbound(
        peer="IT",
        agency_kind=A.NCB,
        purpose=P.CRIMINAL_INVESTIGATION,
        category=C.TRAVEL_DOCUMENTS,
        has_case=False,
    )
    assert "document_country" in decision.redacted
    assert decision.searched == {"document_number"}
    person = loaded.decide_inbound(
        peer="IT",
        agency_kind=A.NCB,
        purpose=P.CRIMINAL_INVESTIGATION,
        category=C.WANTED_PERSONS,
        has_case=False,
    )
    assert person.searched == {"document_number", "last_name"}
