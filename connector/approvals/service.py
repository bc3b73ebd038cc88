"""THE approvals service: list, show, approve, deny and expire releases held for an operator.

Every way an operator decides goes through `Approvals`: the `approvals` commands and the
operator console's pages call the same methods, so a decision is recorded one way — a row
in the enquiry log (the decision's own `(iss, jti)`, unique, so an approval is decided
once, whoever comes second gets `ApprovalDecided`), the approval's row rewritten in the
same transaction, then an entry in the admin audit trail naming the operator.

A web handler of the running node calls it like this (the node puts one instance, built
on the log it serves, into each app that needs it under `APPROVALS`)::

    approvals = request.app[APPROVALS]
    pending = approvals.list(state="pending")            # newest deadline first
    one = approvals.get(request.match_info["id"])        # UnknownApproval (404) if none
    # ApprovalDecided (409): decided meanwhile; InvalidRequest (422): no reason given
    one = await approvals.approve(one.id, operator=Actor(kind="console", name=account),
                                  reason=form["reason"])
    one = await approvals.deny(one.id, operator=..., reason=...)

Reads run on the event loop and are small (one indexed table); a decision awaits the
log's group commit, then appends to the trail in a worker thread. The errors are
`ConnectorError`s: `server/problems` renders them, a command prints them (exit 2).
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import structlog
from aiohttp import web
from sqlalchemy import Engine, func, select, update

from connector.approvals.model import (
    Approval,
    Decision,
    HeldCheck,
    State,
    Verdict,
)
from connector.approvals.notices import notices
from connector.approvals.tables import approvals
from connector.enquiries.entry import Entry, new_enquiry_id, utc_iso
from connector.enquiries.log import Companion, EnquiryLog
from connector.errors import (
    ApprovalDecided,
    AuditTrailError,
    InvalidRequest,
    Replay,
    UnknownApproval,
)
from connector.notify.tables import notice_rows
from connector.trail.entry import Action, Actor
from connector.trail.file import record

log = structlog.get_logger(__name__)

MAX_REASON = 500  # characters: a sentence or two, kept in the log and the trail


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingFigures:
    """What `/metrics` reports of the approvals waiting: how many, and the next deadline."""

    count: int
    next_expiry: float | None


def pending_figures(engine: Engine) -> PendingFigures:
    """Read on a connection of its own (a metrics worker thread)."""
    q = select(func.count(), func.min(approvals.c.expires_at)).where(approvals.c.state == "pending")
    with engine.connect() as conn, conn.begin():
        count, soonest = conn.execute(q).one()
    return PendingFigures(count=int(count), next_expiry=soonest)


def decision_jti(approval_id: str) -> str:
    """The decision row's jti: one per approval, so the log's unique (iss, jti) index lets
    exactly one decision commit, whichever process (a command, the console, the expiry
    job) gets there first."""
    return f"approval.{approval_id}"


class Approvals:
    """The approvals of one node, read from and decided into its enquiry log's database."""

    def __init__(
        self,
        *,
        node: str,
        enquiry_log: EnquiryLog,
        trail: Path,
        clock: Callable[[], float],
    ) -> None:
        self.node = node
        self.log = enquiry_log
        self.trail = trail  # the admin audit trail's file
        self.clock = clock

    # --- reading ---------------------------------------------------------------------------

    def list(self, *, state: State | None = "pending", limit: int = 200) -> list[Approval]:
        """Approvals in `state` (None: all), pending ones by deadline (the most urgent
        first), decided ones newest first."""
        q = select(approvals)
        if state is not None:
            q = q.where(approvals.c.state == state)
        q = q.order_by(
            approvals.c.expires_at if state == "pending" else approvals.c.created_at.desc()
        ).limit(limit)
        with self.log.engine.connect() as conn, conn.begin():
            return [approval_of(r._mapping) for r in conn.execute(q)]

    def get(self, approval_id: str) -> Approval:
        with self.log.engine.connect() as conn, conn.begin():
            row = conn.execute(select(approvals).where(approvals.c.id == approval_id)).first()
        if row is None:
            raise UnknownApproval(f"no approval {approval_id!r} on this node")
        return approval_of(row._mapping)

    def count_pending(self) -> int:
        with self.log.engine.connect() as conn, conn.begin():
            q = select(func.count()).select_from(approvals).where(approvals.c.state == "pending")
            return int(conn.execute(q).scalar_one())

    # --- deciding --------------------------------------------------------------------------

    async def approve(self, approval_id: str, *, operator: Actor, reason: str) -> Approval:
        """Release the held answer to the peer that asked; it fetches it (protocol.md §15)."""
        return await self._decide(approval_id, "approved", operator=operator, reason=reason)

    async def deny(self, approval_id: str, *, operator: Actor, reason: str) -> Approval:
        """Refuse the release: the peer's fetch gets the held checks `denied`."""
        return await self._decide(approval_id, "denied", operator=operator, reason=reason)

    async def expire_due(self) -> builtins.list[Approval]:
        """Every pending approval past its deadline, denied with reason `expired` (the
        scheduler's `approvals` job). One decided meanwhile by an operator is left alone."""
        now = self.clock()
        q = select(approvals.c.id).where(
            approvals.c.state == "pending", approvals.c.expires_at <= now
        )
        with self.log.engine.connect() as conn, conn.begin():
            due = [i for (i,) in conn.execute(q)]
        expired: builtins.list[Approval] = []
        for approval_id in due:
            try:
                expired.append(await self._decide(approval_id, "expired", operator=None))
            except ApprovalDecided:
                continue
        return expired

    def remind_due(self) -> builtins.list[str]:
        """A reminder to the channels of each pending approval whose reminder time has come
        (the same job). Claimed by one update, so two nodes' jobs on one database send it
        once; a crash between the claim and the notice loses that reminder, never repeats it."""
        now = self.clock()
        q = select(approvals).where(approvals.c.state == "pending", approvals.c.remind_at <= now)
        with self.log.engine.connect() as conn, conn.begin():
            due = [approval_of(r._mapping) for r in conn.execute(q)]
        reminded = []
        for a in due:
            with self.log.engine.connect() as conn:
                conn.info["write"] = True
                with conn.begin():
                    claimed = conn.execute(
                        update(approvals)
                        .where(
                            approvals.c.id == a.id,
                            approvals.c.state == "pending",
                            approvals.c.remind_at.is_not(None),
                        )
                        .values(remind_at=None)
                    ).rowcount
            if claimed and a.channels:
                self.log.commit_companions(
                    notice_rows(notices(self.node, a, "approval_reminder", now))
                )
            if claimed:
                reminded.append(a.id)
                log.info("approval_reminded", approval=a.id, expires_at=utc_iso(a.expires_at))
        return reminded

    async def _decide(
        self,
        approval_id: str,
        verdict: Verdict,
        *,
        operator: Actor | None,
        reason: str = "expired",
    ) -> Approval:
        reason = " ".join(reason.split())
        if not reason:
            raise InvalidRequest("a decision needs a reason: say why, in a sentence")
        if len(reason) > MAX_REASON:
            raise InvalidRequest(f"the reason is {len(reason)} characters: at most {MAX_REASON}")
        now = self.clock()
        held = self.get(approval_id)
        if held.state != "pending":
            raise ApprovalDecided(
                f"approval {approval_id} is already {held.state}", state=held.state
            )
        if verdict != "expired" and held.expires_at <= now:
            raise ApprovalDecided(
                f"approval {approval_id} expired at {utc_iso(held.expires_at)}; "
                "it is denied with reason expired",
                state="expired",
            )
        entry_id = new_enquiry_id(now)
        decision = Decision(
            verdict=verdict, at=now, operator=operator, reason=reason, enquiry=entry_id
        )
        decided = _with(held, decision)
        try:
            await self.log.append(
                decision_entry(self.node, decided, decision),
                (Companion(table=approvals, values=row_values(decided), replace=True),),
            )
        except Replay as exc:
            raise ApprovalDecided(
                f"approval {approval_id} was decided meanwhile; nothing changed"
            ) from exc
        log.info(
            "approval_decided",
            approval=approval_id,
            verdict=verdict,
            peer=held.peer,
            enquiry=held.enquiry,
            operator=None if operator is None else operator.shown,
        )
        if operator is not None:
            await asyncio.to_thread(self._record, decided, decision, operator)
        return decided

    def _record(self, approval: Approval, decision: Decision, operator: Actor) -> None:
        action = (
            Action.APPROVAL_APPROVED if decision.verdict == "approved" else Action.APPROVAL_DENIED
        )
        try:
            record(
                self.trail,
                actor=operator,
                action=action,
                target=approval.id,
                details={
                    "peer": approval.peer,
                    "enquiry": approval.enquiry,
                    "rules": list(approval.rules),
                    "refs": list(approval.refs[:10]),
                    "reason": decision.reason,
                    "log_row": decision.enquiry,
                },
                now=decision.at,
            )
        except AuditTrailError as exc:
            raise AuditTrailError(
                f"the decision was made and logged, but not recorded in the admin audit "
                f"trail: {exc.detail}"
            ) from exc


