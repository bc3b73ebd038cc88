"""What a notice says and who gets one: decided from an enquiry, its decisions and the policy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from connector.policy import InboundDecision, Notify, Policy
from connector.vocabulary import Category

NoticeKind = Literal["enquiry", "digest", "test", "approval", "release"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """One message for one channel. `id` is also the Idempotency-Key receivers dedupe on."""

    id: str
    channel: str
    kind: NoticeKind
    enquiry: str | None
    created_at: float
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckOutcome:
    """One check of an answered enquiry, as notification rules see it."""

    check: str
    category: Category
    decision: InboundDecision
    status: str
    level: str
    hit_ids: tuple[str, ...]  # record ids matched, also when the answer did not reveal them
    refs: tuple[str, ...]  # refs the answer carried
    probing: int = 0  # > 0: this check made its subject suspected of probing (distinct criteria)


@dataclass(frozen=True, slots=True, kw_only=True)
class Trigger:
    channel: str
    reasons: tuple[str, ...] = field(default_factory=tuple)


def channels_to_notify(
    *, peer: str, outcomes: Sequence[CheckOutcome], policy: Policy
) -> dict[str, list[str]]:
    """Channel name → why it is told (rule and watch names). Watches fire whatever the rule
    decided, so an NCB watching a record hears of a denied enquiry about it too."""
    out: dict[str, list[str]] = {}

    def add(channels: Iterable[str], reason: str) -> None:
        for channel in channels:
            reasons = out.setdefault(channel, [])
            if reason not in reasons:
                reasons.append(reason)

    for o in outcomes:
        d = o.decision
        fires = d.notify is Notify.ALWAYS or (d.notify is Notify.ON_HIT and o.status == "hit")
        if fires and d.rule is not None:
            add(d.channels or policy.channels, f"rule: {d.rule}")
        for watch in policy.watches_for(peer=peer, category=o.category, hit_ids=o.hit_ids):
            add(watch.channels or policy.channels, f"watch: {watch.name}")
        if o.probing:
            add(
                policy.probing.channels,
                f"probing: {peer} asked about one subject of {o.category} with {o.probing} "
                f"different criteria within {policy.probing.window_text}",
            )
    return out


def enquiry_notice_body(
    *,
    node: str,
    enquiry: str,
    at: str,
    peer: str,
    sub: str,
    agency_kind: str,
    purpose: str,
    case: str | None,
    checks: Sequence[Mapping[str, Any]],
    outcomes: Sequence[CheckOutcome],
    reasons: Sequence[str],
) -> dict[str, Any]:
    """The notice document: who asked, about what, what matched, what was answered."""
    by_id = {o.check: o for o in outcomes}
    return {
        "type": "foreign_enquiry",
        "node": node,
        "enquiry": enquiry,
        "at": at,
        "asked_by": {
            "node": peer,
            "agency_kind": agency_kind,
            "sub": sub,
            "purpose": purpose,
            "case": case,
        },
        "checks": [
            {
                "id": c["id"],
                "category": c["category"],
                "criteria": c["criteria"],
                "status": by_id[c["id"]].status,
                "answered_level": by_id[c["id"]].level,
                "rule": by_id[c["id"]].decision.rule,
                "matched": [f"{node}:{c['category']}:{i}" for i in by_id[c["id"]].hit_ids],
            }
            for c in checks
        ],
        "why_notified": list(reasons),
    }
