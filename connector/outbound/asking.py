"""Asking peers on behalf of national users: outbound policy, signed query, verified answer, log."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from connector.enquiries.entry import Entry
from connector.enquiries.log import EnquiryLog
from connector.errors import NotFound, OutboundDenied, PeerError
from connector.outbound.exchange import outbound_entry
from connector.outbound.request import Request
from connector.peers.client import Exchange, PeerClient
from connector.peers.trust import TrustStore
from connector.policy import Policy
from connector.protocol import Query, make_query

log = structlog.get_logger(__name__)


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
