"""The outbound policy applied to one request: per peer, the checks it may be asked (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from connector.errors import OutboundDenied
from connector.outbound.request import Request
from connector.policy import Policy
from connector.protocol import Check


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerPlan:
    """What the outbound policy lets an agency ask one peer."""

    peer: str
    allowed: tuple[Check, ...]
    rules: tuple[str, ...]
    denied: tuple[str, ...]


def plan(policy: Policy, request: Request, peers: Sequence[str]) -> tuple[PeerPlan, ...]:
    """Per peer, the checks the outbound policy allows (with the deciding rules) and denies."""
    plans = []
    for peer in peers:
        allowed: list[Check] = []
        rules: list[str] = []
        denied: list[str] = []
        for check in request.checks:
            decision = policy.decide_outbound(
                agency=request.agency, peer=peer, category=check.category, purpose=request.purpose
            )
            if decision.allowed:
                allowed.append(check)
                rules.append(decision.rule or "")
            else:
                denied.append(check.id)
        plans.append(
            PeerPlan(peer=peer, allowed=tuple(allowed), rules=tuple(rules), denied=tuple(denied))
        )
    return tuple(plans)


def require_all(request: Request, p: PeerPlan) -> None:
    """Asking one peer: every check must be allowed, else OutboundDenied names the first
    refused (nothing is sent)."""
    if not p.denied:
        return
    check = next(c for c in request.checks if c.id == p.denied[0])
    raise OutboundDenied(
        f"the outbound policy does not let {request.agency} ask {p.peer} about "
        f"{check.category.value} for {request.purpose.value}",
        agency=request.agency,
        peer=p.peer,
        category=check.category.value,
    )


def require_some(request: Request, plans: Sequence[PeerPlan]) -> None:
    """Asking many peers: what the policy refuses one peer may go to others, but a request
    that may go nowhere at all is refused whole."""
    if plans and not any(p.allowed for p in plans):
        cats = ", ".join(sorted({c.category.value for c in request.checks}))
        raise OutboundDenied(
            f"the outbound policy lets {request.agency} ask none of these peers about "
            f"{cats} for {request.purpose.value}",
            agency=request.agency,
        )
