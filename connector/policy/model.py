"""Policy values and their evaluation: rules, decisions, watches and the first-match lookup."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from connector.records.categories import CATEGORIES
from connector.records.kinds.registry import KINDS
from connector.vocabulary import AgencyKind, AnswerLevel, Category, Purpose

__all__ = [
    "ANY_OTHER_PEER",
    "DEFAULT_APPROVAL_EXPIRES",
    "RATE_UNITS",
    "InboundDecision",
    "InboundRule",
    "Notify",
    "OutboundDecision",
    "OutboundRule",
    "Policy",
    "Probing",
    "ProbingAction",
    "Rate",
    "Release",
    "Watch",
    "digest_sources",
    "parse_duration",
    "parse_window",
    "peer_in",
    "searched_fields",
]


class Notify(StrEnum):
    """When an inbound rule asks for the NCB to be told about an enquiry."""

    NEVER = "never"
    ON_HIT = "on_hit"
    ALWAYS = "always"


class Release(StrEnum):
    """When what a rule's level shows leaves: with the answer, or once an operator approves
    (the answer then says `pending` and shows only the refs, protocol.md §15)."""

    IMMEDIATE = "immediate"
    APPROVAL = "approval"


class ProbingAction(StrEnum):
    """What follows when one peer asks about one subject with too many different criteria."""

    NOTIFY = "notify"
    DENY = "deny"


RATE_UNITS: Mapping[str, int] = MappingProxyType(
    {"second": 1, "minute": 60, "hour": 3_600, "day": 86_400}
)
_RATE_RE = re.compile(r"^([1-9][0-9]{0,8})/(second|minute|hour|day)$")

# Stands for "a peer no rule names" in matrices and analyses; no node id can equal it.
ANY_OTHER_PEER = "*"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rate:
    """A budget of `count` checks per `per_seconds`, written `600/minute`."""

    count: int
    per_seconds: int
    text: str

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Parse `N/second|minute|hour|day`; raise ValueError with a message an admin can act on."""
        match = _RATE_RE.match(text)
        if match is None:
            raise ValueError(
                f"malformed rate {text!r}: write N/second, N/minute, N/hour or N/day "
                "with a whole number N ≥ 1, e.g. '600/minute'"
            )
        return cls(count=int(match[1]), per_seconds=RATE_UNITS[match[2]], text=text)

    def __str__(self) -> str:
        return self.text


WINDOW_UNITS: Mapping[str, int] = MappingProxyType({"s": 1, "m": 60, "h": 3_600})
_WINDOW_RE = re.compile(r"^([1-9][0-9]{0,5})(s|m|h)$")
MAX_WINDOW = 86_400


def parse_window(text: str) -> int:
    """`90s`, `30m` or `2h` in seconds, at most a day; ValueError in words an admin can act on."""
    match = _WINDOW_RE.match(text)
    seconds = 0 if match is None else int(match[1]) * WINDOW_UNITS[match[2]]
    if not 0 < seconds <= MAX_WINDOW:
        raise ValueError(
            f"malformed window {text!r}: write a whole number of seconds, minutes or hours "
            "up to one day, e.g. '90s', '30m' or '1h'"
        )
    return seconds


DURATION_UNITS: Mapping[str, int] = MappingProxyType({"s": 1, "m": 60, "h": 3_600, "d": 86_400})
_DURATION_RE = re.compile(r"^([1-9][0-9]{0,6})(s|m|h|d)$")
MAX_APPROVAL_EXPIRES = 30 * 86_400
DEFAULT_APPROVAL_EXPIRES = 48 * 3_600  # Prüm II: core data within 48 hours of a hit


def parse_duration(text: str) -> int:
    """`90s`, `30m`, `48h` or `2d` in seconds, at most 30 days; ValueError in words an admin
    can act on."""
    match = _DURATION_RE.match(text)
    seconds = 0 if match is None else int(match[1]) * DURATION_UNITS[match[2]]
    if not 0 < seconds <= MAX_APPROVAL_EXPIRES:
        raise ValueError(
            f"malformed duration {text!r}: write a whole number of seconds, minutes, hours or "
            "days up to 30 days, e.g. '48h' or '2d'"
        )
    return seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class Probing:
    """The `probing:` section: one peer asking about one subject (a document number, a
    VIN, a name) with `distinct` different sets of criteria within `window` seconds is
    suspected of probing for what the answer level hides; the NCB is told through
    `channels`, and with `action` deny the subject is denied to that peer for a window."""

    enabled: bool = True
    window: int = 3_600
    window_text: str = "1h"
    distinct: int = 4
    channels: tuple[str, ...] = ()
    action: ProbingAction = ProbingAction.NOTIFY
    file: str = ""
    line: int = 0


