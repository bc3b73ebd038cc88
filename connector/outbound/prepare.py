"""An agency's check made ready to fan out: criteria checked, peers chosen, national searched."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from connector.enquiries.entry import new_enquiry_id
from connector.errors import InvalidRequest
from connector.outbound.national import NationalResult, search_national, validate_checks
from connector.outbound.plan import PeerPlan, plan, require_some
from connector.outbound.request import Request
from connector.peers.trust import TrustStore
from connector.policy import Policy
from connector.records.store import RecordStore


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    """One policy and trust-store version decide the whole check."""

    id: str
    request: Request
    plans: tuple[PeerPlan, ...]
    national: tuple[NationalResult, ...]
    policy_digest: str
    trust: TrustStore


async def prepare(
    *,
    node: str,
    request: Request,
    peers: Sequence[str] | Literal["*"],
    policy: Policy,
    trust: TrustStore,
    store: RecordStore,
) -> Prepared:
    """Refuses (before anything is sent) check ids used twice, criteria that are wrong,
    peers not in the trust store, and a check the outbound policy sends to no peer at all."""
    ids = [c.id for c in request.checks]
    if len(set(ids)) != len(ids):
        raise InvalidRequest(
            "check ids must be unique (a subject adds document, "
            "wanted_person, terrorism_suspect, vehicle and dna_profile)"
        )
    if not request.checks:
        raise InvalidRequest("nothing to check")
    if len(request.checks) > 32:
        raise InvalidRequest("at most 32 checks per request")
    parsed = validate_checks(request.checks)
    if peers == "*":
        chosen = sorted(trust.peers)
    else:
        unknown = sorted(set(peers) - set(trust.peers))
        if unknown:
            raise InvalidRequest(f"not in the trust store: {', '.join(unknown)}", peers=unknown)
        chosen = list(dict.fromkeys(peers))
    plans = plan(policy, request, chosen)
    require_some(request, plans)
    national = await search_national(store, node, request.checks, parsed)
    check_id = new_enquiry_id(time.time())
    return Prepared(
        id=check_id,
        request=replace(request, id=check_id),
        plans=plans,
        national=national,
        policy_digest=policy.digest,
        trust=trust,
    )