def _with(held: Approval, decision: Decision) -> Approval:
    """The approval decided. Refused or expired, what it held is dropped with the decision:
    the records' fields never leave, so nothing keeps them here either; refs stay."""
    if decision.verdict == "approved":
        return replace(held, state=decision.verdict, decision=decision, remind_at=None)
    checks = {h.check for h in held.held}
    return replace(
        held,
        state=decision.verdict,
        decision=decision,
        remind_at=None,
        held=tuple(
            replace(h, hits=tuple({"ref": r, "score": 1.0, "record": {}} for r in h.refs))
            for h in held.held
        ),
        results=tuple(
            {**r, "hits": [{"ref": x["ref"], "score": 1.0, "record": {}} for x in r["hits"]]}
            if r["check"] in checks
            else r
            for r in held.results
        ),
    )


def decision_entry(node: str, approval: Approval, decision: Decision) -> Entry:
    """The enquiry-log row of a decision: issued by this node about the peer's enquiry,
    the operator and the reason in its result, nothing released in it."""
    return Entry(
        id=decision.enquiry,
        at=decision.at,
        direction="in",
        peer=approval.peer,
        iss=node,
        jti=decision_jti(approval.id),
        sub=approval.sub,
        agency_kind=approval.agency_kind,
        purpose=approval.purpose,
        case_ref=approval.case_ref,
        decision="answered" if decision.verdict == "approved" else "denied",
        rules=approval.rules,
        policy_digest=approval.policy_digest,
        checks=tuple(
            {"id": h.check, "category": h.category.value, "criteria": dict(h.criteria)}
            for h in approval.held
        ),
        results=(
            {
                "approval": approval.id,
                "verdict": decision.verdict,
                "enquiry": approval.enquiry,
                "operator": None if decision.operator is None else decision.operator.to_json(),
                "reason": decision.reason,
                "refs": list(approval.refs),
            },
        ),
        hit_refs=(),
        answer_digest=None,
        error=None,
        query_token="",
    )


