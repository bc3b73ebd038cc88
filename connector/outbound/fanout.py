"""Fan-out: a request sent to every allowed peer at once within one deadline; one peer is a
fan-out of one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import structlog

from connector.errors import (
    BadAnswer,
    ConnectorError,
    NotFound,
    PeerError,
    PeerRejected,
    PeerTimeout,
    PeerUnreachable,
)
from connector.metrics import Metrics
from connector.outbound.exchange import Exchanges, Sent
from connector.outbound.plan import PeerPlan, plan, require_all
from connector.outbound.request import Request
from connector.peers.breaker import Breakers
from connector.peers.client import Exchange
from connector.peers.trust import TrustStore
from connector.policy import Policy
from connector.protocol import EncodedChecks, HitClaims

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
    unused_criteria: tuple[str, ...] = ()  # what the peer did not search by (protocol §7.2)
    # The hits' detail waits for the peer's operator: {id, status, level, expires} (§15).
    approval: dict[str, Any] | None = None


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
    exchange: Exchange | None = None  # the verified answer whole, for a caller that shows it
    error: ConnectorError | None = None  # why an exchange failed, as it was raised


class FanOut:
    """Runs one exchange per peer at once over the shared client, each peer given what is
    left of the deadline and skipped while its circuit breaker is open; the rows of one
    fan-out share as few commits as they can."""

    def __init__(
        self,
        *,
        exchanges: Exchanges,
        breakers: Breakers,
        monotonic: Callable[[], float],
        peer_timeout: float,
        commit_window: float = COMMIT_WINDOW_S,
        metrics: Metrics | None = None,
    ) -> None:
        self.exchanges = exchanges
        self.metrics = metrics  # each peer's outcome counted as it is reported
        self.breakers = breakers
        self.monotonic = monotonic
        self.peer_timeout = peer_timeout
        self.commit_window = commit_window
        self._tasks: set[asyncio.Task[PeerOutcome]] = set()
        # Told of every verified answer (peer, seconds): the health view need not wait for
        # its next check to see a peer that answers again.
        self.on_answered: Callable[[str, float], None] | None = None

    async def ask(
        self, request: Request, peer: str, *, policy: Policy, trust: TrustStore
    ) -> Exchange:
        """Asking one peer is a fan-out of one, all or nothing: what stops it is raised as a
        command shows it. NotFound (not in the trust store) and OutboundDenied (a check the
        policy refuses) before anything is sent; after, the exchange's PeerError, or the
        error that kept its row out of the log."""
        if trust.get(peer) is None:
            raise NotFound(f"{peer} is not in the trust store", peer=peer)
        (p,) = plan(policy, request, [peer])
        require_all(request, p)
        (outcome,) = [
            o
            async for o in self.run(
                request,
                (p,),
                trust=trust,
                policy_digest=policy.digest,
                deadline_s=self.peer_timeout,
            )
        ]
        exchange = outcome.exchange
        if exchange is None:
            raise outcome.error or _FAILURES.get(outcome.status, PeerError)(
                f"{peer}: {outcome.detail}"
            )
        log.info(
            "enquiry_sent",
            peer=peer,
            agency=request.agency,
            purpose=request.purpose.value,
            enquiry=exchange.answer.enquiry,
            statuses=[r.status for r in exchange.answer.results],
            elapsed_ms=round(exchange.elapsed * 1000, 1),
        )
        return exchange

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
                        late = _all(p, request, "timeout", "no outcome within the deadline")
                        self._counted(request, late)
                        yield late
                    return
            pending.pop(task)
            outcome = task.result()
            self._counted(request, outcome)
            yield outcome

    def _counted(self, request: Request, outcome: PeerOutcome) -> None:
        """Each check of the outcome counted by agency, peer (a trust-store id: the plan
        names only those) and status; the exchange's time, when one took place."""
        m = self.metrics
        if m is None:
            return
        for c in outcome.checks:
            m.sent(request.agency, outcome.peer, c.status)
        if outcome.elapsed_ms is not None:
            m.exchanged(outcome.peer, outcome.elapsed_ms / 1000)

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

        def within() -> float:
            # The last peer of the fan-out to be logged commits at once, with whoever joined.
            unlogged.discard(p.peer)
            return 0.0 if not unlogged else self.commit_window

        try:
            sent = await self.exchanges.exchange(
                request,
                peer,
                checks,
                rules=p.rules,
                policy_digest=policy_digest,
                timeout=min(self.peer_timeout, remaining),
                within=within,
            )
        except ConnectorError as exc:
            # No answer reaches an agency without its row: report the peer as an error.
            log.error("fanout_log_failed", peer=p.peer, detail=exc.detail)
            return replace(_all(p, request, "error", "the enquiry could not be logged"), error=exc)
        self._count(p.peer, sent.error)
        if sent.exchange is not None and self.on_answered is not None:
            self.on_answered(p.peer, sent.exchange.elapsed)
        return _outcome(p, request, sent)

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


_FAILURES: dict[str, type[PeerError]] = {"timeout": PeerTimeout, "unreachable": PeerUnreachable}


def _outcome(p: PeerPlan, request: Request, sent: Sent) -> PeerOutcome:
    """A peer's outcome from its logged exchange: each check as answered, or all failed."""
    exchange = sent.exchange
    if exchange is None:
        error = sent.error
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
            elapsed_ms=sent.elapsed_ms,
            detail=error.detail,
            log_id=sent.entry.id,
            error=error,
        )
    answered = {r.check: r for r in exchange.answer.results}
    outcomes = []
    for check in request.checks:
        r = answered.get(check.id)
        if r is None:
            outcomes.append(CheckOutcome(check=check.id, status="denied", reason="outbound_policy"))
        else:
            outcomes.append(
                CheckOutcome(
                    check=r.check,
                    status=r.status,
                    level=r.level.value,
                    hits=tuple(r.hits),
                    reason=r.reason,
                    unused_criteria=tuple(r.unused_criteria),
                    approval=None if r.approval is None else r.approval.model_dump(mode="json"),
                )
            )
    statuses = {c.status for c in outcomes}
    return PeerOutcome(
        peer=p.peer,
        status="denied" if statuses == {"denied"} else "answered",
        checks=tuple(outcomes),
        elapsed_ms=sent.elapsed_ms,
        enquiry=exchange.answer.enquiry,
        answer_digest=sent.answer_digest,
        log_id=sent.entry.id,
        exchange=exchange,
    )


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