def peer_in(peer: str, peers: frozenset[str]) -> bool:
    """True when `peers` names this node, or its country as a whole.

    A bare country code stands for every node of that country (`FR` covers `FR-2`); a
    suffixed id (`FR-2`) names that node only.
    """
    return peer in peers or (len(peer) > 3 and peer[2] == "-" and peer[:2] in peers)


def digest_sources(sources: Iterable[tuple[str, bytes]]) -> str:
    """`sha256:<hex>` over each file's name and bytes, in order, length-prefixed so no two
    different sets of files can produce the same input."""
    h = hashlib.sha256()
    for name, data in sources:
        encoded = name.encode("utf-8")
        h.update(len(encoded).to_bytes(8, "big"))
        h.update(encoded)
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return "sha256:" + h.hexdigest()


def _written(entries: tuple[str, ...] | None) -> str:
    return "*" if entries is None else "[" + ", ".join(entries) + "]"


def _names(values: Iterable[str]) -> str:
    return "[" + ", ".join(sorted(values)) + "]"


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundDecision:
    """What a peer may see of one check: the outcome of the first matching inbound rule."""

    rule: str | None
    level: AnswerLevel
    fields: frozenset[str]
    redacted: frozenset[str]
    reason: str | None
    notify: Notify
    channels: tuple[str, ...]
    rate: Rate | None
    # The record fields a check is compared with; `restricted` when that leaves out a field
    # some criterion of the category compares, and then `unused` names the criterion
    # members compared with none of them (decided here once, not per check).
    searched: frozenset[str] = frozenset()
    unused: frozenset[str] = frozenset()
    restricted: bool = False
    # The level hides fields a peer could probe for (hit, summary): only then are its
    # checks counted towards probing. Decided here, since comparing levels per check costs.
    hides: bool = False
    # `release: approval`: a hit is answered at level `hit` with an approval id, and `level`
    # leaves once an operator approves, or never after `approval_expires` seconds. The
    # rule's channels (or the defaults') are told an approval waits, whatever `notify`.
    held: bool = False
    approval_expires: int = 0
    approval_channels: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.level is not AnswerLevel.NONE


