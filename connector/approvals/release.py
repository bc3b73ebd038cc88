"""The responder's side of a release: a peer's signed request for it, answered once decided."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from connector.approvals.model import DENIED_REASON, EXPIRED_REASON, Approval
from connector.approvals.service import Approvals
from connector.crypto.jws import Signer
from connector.enquiries.entry import Entry, new_enquiry_id
from connector.enquiries.log import EnquiryLog
from connector.errors import ApprovalPending, ReleasePolledTooSoon, Replay, UnknownApproval
from connector.peers.trust import TrustStore
from connector.protocol import TYP_RELEASE, digest, open_envelope, parse_release, sign_released

log = structlog.get_logger(__name__)

# Pending approvals whose last poll is remembered; the oldest is forgotten beyond this.
MAX_POLLS_KEPT = 10_000


class Releaser:
    """Answers `POST /v1/release` (protocol.md §15.2). A request is opened like a query
    (§10 steps 1–17, typ `ncb-release+jwt`), then answered from the approval it names —
    only to the peer that asked the original query: any other gets the same 404 as for an
    id that does not exist. Each answered request is a row of the enquiry log."""

    def __init__(
        self,
        *,
        node: str,
        signer: Signer,
        approvals: Approvals,
        enquiry_log: EnquiryLog,
        trust: Callable[[], TrustStore],
        clock: Callable[[], float],
        retry_after: float = 15.0,
        polled: Callable[[str], None] | None = None,
    ) -> None:
        self.node = node
        # How soon a querier is told to ask again while an approval waits (this node's own
        # `approvals.poll_interval_s`); it may ask later.
        self.retry_after = retry_after
        self.signer = signer
        self.approvals = approvals
        self.log = enquiry_log
        self.trust = trust
        self.clock = clock
        # Told the peer of each poll answered `approval_pending` (ncb_release_polls_total).
        self.polled = polled
        # (peer, approval) → when its last poll was answered pending, oldest first.
        self._last_poll: dict[tuple[str, str], float] = {}

    async def release(self, token: bytes) -> bytes:
        now = self.clock()
        trust = self.trust()
        when = datetime.fromtimestamp(now, UTC)
        envelope = open_envelope(
            token,
            resolve_kid=lambda kid: trust.resolve(kid, when),
            me=self.node,
            now=now,
            typ=TYP_RELEASE,
        )
        if await self.log.seen(envelope.iss, envelope.jti):
            raise Replay("this jti was already used by this issuer", jti=envelope.jti)
        claims = parse_release(envelope)
        approval = self._theirs(claims.approval, envelope.iss)
        if approval.state == "pending":
            raise self._pending(approval, envelope.iss, now)
        results = released_results(approval)
        answer = sign_released(
            signer=self.signer,
            iss=self.node,
            aud=envelope.iss,
            in_reply_to=approval.query_jti,
            query_digest=approval.query_digest,
            enquiry=approval.enquiry,
            approval=approval.id,
            status=approval.state,
            results=results,
            now=now,
        )
        entry = Entry(
            id=new_enquiry_id(now),
            at=now,
            direction="in",
            peer=envelope.iss,
            iss=envelope.iss,
            jti=envelope.jti,
            sub=approval.sub,
            agency_kind=approval.agency_kind,
            purpose=approval.purpose,
            case_ref=approval.case_ref,
            decision="answered" if approval.state == "approved" else "denied",
            rules=approval.rules,
            policy_digest=approval.policy_digest,
            checks=tuple(
                {"id": h.check, "category": h.category.value, "criteria": dict(h.criteria)}
                for h in approval.held
            ),
            results=tuple(_summary(r, approval) for r in results),
            hit_refs=tuple(str(h["ref"]) for r in results for h in r.get("hits", ())),
            answer_digest=digest(answer),
            error=None,
            query_token=token.decode("ascii"),
        )
        # The row is committed before the release leaves, like any answer's.
        await self.log.append(entry)
        log.info(
            "approval_released",
            approval=approval.id,
            peer=envelope.iss,
            state=approval.state,
            enquiry=entry.id,
        )
        return answer

    def _pending(self, approval: Approval, peer: str, now: float) -> Exception:
        """The answer to a poll for an approval still waiting: `approval_pending`, or — for a
        peer asking again before half the `retry_after` it was given has passed — a 429
        refusal until it has (a peer's polls stay bounded, and only the refusals count as
        such). Each process of the node remembers the polls it answered."""
        retry = min(self.retry_after, max(1.0, approval.expires_at - now))
        key = (peer, approval.id)
        last = self._last_poll.get(key)
        if last is not None and now - last < retry / 2:
            return ReleasePolledTooSoon(
                "asked again before the retry_after given; wait for it",
                retry_after=max(1.0, last + retry - now),
            )
        self._last_poll.pop(key, None)
        self._last_poll[key] = now
        if len(self._last_poll) > MAX_POLLS_KEPT:
            del self._last_poll[next(iter(self._last_poll))]
        if self.polled is not None:
            self.polled(peer)
        return ApprovalPending(
            "an operator has not decided yet; ask again later",
            retry_after=retry,
            expires=int(approval.expires_at),
        )

    def _theirs(self, approval_id: str, peer: str) -> Approval:
        """The approval, if `peer` asked for it; otherwise the very refusal an unknown id
        gets, so a peer cannot tell another's approval from none."""
        try:
            approval = self.approvals.get(approval_id)
        except UnknownApproval:
            approval = None
        if approval is None or approval.peer != peer:
            raise UnknownApproval("no such approval for this node")
        return approval


def released_results(approval: Approval) -> list[dict[str, Any]]:
    """One result per check of the original query: as held when approved; the held checks
    `denied` (reason `approval_denied` or `expired`) otherwise, the others as answered."""
    if approval.state == "approved":
        return [dict(r) for r in approval.results]
    reason = EXPIRED_REASON if approval.state == "expired" else DENIED_REASON
    held = {h.check for h in approval.held}
    return [
        {"check": r["check"], "status": "denied", "level": "none", "hits": [], "reason": reason}
        if r["check"] in held
        else dict(r)
        for r in approval.results
    ]


def _summary(result: Mapping[str, Any], approval: Approval) -> dict[str, Any]:
    return {
        "check": result["check"],
        "status": result["status"],
        "level": result["level"],
        "hits": [h["ref"] for h in result.get("hits", ())],
        "approval": approval.id,
    }
