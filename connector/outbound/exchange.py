"""One exchange with one peer: the query signed and sent, the answer verified, both logged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from connector.approvals.awaiting import awaiting_rows
from connector.enquiries.entry import Decision, Entry, new_enquiry_id
from connector.enquiries.log import Companion, EnquiryLog
from connector.errors import PeerError
from connector.outbound.request import Request
from connector.peers.client import Exchange, PeerClient
from connector.peers.trust import Peer
from connector.protocol import EncodedChecks, Query, digest, make_query


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """One query sent to one peer and what came of it, once its log row is committed."""

    exchange: Exchange | None  # the verified answer, bound to our query
    error: PeerError | None  # why there is none
    entry: Entry  # our outbound log row of the exchange
    elapsed_ms: float
    answer_digest: str | None


class Exchanges:
    """Each query built for one peer, signed with the node's key, sent over the shared client,
    its answer verified against the peer's pinned keys, and the exchange logged before the
    caller sees it: no answer reaches anyone without its row."""

    def __init__(
        self,
        *,
        node: str,
        client: PeerClient,
        enquiry_log: EnquiryLog,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
        query_lifetime: int = 60,
        release_poll_s: float = 15.0,
    ) -> None:
        self.node = node
        self.client = client
        self.log = enquiry_log
        self.clock = clock
        self.monotonic = monotonic
        self.query_lifetime = query_lifetime
        self.release_poll_s = release_poll_s  # the first ask for a pending answer's release

    async def exchange(
        self,
        request: Request,
        peer: Peer,
        checks: EncodedChecks,
        *,
        rules: tuple[str, ...],
        policy_digest: str,
        timeout: float,
        within: Callable[[], float],
    ) -> Sent:
        """`checks`: those the outbound policy lets `request` ask this peer (with `rules`, the
        rules that allow them); `within`: how long the row may wait for others to share its
        commit, asked once the row is ready. A row that cannot be committed raises."""
        query = make_query(
            iss=self.node,
            aud=peer.id,
            sub=request.sub,
            agency_kind=request.agency_kind,
            purpose=request.purpose,
            checks=checks.checks,
            case=request.case,
            now=self.clock(),
            lifetime=self.query_lifetime,
        )
        token = self.client.sign(query, checks)
        started = self.monotonic()
        exchange: Exchange | None = None
        error: PeerError | None = None
        try:
            exchange = await self.client.send(peer, query, token, timeout=timeout)
        except PeerError as exc:
            error = exc
        elapsed_ms = round((self.monotonic() - started) * 1000, 1)
        answer_digest = digest(exchange.answer_token) if exchange is not None else None
        entry = outbound_entry(
            node=self.node,
            now=self.clock(),
            query=query,
            token=token,
            rules=rules,
            policy_digest=policy_digest,
            exchange=exchange,
            error=error,
            answer_digest=answer_digest,
        )
        held: tuple[Companion, ...] = ()
        if exchange is not None and any(r.approval for r in exchange.answer.results):
            # The peer holds detail for its operator: remembered with this row, so the
            # release is asked for and reaches the agency even after a restart.
            held = awaiting_rows(
                request=request.id or entry.id,
                agency=request.agency,
                query=query,
                token=token,
                answer=exchange.answer,
                now=entry.at,
                poll_in=self.release_poll_s,
            )
        await self.log.append(entry, held, within=within())
        return Sent(
            exchange=exchange,
            error=error,
            entry=entry,
            elapsed_ms=elapsed_ms,
            answer_digest=answer_digest,
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