def row_values(a: Approval) -> dict[str, Any]:
    """The approval as its table row."""
    d = a.decision
    return {
        "id": a.id,
        "state": a.state,
        "peer": a.peer,
        "enquiry": a.enquiry,
        "query_jti": a.query_jti,
        "query_digest": a.query_digest,
        "sub": a.sub,
        "agency_kind": a.agency_kind,
        "purpose": a.purpose,
        "case_ref": a.case_ref,
        "policy_digest": a.policy_digest,
        "held": orjson.dumps([h.to_json() for h in a.held]).decode(),
        "results": orjson.dumps([dict(r) for r in a.results]).decode(),
        "channels": orjson.dumps(list(a.channels)).decode(),
        "created_at": a.created_at,
        "expires_at": a.expires_at,
        "remind_at": a.remind_at,
        "decided_at": None if d is None else d.at,
        "decided_by": None
        if d is None or d.operator is None
        else orjson.dumps(d.operator.to_json()).decode(),
        "reason": None if d is None else d.reason,
        "decision_enquiry": None if d is None else d.enquiry,
    }


def approval_of(m: Any) -> Approval:
    """The approval a table row holds."""
    decision = None
    if m["state"] != "pending":
        decision = Decision(
            verdict=m["state"],
            at=m["decided_at"],
            operator=None
            if m["decided_by"] is None
            else Actor.from_json(orjson.loads(m["decided_by"])),
            reason=m["reason"] or "",
            enquiry=m["decision_enquiry"] or "",
        )
    return Approval(
        id=m["id"],
        state=m["state"],
        peer=m["peer"],
        enquiry=m["enquiry"],
        query_jti=m["query_jti"],
        query_digest=m["query_digest"],
        sub=m["sub"],
        agency_kind=m["agency_kind"],
        purpose=m["purpose"],
        case_ref=m["case_ref"],
        policy_digest=m["policy_digest"],
        held=tuple(HeldCheck.from_json(h) for h in orjson.loads(m["held"])),
        results=tuple(orjson.loads(m["results"])),
        channels=tuple(orjson.loads(m["channels"])),
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        remind_at=m["remind_at"],
        decision=decision,
    )


APPROVALS = web.AppKey("approvals", Approvals)
