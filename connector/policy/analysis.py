"""Questions about a whole policy: explain a decision, who sees what, what a change changes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from connector.policy.model import (
    ANY_OTHER_PEER,
    DEFAULT_DENY,
    InboundDecision,
    InboundRule,
    OutboundRule,
    Policy,
    peer_in,
)
from connector.vocabulary import AgencyKind, AnswerLevel, Category, Purpose

__all__ = [
    "DecisionChange",
    "Explanation",
    "MatrixRow",
    "SkippedRule",
    "diff",
    "explain",
    "matrix",
    "peer_universe",
    "redundant_outbound",
    "unreachable_inbound",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class SkippedRule:
    """An inbound rule before the deciding one, and the condition it failed."""

    rule: str
    file: str
    line: int
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Explanation:
    """Why a query gets the answer it gets."""

    peer: str
    agency_kind: AgencyKind
    purpose: Purpose
    category: Category
    has_case: bool
    decision: InboundDecision
    file: str | None
    line: int | None
    skipped: tuple[SkippedRule, ...]

    @property
    def rule(self) -> str | None:
        return self.decision.rule

    @property
    def level(self) -> AnswerLevel:
        return self.decision.level

    @property
    def fields(self) -> frozenset[str]:
        return self.decision.fields

    @property
    def redacted(self) -> frozenset[str]:
        return self.decision.redacted

    def lines(self) -> list[str]:
        """The explanation as text lines for a terminal."""
        case = "with" if self.has_case else "without"
        out = [
            f"query: from {self.peer}, agency kind {self.agency_kind}, purpose {self.purpose}, "
            f"category {self.category}, {case} a case reference"
        ]
        for skipped in self.skipped:
            out.append(f"  skipped {skipped.rule!r} ({skipped.file}:{skipped.line}): {skipped.why}")
        d = self.decision
        if d.rule is None:
            out.append("decided by: no rule matched, so the default applies (deny)")
        else:
            out.append(f"decided by: {d.rule!r} ({self.file}:{self.line})")
        out.append(f"answer level: {d.level.value}")
        out.append("fields received: " + (", ".join(sorted(d.fields)) or "(none)"))
        out.append("fields redacted: " + (", ".join(sorted(d.redacted)) or "(none)"))
        if d.allowed:
            out.append("fields searched: " + (", ".join(sorted(d.searched)) or "(none)"))
            if d.unused:
                out.append("criteria not used: " + ", ".join(sorted(d.unused)))
        if d.reason is not None:
            out.append(f"reason: {d.reason}")
        if d.rate is not None:
            out.append(f"rate: {d.rate.text} per peer")
        if d.notify.value != "never":
            out.append(f"notify: {d.notify.value} via " + (", ".join(d.channels) or "(no channel)"))
        return out


def explain(
    policy: Policy,
    *,
    peer: str,
    agency_kind: AgencyKind,
    purpose: Purpose,
    category: Category,
    has_case: bool = False,
) -> Explanation:
    """The deciding rule, level, fields received and redacted, and why each earlier rule missed."""
    skipped: list[SkippedRule] = []
    decider: InboundRule | None = None
    for rule in policy.inbound:
        why = rule.mismatch(
            peer=peer,
            agency_kind=agency_kind,
            purpose=purpose,
            category=category,
            has_case=has_case,
        )
        if why is None:
            decider = rule
            break
        skipped.append(SkippedRule(rule=rule.name, file=rule.file, line=rule.line, why=why))
    return Explanation(
        peer=peer,
        agency_kind=agency_kind,
        purpose=purpose,
        category=category,
        has_case=has_case,
        decision=DEFAULT_DENY if decider is None else decider.decision(category),
        file=None if decider is None else decider.file,
        line=None if decider is None else decider.line,
        skipped=tuple(skipped),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MatrixRow:
    """The most a peer can see of a category, over every agency kind, purpose and case flag.

    `conditional` is true when some queries from that peer get less (the level depends on
    agency kind, purpose or a case reference).
    """

    peer: str
    category: Category
    level: AnswerLevel
    rule: str | None
    fields: frozenset[str]
    conditional: bool


def _queries() -> list[tuple[AgencyKind, Purpose, bool]]:
    return [(k, p, c) for k in AgencyKind for p in Purpose for c in (False, True)]


def matrix(policy: Policy, *, peers: Iterable[str]) -> list[MatrixRow]:
    """Who sees what: one row per peer and category, in the order given and enum order.

    A peer may be `*` (ANY_OTHER_PEER), standing for any peer the policy does not name.
    """
    rows: list[MatrixRow] = []
    queries = _queries()
    for peer in peers:
        for category in Category:
            best: InboundDecision | None = None
            lowest = AnswerLevel.FULL
            for kind, purpose, has_case in queries:
                d = policy.decide_inbound(
                    peer=peer,
                    agency_kind=kind,
                    purpose=purpose,
                    category=category,
                    has_case=has_case,
                )
                lowest = min(lowest, d.level)
                if best is None or d.level > best.level:
                    best = d
            assert best is not None
            rows.append(
                MatrixRow(
                    peer=peer,
                    category=category,
                    level=best.level,
                    rule=best.rule,
                    fields=best.fields,
                    conditional=lowest < best.level,
                )
            )
    return rows


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionChange:
    """One query whose outcome differs between two policies; `changed` names what differs."""

    peer: str
    category: Category
    agency_kind: AgencyKind
    purpose: Purpose
    has_case: bool
    old: InboundDecision
    new: InboundDecision
    changed: tuple[str, ...]


_OUTCOME = ("level", "fields", "redacted", "searched", "reason", "notify", "channels", "rate")


def diff(
    old: Policy, new: Policy, *, peers: Iterable[str], include_renames: bool = False
) -> list[DecisionChange]:
    """Every (peer, category, agency kind, purpose, case flag) whose outcome changes.

    A change of the deciding rule's name alone is listed only with `include_renames`, so
    renaming a broad rule does not bury the real changes.
    """
    changes: list[DecisionChange] = []
    queries = _queries()
    for peer in peers:
        for category in Category:
            for kind, purpose, has_case in queries:
                before = old.decide_inbound(
                    peer=peer,
                    agency_kind=kind,
                    purpose=purpose,
                    category=category,
                    has_case=has_case,
                )
                after = new.decide_inbound(
                    peer=peer,
                    agency_kind=kind,
                    purpose=purpose,
                    category=category,
                    has_case=has_case,
                )
                changed = tuple(a for a in _OUTCOME if getattr(before, a) != getattr(after, a))
                if include_renames and before.rule != after.rule:
                    changed = ("rule", *changed)
                if changed:
                    changes.append(
                        DecisionChange(
                            peer=peer,
                            category=category,
                            agency_kind=kind,
                            purpose=purpose,
                            has_case=has_case,
                            old=before,
                            new=after,
                            changed=changed,
                        )
                    )
    return changes


def peer_universe(*policies: Policy) -> tuple[str, ...]:
    """Peers that together show every distinct outcome: each node id named, then `*`.

    Any peer the policies do not name is decided exactly as `*` is (a node of a named
    country, such as FR-3 when FR is named, is decided as FR).
    """
    named: set[str] = set()
    for policy in policies:
        named |= policy.node_ids()
    return (*sorted(named), ANY_OTHER_PEER)


def _peer_classes(peer_sets: Sequence[frozenset[str] | None]) -> list[str]:
    # One representative per set of rules whose `from` it satisfies: peers that satisfy
    # the same rules are decided alike, so the analysis need not try each of them.
    named: set[str] = set()
    for peers in peer_sets:
        named |= peers or frozenset()
    classes: dict[tuple[bool, ...], str] = {}
    for atom in (*sorted(named), ANY_OTHER_PEER):
        signature = tuple(peers is None or peer_in(atom, peers) for peers in peer_sets)
        classes.setdefault(signature, atom)
    return list(classes.values())


def unreachable_inbound(rules: Sequence[InboundRule]) -> dict[int, frozenset[int]]:
    """Rules that decide no query at all, found by trying every distinct query.

    Maps each such rule's index to the indices of the earlier rules that decide the queries
    it matches; an empty set means the rule matches no query (e.g. it names an empty group).
    """
    peer_classes = _peer_classes([r.peers for r in rules])
    decides = [False] * len(rules)
    blockers: list[set[int]] = [set() for _ in rules]
    combos = _queries()
    for category in Category:
        in_category = [
            (i, r) for i, r in enumerate(rules) if r.categories is None or category in r.categories
        ]
        for peer in peer_classes:
            candidates = [
                (i, r) for i, r in in_category if r.peers is None or peer_in(peer, r.peers)
            ]
            if not candidates:
                continue
            for kind, purpose, has_case in combos:
                first: int | None = None
                for i, r in candidates:
                    if (
                        (r.agency_kinds is None or kind in r.agency_kinds)
                        and (r.purposes is None or purpose in r.purposes)
                        and (has_case or not r.require_case)
                    ):
                        if first is None:
                            first = i
                            decides[i] = True
                        else:
                            blockers[i].add(first)
    return {i: frozenset(blockers[i]) for i in range(len(rules)) if not decides[i]}


def _covers(outer: frozenset[str] | None, inner: frozenset[str] | None) -> bool:
    if outer is None:
        return True
    return inner is not None and inner <= outer


def _covers_peers(outer: frozenset[str] | None, inner: frozenset[str] | None) -> bool:
    if outer is None:
        return True
    # A bare country in `inner` also stands for its other nodes, which `peer_in` accepts
    # only when `outer` names the same bare country, so one test per entry is exact.
    return inner is not None and all(peer_in(p, outer) for p in inner)


def redundant_outbound(rules: Sequence[OutboundRule]) -> dict[int, int]:
    """Outbound rules whose every allowance an earlier rule already grants: index → that rule."""
    found: dict[int, int] = {}
    for j, later in enumerate(rules):
        for i in range(j):
            earlier = rules[i]
            if (
                _covers(earlier.agencies, later.agencies)
                and _covers(earlier.categories, later.categories)
                and _covers(earlier.purposes, later.purposes)
                and _covers_peers(earlier.peers, later.peers)
            ):
                found[j] = i
                break
    return found


def rules_by_country(policy: Policy, peer: str) -> list[str]:
    """The rules that apply to a suffixed node (`FR-2`) only because they name its country
    (`FR`): adding a second node of a country gives it what the first one had, which an
    admin should be told rather than find out."""
    if not (len(peer) > 3 and peer[2] == "-"):
        return []
    country = peer[:2]
    found = [
        f"inbound {r.name!r}"
        for r in policy.inbound
        if r.peers is not None and country in r.peers and peer not in r.peers
    ]
    found += [
        f"outbound {r.name!r}"
        for r in policy.outbound
        if r.peers is not None and country in r.peers and peer not in r.peers
    ]
    return found
