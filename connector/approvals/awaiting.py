"""The querier's side of a release: pending answers remembered, fetched once decided, logged."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson
import structlog
from aiohttp import web
from sqlalchemy import select

from connector.approvals.tables import awaited
from connector.enquiries.entry import Entry, new_enquiry_id, utc_iso
from connector.enquiries.log import Companion, EnquiryLog
from connector.errors import BadAnswer, PeerError, PeerRejected
from connector.notify.notice import Notice
from connector.notify.tables import notice_rows
from connector.peers.client import PeerClient
from connector.peers.trust import TrustStore
from connector.protocol import AnswerClaims, Query, digest, open_released, sign_release_request

log = structlog.get_logger(__name__)

# A peer that never answers a release is asked until a day after the approval's deadline.
GIVE_UP_AFTER_S = 86_400.0
MAX_BACKOFF_S = 600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Awaited:
    """A pending answer a peer gave us, as the agency's check sees it."""

    peer: str
    approval: str
    state: str  # pending | released | denied | expired | unknown
    request: str
    agency: str
    query_jti: str
    query_digest: str
    checks: tuple[str, ...]
    pending: tuple[dict[str, Any], ...]
    results: tuple[dict[str, Any], ...] | None
    created_at: float
    expires_at: float
    next_poll_at: float
    polls: int
    released_at: float | None
    release_enquiry: str | None

    def to_json(self) -> dict[str, Any]:
        """As `GET /local/v1/checks/{id}` shows it (docs/local-api.md)."""
        return {
            "peer": self.peer,
            "approval": self.approval,
            "state": self.state,
            "expires_at": utc_iso(self.expires_at),
            "released_at": None if self.released_at is None else utc_iso(self.released_at),
            "results": list(self.results if self.results is not None else self.pending),
        }

    def listed(self) -> dict[str, Any]:
        """As `approvals awaited --json` shows it (docs/operations.md §17): what this node
        waits for from a peer, never the records a release carries."""
        return {
            "peer": self.peer,
            "approval": self.approval,
            "state": self.state,
            "agency": self.agency,
            "check": self.request,
            "checks": list(self.checks),
            "since": utc_iso(self.created_at),
            "expires_at": utc_iso(self.expires_at),
            "next_poll_at": None if self.state != "pending" else utc_iso(self.next_poll_at),
            "polls": self.polls,
            "released_at": None if self.released_at is None else utc_iso(self.released_at),
            "release_enquiry": self.release_enquiry,
        }


def awaited_releases(enquiry_log: EnquiryLog, *, state: str | None, limit: int) -> list[Awaited]:
    """The releases this node waits for from peers (`state` pending) or has had, the first
    to expire first; `state` None for every one."""
    q = select(awaited).order_by(awaited.c.expires_at, awaited.c.created_at).limit(limit)
    if state is not None:
        q = q.where(awaited.c.state == state)
    with enquiry_log.engine.connect() as conn, conn.begin():
        return [_awaited(r._mapping) for r in conn.execute(q)]


def awaiting_rows(
    *,
    request: str,
    agency: str,
    query: Query,
    token: bytes,
    answer: AnswerClaims,
    now: float,
    poll_in: float,
) -> tuple[Companion, ...]:
    """A row per approval the peer's answer names, committed with our outbound row of the
    exchange: no pending answer is acknowledged to the agency without it."""
    by_approval: dict[str, int] = {}
    for r in answer.results:
        if r.approval is not None:
            by_approval[r.approval.id] = min(
                r.approval.expires, by_approval.get(r.approval.id, r.approval.expires)
            )
    pending = orjson.dumps([r.model_dump(mode="json") for r in answer.results]).decode()
    return tuple(
        Companion(
            table=awaited,
            values={
                "peer": answer.iss,
                "approval": approval,
                "state": "pending",
                "request": request,
                "agency": agency,
                "query_jti": query.jti,
                "query_digest": digest(token),
                "checks": orjson.dumps([c.id for c in query.checks]).decode(),
                "pending": pending,
                "results": None,
                "created_at": now,
                "expires_at": float(expires),
                "next_poll_at": now + poll_in,
                "polls": 0,
                "released_at": None,
                "release_enquiry": None,
            },
        )
        for approval, expires in by_approval.items()
    )


