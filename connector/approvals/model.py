"""Approval values, pure: a release held for an operator, its held checks, its decision."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from connector.enquiries.entry import utc_iso
from connector.trail.entry import Actor
from connector.vocabulary import AnswerLevel, Category, current_names

State = Literal["pending", "approved", "denied", "expired"]
Verdict = Literal["approved", "denied", "expired"]
STATES: tuple[State, ...] = ("pending", "approved", "denied", "expired")

# What the released answer says of a held check that was not approved (protocol.md §7.5).
DENIED_REASON = "approval_denied"
EXPIRED_REASON = "expired"


@dataclass(frozen=True, slots=True, kw_only=True)
class HeldCheck:
    """One check of the query whose hits wait for an operator: what was asked, the rule
    that holds it, the level it releases, and the hits as they would be released."""

    check: str
    category: Category
    criteria: Mapping[str, Any]
    rule: str
    level: AnswerLevel  # summary or full: what leaves once approved
    hits: tuple[Mapping[str, Any], ...]  # the hits' claims at `level` (ref, score, record…)

    @property
    def refs(self) -> tuple[str, ...]:
        return tuple(str(h["ref"]) for h in self.hits)

    # Held as they leave (the wire's v1 names, protocol.md §6.1, §7.4); an operator reads
    # them by the names every other surface uses.
    @property
    def shown_criteria(self) -> Mapping[str, Any]:
        return current_names(self.category, self.criteria)

    @property
    def shown_hits(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(
            {**h, "record": current_names(self.category, h["record"])} if h.get("record") else h
            for h in self.hits
        )

    def shown(self) -> dict[str, Any]:
        """The check as `approvals show --json` and the console give it."""
        return {
            **self.to_json(),
            "criteria": dict(self.shown_criteria),
            "hits": [dict(h) for h in self.shown_hits],
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "category": self.category.value,
            "criteria": dict(self.criteria),
            "rule": self.rule,
            "level": self.level.value,
            "hits": [dict(h) for h in self.hits],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> HeldCheck:
        return cls(
            check=str(doc["check"]),
            category=Category(doc["category"]),
            criteria=dict(doc["criteria"]),
            rule=str(doc["rule"]),
            level=AnswerLevel(doc["level"]),
            hits=tuple(dict(h) for h in doc["hits"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """Who decided, when and why; `operator` is None for an approval left to expire."""

    verdict: Verdict
    at: float
    operator: Actor | None
    reason: str
    enquiry: str  # the enquiry-log row that records it


@dataclass(frozen=True, slots=True, kw_only=True)
class Approval:
    """A release waiting for (or decided by) an operator: one per enquiry answered
    `pending`, covering every held check of that enquiry."""

    id: str
    state: State
    peer: str  # the node that asked; the only one that may fetch the release
    enquiry: str  # the enquiry whose answer said pending
    query_jti: str
    query_digest: str
    sub: str  # the asking officer, pseudonymous, as the peer sent it
    agency_kind: str
    purpose: str
    case_ref: str | None
    policy_digest: str
    held: tuple[HeldCheck, ...]
    # Every result of the query's answer as it is released when approved (held checks at
    # their level, the others as first answered), as protocol claims.
    results: tuple[Mapping[str, Any], ...]
    channels: tuple[str, ...]
    created_at: float
    expires_at: float
    remind_at: float | None
    decision: Decision | None = None

    @property
    def rules(self) -> tuple[str, ...]:
        """The deciding rules, each once, in the order of the checks."""
        return tuple(dict.fromkeys(h.rule for h in self.held))

    @property
    def refs(self) -> tuple[str, ...]:
        return tuple(ref for h in self.held for ref in h.refs)

    def to_json(self) -> dict[str, Any]:
        """The shape `approvals show --json` prints (docs/operations.md)."""
        return {
            "id": self.id,
            "state": self.state,
            "peer": self.peer,
            "enquiry": self.enquiry,
            "asked_by": {
                "node": self.peer,
                "sub": self.sub,
                "agency_kind": self.agency_kind,
                "purpose": self.purpose,
                "case": self.case_ref,
            },
            "rules": list(self.rules),
            "policy_digest": self.policy_digest,
            "held": [h.shown() for h in self.held],
            "created_at": utc_iso(self.created_at),
            "expires_at": utc_iso(self.expires_at),
            "decision": None
            if self.decision is None
            else {
                "verdict": self.decision.verdict,
                "at": utc_iso(self.decision.at),
                "operator": None
                if self.decision.operator is None
                else self.decision.operator.to_json(),
                "reason": self.decision.reason,
                "enquiry": self.decision.enquiry,
            },
        }
