"""Asking peers on behalf of national users: outbound policy, signed query, verified answer, log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog

from connector.enquiries.entry import Decision, Entry, new_enquiry_id
from connector.enquiries.log import EnquiryLog
from connector.errors import NotFound, OutboundDenied, PeerError
from connector.peers.client import Exchange, PeerClient
from connector.peers.trust import TrustStore
from connector.policy import Policy
from connector.protocol import Check, Query, digest, make_query
from connector.vocabulary import AgencyKind, Purpose

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """What a national user wants to know from one peer."""

    agency: str
    agency_kind: AgencyKind
    sub: str
    purpose: Purpose
    case: str | None
    checks: tuple[Check, ...]


class Asker:
    def __init__(
        self,
        *,
        node: str,
        client: PeerClient,
        enquiry_log: EnquiryLog,
        policy: Callable[[], Policy],
        trust: Callable[[], TrustStore],
        clock: Callable[[], float],
        query_lifetime: int = 60,
    ) -> None:
        self.node = node
        self.client = client
        self.log = enquiry_log
        self.policy = policy
        self.trust = trust
        self.clock = clock
        self.query_lifetime = query_lifetime

    def authorise(self, request: Request, peer_id: str) -> tuple[str, ...]:
        """The outbound rules that allow each check; OutboundDenied names the first refused."""
        policy = self.policy()
        rules = []
        for check in request.checks:
            decision = policy.decide_outbound(
                agency=request.agency,
                peer=peer_id,
                category=check.category,
                purpose=request.purpose,
            )
            if not decision.allowed:
                raise OutboundDenied(
                    f"the outbound policy does not let {request.agency} ask {peer_id} about "
                    f"{check.category.value} for {request.purpose.value}",
                    agency=request.agency,
                    peer=peer_id,
                    category=check.category.value,
                )
            rules.append(decision.rule or "")
        return tuple(rules)

    async def ask(self, request: Request, peer_id: str) -> Exchange:
        peer = self.trust().get(peer_id)
        if peer is None:
            raise NotFound(f"{peer_id} is not in the trust store", peer=peer_id)
        rules = self.authorise(request, peer_id)
        query = make_query(
            iss=self.node,
            aud=peer_id,
            sub=request.sub,
            agency_kind=request.agency_kind,
            purpose=request.purpose,
            checks=request.checks,
            case=request.case,
            now=self.clock(),
            lifetime=self.query_lifetime,
        )
        token = self.client.sign(query)
        try:
            exchange = await self.client.send(peer, query, token)
        except PeerError as exc:
            await self.log.append(self._entry(query, token, rules, None, error=exc))
            raise
        await self.log.append(self._entry(query, token, rules, exchange))
        log.info(
            "enquiry_sent",
            peer=peer_id,
            agency=request.agency,
            purpose=request.purpose.value,
            enquiry=exchange.answer.enquiry,
            statuses=[r.status for r in exchange.answer.results],
            elapsed_ms=round(exchange.elapsed * 1000, 1),
        )
        return exchange

    def _entry(
        self,
        query: Query,
        token: bytes,
        rules: tuple[str, ...],
        exchange: Exchange | None,
        error: PeerError | None = None,
    ) -> Entry:
        return outbound_entry(
            node=self.node,
            now=self.clock(),
            query=query,
            token=token,
            rules=rules,
            policy_digest=self.policy().digest,
            exchange=exchange,
            error=error,
        )


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