def _awaited(m: Any) -> Awaited:
    return Awaited(
        peer=m["peer"],
        approval=m["approval"],
        state=m["state"],
        request=m["request"],
        agency=m["agency"],
        query_jti=m["query_jti"],
        query_digest=m["query_digest"],
        checks=tuple(orjson.loads(m["checks"])),
        pending=tuple(orjson.loads(m["pending"])),
        results=None if m["results"] is None else tuple(orjson.loads(m["results"])),
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        next_poll_at=m["next_poll_at"],
        polls=m["polls"],
        released_at=m["released_at"],
        release_enquiry=m["release_enquiry"],
    )


def _values(a: Awaited) -> dict[str, Any]:
    return {
        "peer": a.peer,
        "approval": a.approval,
        "state": a.state,
        "request": a.request,
        "agency": a.agency,
        "query_jti": a.query_jti,
        "query_digest": a.query_digest,
        "checks": orjson.dumps(list(a.checks)).decode(),
        "pending": orjson.dumps(list(a.pending)).decode(),
        "results": None if a.results is None else orjson.dumps(list(a.results)).decode(),
        "created_at": a.created_at,
        "expires_at": a.expires_at,
        "next_poll_at": a.next_poll_at,
        "polls": a.polls,
        "released_at": a.released_at,
        "release_enquiry": a.release_enquiry,
    }


