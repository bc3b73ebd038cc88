"""One exchange with one peer: the query signed and sent, the answer verified, both logged."""

from __future__ import annotations

from connector.enquiries.entry import Decision, Entry, new_enquiry_id
from connector.errors import PeerError
from connector.peers.client import Exchange
from connector.protocol import Query, digest


def outbound_entry(
    *,
    node: str,
    now: float,
    query: Query,
    token: bytes,
    rules: tuple[str, ...],
    policy_digest: str,
    exchange: Exchange | None,
    error: PeerError | None = None,
    answer_digest: str | None = None,
) -> Entry:
    """The enquiry-log row of one query sent to one peer, answered or not (`answer_digest`:
    the answer token's, when the caller has it already)."""
    results: tuple[dict[str, object], ...] = ()
    hit_refs: tuple[str, ...] = ()
    decision: Decision = "error"
    if exchange is not None:
        results = tuple(
            {
                "check": r.check,
                "status": r.status,
                "level": r.level.value,
                "hits": [h.ref for h in r.hits],
                "peer_enquiry": exchange.answer.enquiry,
            }
            for r in exchange.answer.results
        )
        hit_refs = tuple(h.ref for r in exchange.answer.results for h in r.hits)
        statuses = {r.status for r in exchange.answer.results}
        decision = (
            "denied"
            if statuses == {"denied"}
            else "partial"
            if statuses & {"denied", "error"}
            else "answered"
        )
    return Entry(
        id=new_enquiry_id(now),
        at=now,
        direction="out",
        peer=query.aud,
        iss=node,
        jti=query.jti,
        sub=query.sub,
        agency_kind=query.agency_kind.value,
        purpose=query.purpose.value,
        case_ref=query.case,
        decision=decision,
        rules=rules,
        policy_digest=policy_digest,
        checks=tuple(
            {"id": c.id, "category": c.category.value, "criteria": dict(c.criteria)}
            for c in query.checks
        ),
        results=results,
        hit_refs=hit_refs,
        answer_digest=(answer_digest or digest(exchange.answer_token)) if exchange else None,
        error=None if error is None else f"{error.code}: {error.detail}",
        query_token=token.decode("ascii"),
    )