DEFAULT_DENY = InboundDecision(
    rule=None,
    level=AnswerLevel.NONE,
    fields=frozenset(),
    redacted=frozenset(),
    reason=None,
    notify=Notify.NEVER,
    channels=(),
    rate=None,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundDecision:
    """Whether one of our agencies may ask one peer about one category, and which rule said so."""

    allowed: bool
    rule: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundRule:
    """One entry of `inbound:`. A condition of None matches everything."""

    name: str
    from_entries: tuple[str, ...] | None = None
    peers: frozenset[str] | None = None
    agency_kinds: frozenset[AgencyKind] | None = None
    purposes: frozenset[Purpose] | None = None
    categories: frozenset[Category] | None = None
    require_case: bool = False
    answer: AnswerLevel = AnswerLevel.NONE
    reason: str | None = None
    redact: frozenset[str] = frozenset()
    search: frozenset[str] | None = None  # None: the default of `searched_fields`
    notify: Notify = Notify.NEVER
    channels: tuple[str, ...] = ()
    rate: Rate | None = None
    release: Release = Release.IMMEDIATE
    approval_expires: int = DEFAULT_APPROVAL_EXPIRES
    file: str = ""
    line: int = 0

    def matches(
        self,
        *,
        peer: str,
        agency_kind: AgencyKind,
        purpose: Purpose,
        category: Category,
        has_case: bool,
    ) -> bool:
        return (
            (self.categories is None or category in self.categories)
            and (self.peers is None or peer_in(peer, self.peers))
            and (self.agency_kinds is None or agency_kind in self.agency_kinds)
            and (self.purposes is None or purpose in self.purposes)
            and (has_case or not self.require_case)
        )

    def mismatch(
        self,
        *,
        peer: str,
        agency_kind: AgencyKind,
        purpose: Purpose,
        category: Category,
        has_case: bool,
    ) -> str | None:
        """Why this rule does not match the query (every failing condition), or None."""
        why: list[str] = []
        if self.categories is not None and category not in self.categories:
            why.append(f"categories: {category} is not in {_names(self.categories)}")
        if self.peers is not None and not peer_in(peer, self.peers):
            why.append(f"from: {peer} is not in {_written(self.from_entries)}")
        if self.agency_kinds is not None and agency_kind not in self.agency_kinds:
            why.append(f"agency_kinds: {agency_kind} is not in {_names(self.agency_kinds)}")
        if self.purposes is not None and purpose not in self.purposes:
            why.append(f"purposes: {purpose} is not in {_names(self.purposes)}")
        if self.require_case and not has_case:
            why.append("require_case: the query gives no case reference")
        return "; ".join(why) or None

    def decision(self, category: Category) -> InboundDecision:
        """This rule's answer for a check in `category`."""
        shown = CATEGORIES[category].visible_fields(self.answer)
        searched = searched_fields(category, shown - self.redact, self.search)
        kind = KINDS.get(category)
        compared = kind.compared_fields() if kind is not None else frozenset()
        restricted = not compared <= searched
        return InboundDecision(
            rule=self.name,
            level=self.answer,
            fields=shown - self.redact,
            redacted=shown & self.redact,
            reason=self.reason,
            notify=self.notify,
            channels=self.channels if self.notify is not Notify.NEVER else (),
            rate=self.rate,
            searched=searched,
            unused=kind.unused(searched) if kind is not None and restricted else frozenset(),
            restricted=restricted,
            hides=AnswerLevel.NONE < self.answer < AnswerLevel.FULL,
            held=self.release is Release.APPROVAL,
            approval_expires=self.approval_expires if self.release is Release.APPROVAL else 0,
            approval_channels=self.channels if self.release is Release.APPROVAL else (),
        )


def searched_fields(
    category: Category, shown: frozenset[str], search: frozenset[str] | None
) -> frozenset[str]:
    """The record fields a check in `category` is compared with: those a rule's `search:`
    names, or else those the peer is shown plus those the category cannot be searched
    without (`Kind.identifying`: names and aliases of persons, a document's number and
    country, a VIN or plate, an artwork's title and artist)."""
    kind = KINDS.get(category)
    if kind is None:
        return frozenset()
    wanted = search if search is not None else shown | kind.identifying
    return wanted & kind.compared_fields()


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundRule:
    """One entry of `outbound:`: an allowance for national agencies to ask abroad."""

    name: str
    agencies: frozenset[str] | None = None
    categories: frozenset[Category] | None = None
    purposes: frozenset[Purpose] | None = None
    to_entries: tuple[str, ...] | None = None
    peers: frozenset[str] | None = None
    file: str = ""
    line: int = 0

    def matches(self, *, agency: str, peer: str, category: Category, purpose: Purpose) -> bool:
        return (
            (self.agencies is None or agency in self.agencies)
            and (self.categories is None or category in self.categories)
            and (self.purposes is None or purpose in self.purposes)
            and (self.peers is None or peer_in(peer, self.peers))
        )

    def mismatch(
        self, *, agency: str, peer: str, category: Category, purpose: Purpose
    ) -> str | None:
        """Why this rule does not allow the query (every failing condition), or None."""
        why: list[str] = []
        if self.agencies is not None and agency not in self.agencies:
            why.append(f"agency: {agency} is not in {_names(self.agencies)}")
        if self.peers is not None and not peer_in(peer, self.peers):
            why.append(f"to: {peer} is not in {_written(self.to_entries)}")
        if self.categories is not None and category not in self.categories:
            why.append(f"categories: {category} is not in {_names(self.categories)}")
        if self.purposes is not None and purpose not in self.purposes:
            why.append(f"purposes: {purpose} is not in {_names(self.purposes)}")
        return "; ".join(why) or None


@dataclass(frozen=True, slots=True, kw_only=True)
class Watch:
    """A request to be told about enquiries touching a record, a category or a peer.

    The conditions given are AND-ed; `record` is `category/id` and fires only when that
    record is a hit.
    """

    name: str
    record: str | None = None
    category: Category | None = None
    peer: str | None = None
    channels: tuple[str, ...] = ()
    file: str = ""
    line: int = 0

    @property
    def record_category(self) -> Category | None:
        return None if self.record is None else Category(self.record.split("/", 1)[0])

    @property
    def record_id(self) -> str | None:
        return None if self.record is None else self.record.split("/", 1)[1]

    def matches(self, *, peer: str, category: Category, hit_ids: Collection[str] = ()) -> bool:
        """True when an enquiry from `peer` about `category` hitting `hit_ids` concerns this."""
        if self.peer is not None and not peer_in(peer, frozenset((self.peer,))):
            return False
        if self.category is not None and category != self.category:
            return False
        if self.record is not None:
            return category == self.record_category and self.record_id in hit_ids
        return True


_DecisionKey = tuple[str, AgencyKind, Purpose, Category, bool]
# Decisions depend only on the query's five values; peers come from the trust store, so
# the memo stays small in practice, and this cap bounds it regardless.
_MEMO_LIMIT = 65_536


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """One loaded policy: every file of the directory, merged in name order."""

    digest: str
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)
    inbound: tuple[InboundRule, ...] = ()
    outbound: tuple[OutboundRule, ...] = ()
    watches: tuple[Watch, ...] = ()
    channels: tuple[str, ...] = ()
    probing: Probing = Probing()
    files: tuple[str, ...] = ()
    _by_category: Mapping[Category, tuple[InboundRule, ...]] = field(
        init=False, repr=False, compare=False
    )
    _memo: dict[_DecisionKey, InboundDecision] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The dataclass is frozen; these assignments finish construction.
        object.__setattr__(self, "groups", MappingProxyType(dict(self.groups)))
        by_category = {
            category: tuple(
                rule
                for rule in self.inbound
                if rule.categories is None or category in rule.categories
            )
            for category in Category
        }
        object.__setattr__(self, "_by_category", MappingProxyType(by_category))
        object.__setattr__(self, "_memo", {})

    def __hash__(self) -> int:
        # The digest identifies the files; equal policies always share it.
        return hash(self.digest)

    @classmethod
    def deny_all(cls) -> Policy:
        """The policy in force before any file loads: no rule, so every check is denied."""
        return cls(digest=digest_sources(()))

    def decide_inbound(
        self,
        *,
        peer: str,
        agency_kind: AgencyKind,
        purpose: Purpose,
        category: Category,
        has_case: bool,
    ) -> InboundDecision:
        """The first inbound rule that matches decides; none matching means default deny."""
        key = (peer, agency_kind, purpose, category, has_case)
        decision = self._memo.get(key)
        if decision is not None:
            return decision
        decision = DEFAULT_DENY
        for rule in self._by_category[category]:
            if rule.matches(
                peer=peer,
                agency_kind=agency_kind,
                purpose=purpose,
                category=category,
                has_case=has_case,
            ):
                decision = rule.decision(category)
                break
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[key] = decision
        return decision

    def decide_outbound(
        self, *, agency: str, peer: str, category: Category, purpose: Purpose
    ) -> OutboundDecision:
        """Allowed when some outbound rule matches (the first one is named); default deny."""
        for rule in self.outbound:
            if rule.matches(agency=agency, peer=peer, category=category, purpose=purpose):
                return OutboundDecision(allowed=True, rule=rule.name)
        return OutboundDecision(allowed=False, rule=None)

    def allowed_peers(
        self, *, agency: str, category: Category, purpose: Purpose, peers: Iterable[str]
    ) -> tuple[str, ...]:
        """The peers, in the order given, that `agency` may ask about `category` for `purpose`."""
        return tuple(
            peer
            for peer in peers
            if self.decide_outbound(
                agency=agency, peer=peer, category=category, purpose=purpose
            ).allowed
        )

    def watches_for(
        self, *, peer: str, category: Category, hit_ids: Collection[str] = ()
    ) -> tuple[Watch, ...]:
        """The watches an enquiry from `peer` about `category`, hitting `hit_ids`, triggers."""
        return tuple(
            w for w in self.watches if w.matches(peer=peer, category=category, hit_ids=hit_ids)
        )

    def node_ids(self) -> frozenset[str]:
        """Every node id the policy names, in groups, `from`, `to` or watches."""
        named: set[str] = set()
        for members in self.groups.values():
            named |= members
        for rule in self.inbound:
            named |= rule.peers or frozenset()
        for out in self.outbound:
            named |= out.peers or frozenset()
        named |= {w.peer for w in self.watches if w.peer is not None}
        return frozenset(named)