class Awaiting:
    """The `releases` job of a querier: each pending answer's release asked for by a signed
    request (protocol.md §15.2) until the responder's operator has decided; the released
    answer verified as an answer to our original query, logged, and kept for the agency."""

    def __init__(
        self,
        *,
        node: str,
        client: PeerClient,
        enquiry_log: EnquiryLog,
        trust: Callable[[], TrustStore],
        clock: Callable[[], float],
        poll_interval: float,
        agency_channels: Mapping[str, str] | None = None,
        agency_active: Callable[[str], bool] | None = None,
    ) -> None:
        self.node = node
        self.client = client
        self.log = enquiry_log
        self.trust = trust
        self.clock = clock
        self.poll_interval = poll_interval
        # Agency → the channel told when a release it waited for has come.
        self.agency_channels = dict(agency_channels or {})
        # Whether the agency that made a check can still read it (in agencies.json, enabled).
        self.agency_active = agency_active
        self.on_released: Callable[[Awaited], None] | None = None

    def for_request(self, request: str) -> list[Awaited]:
        """Every pending answer of one agency check, in the order they came."""
        q = select(awaited).where(awaited.c.request == request).order_by(awaited.c.created_at)
        with self.log.engine.connect() as conn, conn.begin():
            return [_awaited(r._mapping) for r in conn.execute(q)]

    def due(self) -> list[Awaited]:
        now = self.clock()
        q = select(awaited).where(awaited.c.state == "pending", awaited.c.next_poll_at <= now)
        with self.log.engine.connect() as conn, conn.begin():
            return [_awaited(r._mapping) for r in conn.execute(q)]

    async def run(self) -> None:
        """One pass: every release due asked for, one peer's failure not stopping the rest."""
        for a in self.due():
            try:
                await self.fetch(a)
            except Exception:
                log.exception("release_fetch_failed", peer=a.peer, approval=a.approval)

    async def fetch(self, a: Awaited) -> Awaited:
        now = self.clock()
        peer = self.trust().peers.get(a.peer)
        if peer is None:
            return self._later(a, now, "the peer is no longer in the trust store")
        token, jti = sign_release_request(
            self.client.signer, iss=self.node, aud=a.peer, approval=a.approval, now=now
        )
        try:
            body = await self.client.post(peer, "/v1/release", token)
            answer = open_released(
                body,
                keys=self.client.pinned_keys(peer),
                peer=a.peer,
                me=self.node,
                query_jti=a.query_jti,
                query_digest=a.query_digest,
                check_ids=a.checks,
                approval=a.approval,
                now=self.clock(),
            )
        except PeerRejected as exc:
            problem = exc.extra.get("peer_problem") or {}
            code = problem.get("code") if isinstance(problem, dict) else None
            if code in ("approval_pending", "release_polled_too_soon"):
                retry = problem.get("retry_after")
                wait = max(
                    self.poll_interval, float(retry) if isinstance(retry, int | float) else 0
                )
                return self._later(a, now, None, wait=wait)
            if code == "unknown_approval":
                return self._end(a, now, "unknown")
            return self._later(a, now, exc.detail)
        except (BadAnswer, PeerError) as exc:
            return self._later(a, now, exc.detail)
        return await self._released(a, token, jti, body, answer)

    async def _released(
        self, a: Awaited, token: bytes, jti: str, body: bytes, answer: AnswerClaims
    ) -> Awaited:
        now = self.clock()
        assert answer.approval is not None  # open_released requires it
        state = "released" if answer.approval.status == "approved" else answer.approval.status
        results = tuple(r.model_dump(mode="json", exclude_none=True) for r in answer.results)
        entry = Entry(
            id=new_enquiry_id(now),
            at=now,
            direction="out",
            peer=a.peer,
            iss=self.node,
            jti=jti,
            sub=None,
            agency_kind=None,
            purpose=None,
            case_ref=None,
            decision="answered" if state == "released" else "denied",
            rules=(),
            policy_digest=None,
            checks=tuple({"id": c} for c in a.checks),
            results=tuple(
                {
                    "check": r["check"],
                    "status": r["status"],
                    "level": r["level"],
                    "hits": [h["ref"] for h in r.get("hits", ())],
                    "peer_enquiry": answer.enquiry,
                    "approval": a.approval,
                }
                for r in results
            ),
            hit_refs=tuple(h["ref"] for r in results for h in r.get("hits", ())),
            answer_digest=digest(body),
            error=None,
            query_token=token.decode("ascii"),
        )
        done = replace(a, state=state, results=results, released_at=now, release_enquiry=entry.id)
        # The release, its row and the agency's notice commit together, once: the row's
        # jti is unique, and a release already recorded is never asked for again (its state
        # is no longer pending).
        await self.log.append(
            entry,
            (
                Companion(table=awaited, values=_values(done), replace=True),
                *self._notice(done, now),
            ),
        )
        log.info(
            "release_received",
            peer=a.peer,
            approval=a.approval,
            state=state,
            request=a.request,
            agency=a.agency,
        )
        if self.agency_active is not None and not self.agency_active(a.agency):
            # Kept all the same: the agency reads it once enabled again; its NCB is told.
            log.warning(
                "release_for_inactive_agency",
                agency=a.agency,
                request=a.request,
                peer=a.peer,
                approval=a.approval,
            )
        if self.on_released is not None:
            self.on_released(done)
        return done

    def _notice(self, a: Awaited, now: float) -> tuple[Companion, ...]:
        """The agency's notice that its release came, when connector.yaml names a channel
        for it: where to read it (the check's id), never the records themselves."""
        channel = self.agency_channels.get(a.agency)
        if channel is None:
            return ()
        notice = Notice(
            id=f"{a.approval}.{a.peer}.{channel}"[:96],
            channel=channel,
            kind="release",
            enquiry=a.release_enquiry,
            created_at=now,
            body={
                "type": "release",
                "node": self.node,
                "check": a.request,
                "agency": a.agency,
                "peer": a.peer,
                "approval": a.approval,
                "state": a.state,
                "at": utc_iso(now),
            },
        )
        return notice_rows([notice])

    def _later(self, a: Awaited, now: float, problem: str | None, *, wait: float = 0) -> Awaited:
        if now > a.expires_at + GIVE_UP_AFTER_S:
            return self._end(a, now, "unknown")
        backoff = min(MAX_BACKOFF_S, self.poll_interval * 2 ** min(a.polls, 6))
        later = replace(
            a,
            next_poll_at=now + max(wait, backoff if problem else self.poll_interval),
            polls=a.polls + 1,
        )
        if problem is not None:
            log.warning("release_not_fetched", peer=a.peer, approval=a.approval, problem=problem)
        self._store(later)
        return later

    def _end(self, a: Awaited, now: float, state: str) -> Awaited:
        ended = replace(a, state=state, next_poll_at=now)
        log.warning("release_abandoned", peer=a.peer, approval=a.approval, state=state)
        self._store(ended)
        return ended

    def _store(self, a: Awaited) -> None:
        self.log.commit_companions([Companion(table=awaited, values=_values(a), replace=True)])


AWAITING = web.AppKey("awaiting", Awaiting)
