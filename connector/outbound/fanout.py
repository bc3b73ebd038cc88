"""Fan-out: one agency's checks sent to every allowed peer at once, each within one deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import structlog

from connector.enquiries.log import EnquiryLog
from connector.errors import (
    BadAnswer,
    ConnectorError,
    PeerError,
    PeerRejected,
    PeerTimeout,
    PeerUnreachable,
)
from connector.outbound.exchange import outbound_entry
from connector.outbound.plan import PeerPlan
from connector.outbound.request import Request
from connector.peers.breaker import Breakers
from connector.peers.client import Exchange, PeerClient
from connector.peers.trust import TrustStore
from connector.protocol import EncodedChecks, HitClaims, digest, make_query

log = structlog.get_logger(__name__)

CheckStatus = Literal["hit", "no_hit", "denied", "unreachable", "timeout", "error"]
PeerStatus = Literal["answered", "denied", "unreachable", "timeout", "error"]
Failure = Literal["denied", "unreachable", "timeout", "error"]

# How long past the deadline the fan-out waits for a peer's task to write its log row before it
# reports the peer as timed out anyway (a task never outlives its own timeout by more).
LOG_GRACE_S = 1.0
# How long a fan-out's row may wait for the rows of other peers to share its commit; the last
# peer's row commits at once. Each commit stops the event loop for an fsync, so fewer is
# better, but the commit that holds the last rows is on the response's path: at 50 ms most
# fan-outs ended with one commit of all 196 rows, and a slow fsync of that one set the tail.
COMMIT_WINDOW_S = 0.015


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckOutcome:
    """One check as one peer answered it, or why it has no answer."""

    check: str
    status: CheckStatus
    level: str | None = None
    hits: tuple[HitClaims, ...] = ()
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerOutcome:
    """What one peer contributed: a verified answer, a local denial, or a failure."""

    peer: str
    status: PeerStatus
    checks: tuple[CheckOutcome, ...]
    elapsed_ms: float | None = None
    detail: str | None = None
    enquiry: str | None = None  # the peer's enquiry id, to quote when following a hit up
    answer_digest: str | None = None  # SHA-256 of the signed answer, as our log row keeps it
    log_id: str | None = None  # our outbound enquiry-log row


class FanOut:
    """Sends one query per peer over the shared client: each query signed once for its peer,
    each answer verified against that peer's pinned key and bound to that query, each
    exchange logged (one row per peer asked), each peer given what is left of the deadline."""

    def __init__(
        self,
        *,
        node: str,
        client: PeerClient,
        enquiry_log: EnquiryLog,
        breakers: Breakers,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
        peer_timeout: float,
        query_lifetime: int = 60,
        commit_window: float = COMMIT_WINDOW_S,
    ) -> None:
        self.node = node
        self.client = client
        self.log = enquiry_log
        self.breakers = breakers
        self.clock = clock
        self.monotonic = monotonic
        self.peer_timeout = peer_timeout
        self.query_lifetime = query_lifetime
        self.commit_window = commit_window
        self._tasks: set[asyncio.Task[PeerOutcome]] = set()

    async def run(
        self,
        request: Request,
        plans: Sequence[PeerPlan],
        *,
        trust: TrustStore,
        policy_digest: str,
        deadline_s: float,
    ) -> AsyncIterator[PeerOutcome]:
        """Each peer's outcome as it arrives; every peer has one by `deadline_s` (plus the
        time to commit its log row)."""
        deadline_at = self.monotonic() + deadline_s
        # Peers mostly get the same checks: each distinct set is encoded once.
        encoded: dict[tuple[str, ...], EncodedChecks] = {}
        for p in plans:
            key = tuple(c.id for c in p.allowed)
            if p.allowed and key not in encoded:
                encoded[key] = EncodedChecks.of(p.allowed)
        unlogged = {p.peer for p in plans}
        done: asyncio.Queue[asyncio.Task[PeerOutcome]] = asyncio.Queue()
        pending: dict[asyncio.Task[PeerOutcome], PeerPlan] = {}
        for p in plans:
            checks = encoded.get(tuple(c.id for c in p.allowed))
            task = asyncio.create_task(
                self._one(request, p, checks, trust, policy_digest, deadline_at, unlogged)
            )
            # Tasks are never cancelled: a query sent must get its log row even when the agency
            # has gone away, and each task ends by its own timeout anyway.
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            # A queue, not asyncio.wait: waiting again on every pending task after each answer
            # would cost a fan-out to n peers n² callbacks.
            task.add_done_callback(done.put_nowait)
            pending[task] = p
        while pending:
            if not done.empty():  # answers come in bursts: a timer only for a real wait
                task = done.get_nowait()
            else:
                wait = deadline_at + LOG_GRACE_S - self.monotonic()
                try:
                    async with asyncio.timeout(max(0.0, wait)):
                        task = await done.get()
                except TimeoutError:
                    for p in pending.values():
                        yield _all(p, request, "timeout", "no outcome within the deadline")
                    return
            pending.pop(task)
            yield task.result()

    async def _one(
        self,
        request: Request,
        p: PeerPlan,
        checks: EncodedChecks | None,
        trust: TrustStore,
        policy_digest: str,
        deadline_at: float,
        unlogged: set[str],
    ) -> PeerOutcome:
        try:
            return await self._ask(request, p, checks, trust, policy_digest, deadline_at, unlogged)
        finally:
            unlogged.discard(p.peer)

    async def _ask(
        self,
        request: Request,
        p: PeerPlan,
        checks: EncodedChecks | None,
        trust: TrustStore,
        policy_digest: str,
        deadline_at: float,
        unlogged: set[str],
    ) -> PeerOutcome:
        if not p.allowed or checks is None:
            return _all(p, request, "denied", "outbound_policy")
        peer = trust.get(p.peer)
        if peer is None:
            return _all(p, request, "error", "not in the trust store")
        if not self.breakers.allow(p.peer, self.monotonic()):
            return _all(p, request, "unreachable", "circuit_open")
        remaining = deadline_at - self.monotonic()
        if remaining <= 0:
            return _all(p, request, "timeout", "the deadline had passed")
        query = make_query(
            iss=self.node,
            aud=p.peer,
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
            exchange = await self.client.send(
                peer, query, token, timeout=min(self.peer_timeout, remaining)
            )
        except PeerError as exc:
            error = exc
        self._count(p.peer, error)
        elapsed_ms = round((self.monotonic() - started) * 1000, 1)
        answer_digest = digest(exchange.answer_token) if exchange is not None else None
        entry = outbound_entry(
            node=self.node,
            now=self.clock(),
            query=query,
            token=token,
            rules=p.rules,
            policy_digest=policy_digest,
            exchange=exchange,
            error=error,
            answer_digest=answer_digest,
        )
        unlogged.discard(p.peer)
        try:
            # The last peer of the fan-out to be logged commits at once, with whoever joined.
            await self.log.append(entry, within=0.0 if not unlogged else self.commit_window)
        except ConnectorError as exc:
            # No answer reaches an agency without its row: report the peer as an error.
            log.error("fanout_log_failed", peer=p.peer, detail=exc.detail)
            return _all(p, request, "error", "the enquiry could not be logged")
        if exchange is None:
            assert error is not None
            status: Failure = (
                "timeout"
                if isinstance(error, PeerTimeout)
                else "unreachable"
                if isinstance(error, PeerUnreachable)
                else "error"
            )
            out = _all(p, request, status, f"{error.code}: {error.detail}")
            return PeerOutcome(
                peer=p.peer,
                status=status,
                checks=out.checks,
                elapsed_ms=elapsed_ms,
                detail=error.detail,
                log_id=entry.id,
            )
        answered = {r.check: r for r in exchange.answer.results}
        outcomes = []
        for check in request.checks:
            r = answered.get(check.id)
            if r is None:
                outcomes.append(
                    CheckOutcome(check=check.id, status="denied", reason="outbound_policy")
                )
            else:
                outcomes.append(
                    CheckOutcome(
                        check=r.check,
                        status=r.status,
                        level=r.level.value,
                        hits=tuple(r.hits),
                        reason=r.reason,
                    )
                )
        statuses = {c.status for c in outcomes}
        return PeerOutcome(
            peer=p.peer,
            status="denied" if statuses == {"denied"} else "answered",
            checks=tuple(outcomes),
            elapsed_ms=elapsed_ms,
            enquiry=exchange.answer.enquiry,
            answer_digest=answer_digest,
            log_id=entry.id,
        )

    def _count(self, peer: str, error: PeerError | None) -> None:
        """Only a peer that cannot be reached, or fails on its side, trips its breaker."""
        if (
            error is None
            or isinstance(error, BadAnswer)
            or (isinstance(error, PeerRejected) and error.extra.get("peer_status", 500) < 500)
        ):
            self.breakers.success(peer)
        else:
            self.breakers.failure(peer, self.monotonic())

    async def drain(self) -> None:
        """Let queries in flight finish and write their rows (at shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.peer_timeout + LOG_GRACE_S)


def _all(p: PeerPlan, request: Request, status: Failure, reason: str) -> PeerOutcome:
    """Every check of a peer with one status: the allowed ones `status`, the rest denied."""
    allowed = {c.id for c in p.allowed}
    checks = tuple(
        CheckOutcome(
            check=c.id,
            status=status if c.id in allowed else "denied",
            reason=reason if c.id in allowed else "outbound_policy",
        )
        for c in request.checks
    )
    return PeerOutcome(peer=p.peer, status=status, checks=checks, detail=reason)
