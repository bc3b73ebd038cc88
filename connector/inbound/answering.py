"""The spine: verified query → policy → match → redact → log → signed answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import structlog

from connector.approvals.hold import hold
from connector.approvals.model import HeldCheck
from connector.crypto.jws import Signer
from connector.enquiries.entry import Entry, new_enquiry_id, utc_iso
from connector.enquiries.log import Companion, EnquiryLog
from connector.errors import InvalidCriteria, Replay
from connector.inbound.afis import Afis, AfisUnavailable
from connector.inbound.probing import Observation, ProbingDetector
from connector.inbound.ratelimit import Limiter
from connector.logs import RateLimitedLog
from connector.metrics import Metrics
from connector.notify.notice import (
    CheckOutcome,
    Notice,
    channels_to_notify,
    enquiry_notice_body,
)
from connector.notify.tables import notice_rows
from connector.peers.trust import TrustStore
from connector.policy import InboundDecision, Notify, Policy, ProbingAction
from connector.protocol import (
    Check,
    CheckResult,
    Hit,
    Query,
    digest,
    open_envelope,
    parse_query,
    sign_answer,
)
from connector.records.categories import fields_of
from connector.records.criteria import parse_criteria
from connector.records.kinds.base import Kind, Match, make_ref
from connector.records.store import RecordStore
from connector.settings.config import Matching, RefChecks
from connector.vocabulary import AnswerLevel, Category, current_name, wire_record

log = structlog.get_logger(__name__)

_DEFAULT_MATCHING = Matching()


@dataclass(frozen=True, slots=True, kw_only=True)
class Answered:
    """What the peer API sends back, and what notifications need to know later."""

    token: bytes
    enquiry: Entry
    query: Query


@dataclass(frozen=True, slots=True, kw_only=True)
class _Decided:
    check: Check
    decision: InboundDecision
    result: CheckResult
    hit_ids: tuple[str, ...] = ()  # matched record ids, known even when not revealed
    # A denied check a record watch may concern: searched once the answer has left.
    watch_criteria: Any | None = None
    probing: Observation | None = None  # this check made its subject suspected of probing
    # `release: approval` with hits: the result as released once an operator approves
    # (`result` then says pending, at level hit).
    released: CheckResult | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Owed:
    """An answered enquiry whose notices wait for the watch searches of its denied checks."""

    query: Query
    entry: Entry
    decided: list[_Decided]
    policy: Policy
    now: float


class Answerer:
    """Answers one query token. Collaborators are passed in; the policy and the trust store
    are read once per query so a reload never splits a query between two versions."""

    def __init__(
        self,
        *,
        node: str,
        signer: Signer,
        store: RecordStore,
        enquiry_log: EnquiryLog,
        policy: Callable[[], Policy],
        trust: Callable[[], TrustStore],
        limiter: Limiter,
        clock: Callable[[], float],
        digest_only: frozenset[str] = frozenset(),
        hit_threshold: Callable[[Category], float] = _DEFAULT_MATCHING.threshold,
        ref_checks: RefChecks = "disclosed",
        matching: Matching = _DEFAULT_MATCHING,
        watch_delay: float = 0.05,
        probing: ProbingDetector | None = None,
        metrics: Metrics | None = None,
        afis: Afis | None = None,
    ) -> None:
        self.node = node
        self.signer = signer
        self.store = store
        self.log = enquiry_log
        self.policy = policy
        self.trust = trust
        self.limiter = limiter
        self.clock = clock
        self.digest_only = digest_only  # channels told only by their periodic digest
        self.hit_threshold = hit_threshold  # for ranked checks (persons by name)
        self.ref_checks = ref_checks
        self.matching = matching  # a category's own thresholds (DNA: Kind.at_node)
        # Denied checks' watch searches, run this long after the first answer owing one, in
        # one batch whose notices share one commit.
        self.watch_delay = watch_delay
        self.probing = probing if probing is not None else ProbingDetector()
        self.metrics = metrics
        self.afis = afis  # the NCB's own AFIS answers fingerprint checks, when it has one
        # A peer decides how often it probes, so how often that is logged has a budget.
        self._probing_log = RateLimitedLog(
            "probing_suspected", clock=clock, per_key=5, total=50, key_field="peer"
        )
        self._owed: list[_Owed] = []
        self._owed_handle: asyncio.TimerHandle | None = None
        self._settling: set[asyncio.Task[None]] = set()

    async def answer(self, token: bytes) -> Answered:
        metrics = self.metrics
        started = metrics.now() if metrics is not None else 0.0
        now = self.clock()
        trust = self.trust()
        when = datetime.fromtimestamp(now, UTC)
        envelope = open_envelope(
            token, resolve_kid=lambda kid: trust.resolve(kid, when), me=self.node, now=now
        )
        if await self.log.seen(envelope.iss, envelope.jti):
            raise Replay("this jti was already used by this issuer", jti=envelope.jti)
        query = parse_query(envelope)
        parsed = [self._criteria(i, c) for i, c in enumerate(query.checks)]
        policy = self.policy()
        decided = [
            await self._decide(query, check, criteria, policy, now)
            for check, criteria in zip(query.checks, parsed, strict=True)
        ]
        enquiry_id = new_enquiry_id(now)
        held: tuple[Companion, ...] = ()
        if any(d.released is not None for d in decided):
            decided, held = self._hold(query, token, enquiry_id, decided, policy, now)
        # One pass over the checks gathers what the answer, the row and the counters need:
        # a generator per field costs more than the fields themselves for a one-check query.
        results: list[CheckResult] = []
        rules: list[str] = []
        summaries: list[dict[str, Any]] = []
        hit_refs: list[str] = []
        owes_watch = False
        for d in decided:
            results.append(d.result)
            rules.append(d.decision.rule or "(default deny)")
            summaries.append(_result_summary(d))
            hit_refs.extend(h.ref for h in d.result.hits)
            owes_watch = owes_watch or d.watch_criteria is not None
        answer = sign_answer(
            signer=self.signer,
            iss=self.node,
            aud=query.iss,
            in_reply_to=query.jti,
            query_digest=digest(token),
            enquiry=enquiry_id,
            results=results,
            now=now,
        )
        entry = Entry(
            id=enquiry_id,
            at=now,
            direction="in",
            peer=query.iss,
            iss=query.iss,
            jti=query.jti,
            sub=query.sub,
            agency_kind=query.agency_kind.value,
            purpose=query.purpose.value,
            case_ref=query.case,
            decision=_overall(results),
            rules=tuple(rules),
            policy_digest=policy.digest,
            checks=tuple(
                [
                    {"id": c.id, "category": c.category.value, "criteria": dict(c.criteria)}
                    for c in query.checks
                ]
            ),
            results=tuple(summaries),
            hit_refs=tuple(hit_refs),
            answer_digest=digest(answer),
            error=None,
            query_token=token.decode("ascii"),
        )
        if owes_watch:
            # A denied answer must not take longer when a record matches: the row is
            # committed and the answer sent without searching; the watch searches and the
            # enquiry's notices follow (docs/architecture.md, "Record watches").
            await self.log.append(entry, held)
            self._owe(_Owed(query=query, entry=entry, decided=decided, policy=policy, now=now))
        else:
            notices = self._notices(query, entry, decided, policy, now)
            # The row (and its notices) is committed before the answer leaves: no answer
            # without its evidence, no enquiry without its notice.
            await self.log.append(entry, (*notice_rows(notices), *held) if notices else held)
        if metrics is not None:
            # Counted once the row is committed: an answer that never left is not counted.
            # `query.iss` is the peer whose pinned key verified the token.
            for d in decided:
                metrics.answered(query.iss, d.check.category, d.result.status, d.decision.rule)
                if d.result.reason == "rate_limited" and d.decision.rule is not None:
                    metrics.rate_limited(query.iss, d.decision.rule)
            metrics.inbound_answer_seconds.observe(metrics.now() - started)
        for d in decided:
            if d.probing is not None:
                self._probing_log(
                    query.iss,
                    d.check.category.value,
                    category=d.check.category.value,
                    distinct=d.probing.distinct,
                    window=policy.probing.window_text,
                    action=policy.probing.action.value,
                    enquiry=enquiry_id,
                    check=d.check.id,
                )
        log.info(
            "enquiry_answered",
            enquiry=enquiry_id,
            peer=query.iss,
            purpose=query.purpose.value,
            decision=entry.decision,
            rules=rules,
            hits=len(hit_refs),
        )
        return Answered(token=answer, enquiry=entry, query=query)

    def _hold(
        self,
        query: Query,
        token: bytes,
        enquiry_id: str,
        decided: list[_Decided],
        policy: Policy,
        now: float,
    ) -> tuple[list[_Decided], tuple[Companion, ...]]:
        """The checks whose rule says `release: approval` answered pending, at level hit,
        under one approval for the enquiry; its row and notices commit with the enquiry."""
        approval_id = new_enquiry_id(now)
        waiting = [d for d in decided if d.released is not None]
        expires_in = min(d.decision.approval_expires for d in waiting)
        level = max((d.decision.level for d in waiting), key=lambda lv: lv.rank)
        claim = {
            "id": approval_id,
            "status": "pending",
            "level": level.value,
            "expires": int(now + expires_in),
        }
        pending = [
            replace(d, result=replace(d.result, approval=claim)) if d.released is not None else d
            for d in decided
        ]
        _, rows = hold(
            node=self.node,
            approval_id=approval_id,
            enquiry=enquiry_id,
            peer=query.iss,
            query_jti=query.jti,
            query_digest=digest(token),
            sub=query.sub,
            agency_kind=query.agency_kind.value,
            purpose=query.purpose.value,
            case_ref=query.case,
            policy_digest=policy.digest,
            held=[
                HeldCheck(
                    check=d.check.id,
                    category=d.check.category,
                    criteria=dict(d.check.criteria),
                    rule=d.decision.rule or "",
                    level=d.decision.level,
                    hits=tuple(h.claims() for h in d.released.hits),
                )
                for d in waiting
                if d.released is not None
            ],
            results=[(d.released or d.result).claims() for d in decided],
            channels=[
                c for d in waiting for c in (d.decision.approval_channels or policy.channels)
            ],
            expires_in=expires_in,
            now=now,
        )
        return pending, rows

    def _owe(self, owed: _Owed) -> None:
        self._owed.append(owed)
        if self._owed_handle is None:
            self._owed_handle = asyncio.get_running_loop().call_later(
                self.watch_delay, self._settle_owed
            )

    def _settle_owed(self) -> None:
        self._owed_handle = None
        batch, self._owed = self._owed, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._watch_notices(batch))
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)

    async def _watch_notices(self, batch: list[_Owed]) -> None:
        """Each owed enquiry's denied checks searched, its notices made, all committed in one
        transaction. A failure is logged: the enquiries are in the log, their notices not."""
        try:
            rows: list[Companion] = []
            for owed in batch:
                decided = [
                    d
                    if d.watch_criteria is None
                    else replace(
                        d,
                        hit_ids=tuple(
                            m.record.id for m in await self._watched(d.check, d.watch_criteria)
                        ),
                    )
                    for d in owed.decided
                ]
                notices = self._notices(owed.query, owed.entry, decided, owed.policy, owed.now)
                rows.extend(notice_rows(notices))
            if rows:
                self.log.commit_companions(rows)
        except Exception:
            log.exception("watch_notices_failed", enquiries=[o.entry.id for o in batch])

    async def drain(self) -> None:
        """The watch searches still owed, done now (a stopping node, before the log closes)."""
        if self._owed_handle is not None:
            self._owed_handle.cancel()
            self._settle_owed()
        while self._settling:
            await asyncio.gather(*self._settling)

    def _notices(
        self, query: Query, entry: Entry, decided: list[_Decided], policy: Policy, now: float
    ) -> list[Notice]:
        if not policy.watches and all(
            d.decision.notify is Notify.NEVER and d.probing is None for d in decided
        ):
            return []  # the common case, kept cheap: nothing here can notify anyone
        outcomes = [
            CheckOutcome(
                check=d.check.id,
                category=d.check.category,
                decision=d.decision,
                status=d.result.status,
                level=d.result.level.value,
                hit_ids=d.hit_ids,
                refs=tuple(h.ref for h in d.result.hits),
                probing=d.probing.distinct if d.probing is not None else 0,
            )
            for d in decided
        ]
        channels = channels_to_notify(peer=query.iss, outcomes=outcomes, policy=policy)
        return [
            # The enquiry's id and the channel make the notice's id (and idempotency key):
            # unique, stable, and with no second random id to draw per answer.
            Notice(
                id=f"{entry.id}.{channel}",
                channel=channel,
                kind="enquiry",
                enquiry=entry.id,
                created_at=now,
                body=enquiry_notice_body(
                    node=self.node,
                    enquiry=entry.id,
                    at=utc_iso(now),
                    peer=query.iss,
                    sub=query.sub,
                    agency_kind=query.agency_kind.value,
                    purpose=query.purpose.value,
                    case=query.case,
                    checks=entry.checks,
                    outcomes=outcomes,
                    reasons=reasons,
                ),
            )
            for channel, reasons in channels.items()
            if channel not in self.digest_only
        ]

    @staticmethod
    def _criteria(index: int, check: Check) -> Any | None:
        try:
            return parse_criteria(check.category, check.criteria)
        except InvalidCriteria as exc:
            # The member as the peer spelled it: a v1 peer sent `number`, not `document_number`.
            field = exc.field
            if field not in check.criteria:
                spelled = (n for n in check.criteria if current_name(check.category, n) == field)
                field = next(spelled, field)
            raise InvalidCriteria(
                exc.detail, field=f"checks.{index}.criteria.{field}", check=check.id
            ) from exc

    async def _decide(
        self, query: Query, check: Check, criteria: Any | None, policy: Policy, now: float
    ) -> _Decided:
        decision = policy.decide_inbound(
            peer=query.iss,
            agency_kind=query.agency_kind,
            purpose=query.purpose,
            category=check.category,
            has_case=query.case is not None,
        )
        if decision.level is AnswerLevel.NONE:
            result = CheckResult(
                check=check.id,
                status="denied",
                level=AnswerLevel.NONE,
                reason=decision.reason or "policy",
            )
            return _Decided(
                check=check,
                decision=decision,
                result=result,
                watch_criteria=self._watch_criteria(check, criteria, policy),
            )
        if criteria is None:
            # Nothing is revealed, so the level says none and no rate budget is spent.
            result = CheckResult(
                check=check.id, status="error", level=AnswerLevel.NONE, reason="category_not_held"
            )
            return _Decided(check=check, decision=decision, result=result)
        if not await self._ref_given(query.iss, check, criteria):
            # Follow-ups name a record this node gave the peer; any other reference is a
            # guess (national numbers run in sequence), answered the same whether the
            # record exists or not.
            result = CheckResult(
                check=check.id, status="error", level=AnswerLevel.NONE, reason="ref_not_disclosed"
            )
            return _Decided(check=check, decision=decision, result=result)
        searched: Any | None = criteria
        unused: tuple[str, ...] = ()
        if decision.restricted:
            # The policy searches only some fields at this level: the criteria compared with
            # the others are left out, and the peer is told which (protocol.md §7.2).
            kind = self.store.kind(check.category)
            if kind is not None:
                searched = kind.restrict(criteria, decision.searched)
            # Named as the peer spelled them (a v1 peer's `number` is our `document_number`).
            unused = tuple(
                name
                for name in check.criteria
                if current_name(check.category, name) in decision.unused
            )
        suspected = None
        if decision.hides and searched is not None and policy.probing.enabled:
            seen = self._observe(query.iss, check, searched, policy, now)
            if seen is not None and seen.verdict != "ok":
                if policy.probing.action is ProbingAction.DENY:
                    result = CheckResult(
                        check=check.id,
                        status="denied",
                        level=AnswerLevel.NONE,
                        reason="probing_suspected",
                        retry_after=seen.until - now,
                    )
                    return _Decided(
                        check=check,
                        decision=decision,
                        result=result,
                        watch_criteria=self._watch_criteria(check, criteria, policy),
                        probing=seen if seen.verdict == "suspected" else None,
                    )
                if seen.verdict == "suspected":
                    suspected = seen
        if decision.rate is not None and decision.rule is not None:
            allowed, retry_after = self.limiter.try_acquire(
                (query.iss, decision.rule), decision.rate
            )
            if not allowed:
                result = CheckResult(
                    check=check.id,
                    status="denied",
                    level=AnswerLevel.NONE,
                    reason="rate_limited",
                    retry_after=retry_after,
                )
                return _Decided(
                    check=check,
                    decision=decision,
                    result=result,
                    watch_criteria=self._watch_criteria(check, criteria, policy),
                    probing=suspected,
                )
        try:
            found = [] if searched is None else await self._search(check, searched)
        except AfisUnavailable as exc:
            # Not knowing is not a no-hit: the peer is told the check could not be answered.
            log.warning("afis_unavailable", check=check.id, error=str(exc))
            result = CheckResult(
                check=check.id, status="error", level=AnswerLevel.NONE, reason="afis_unavailable"
            )
            return _Decided(check=check, decision=decision, result=result)
        hidden = fields_of(check.category) - decision.fields
        kind = self.store.kind(check.category)
        examined = kind is not None and kind.verification_required
        hits = tuple(
            Hit(
                ref=make_ref(self.node, check.category, m.record.id),
                score=_visible_score(m.score, m.reasons, decision.level, hidden),
                record=wire_record(check.category, _visible(m.record.fields, decision)),
                # Why a fuzzy match scored as it did is part of the record's detail: shown
                # from `summary` on, never at `hit`.
                reasons=_visible_reasons(m.reasons, decision.level, hidden),
                verification_required=examined,
            )
            for m in found
        )
        result = CheckResult(
            check=check.id,
            status="hit" if hits else "no_hit",
            level=decision.level,
            hits=hits,
            unused_criteria=unused,
        )
        if decision.held and hits:
            # Only the refs leave now, as a `hit`-level rule would give them; the detail
            # waits for an operator (protocol.md §15).
            return _Decided(
                check=check,
                decision=decision,
                result=replace(
                    result,
                    level=AnswerLevel.HIT,
                    hits=tuple(Hit(ref=h.ref, score=1.0) for h in hits),
                ),
                hit_ids=tuple(m.record.id for m in found),
                probing=suspected,
                released=result,
            )
        return _Decided(
            check=check,
            decision=decision,
            result=result,
            hit_ids=tuple(m.record.id for m in found),
            probing=suspected,
        )

    def _observe(
        self, peer: str, check: Check, searched: Any, policy: Policy, now: float
    ) -> Observation | None:
        """Count this check towards probing of its subject; None when it names none."""
        kind = self.store.kind(check.category)
        subject = kind.subject(searched) if kind is not None else None
        if kind is None or subject is None:
            return None
        return self.probing.observe(
            peer=peer,
            subject=hash((check.category, subject)),
            # What is searched, not what was sent: criteria the level does not use tell
            # the peer nothing, however they vary.
            variant=kind.variant(searched),
            now=now,
            window=policy.probing.window,
            distinct=policy.probing.distinct,
        )

    async def _ref_given(self, peer: str, check: Check, criteria: Any) -> bool:
        kind = self.store.kind(check.category)
        record_id = kind.reference(criteria) if kind is not None else None
        if record_id is None or self.ref_checks == "any":
            return True
        ref = make_ref(self.node, check.category, record_id)
        return ref in await self.log.disclosed(peer, [ref])

    @staticmethod
    def _watch_criteria(check: Check, criteria: Any | None, policy: Policy) -> Any | None:
        """For a denied check, the criteria to search by anyway when a watch names a record
        of its category: the NCB asked to hear of any enquiry touching that record. Nothing
        is revealed, and the search runs after the answer has left."""
        if criteria is None:
            return None
        if not any(w.record_category == check.category for w in policy.watches):
            return None
        return criteria

    async def _watched(self, check: Check, criteria: Any) -> list[Match]:
        """A denied check's watch search; an AFIS that cannot answer finds nothing to tell."""
        try:
            return await self._search(check, criteria)
        except AfisUnavailable:
            return []

    async def _search(self, check: Check, criteria: Any) -> list[Match]:
        """The store's matches; for a ranked check only those at or above the category's
        hit threshold, so that every answer level (`hit` included) says the same thing."""
        if self.afis is not None and check.category is Category.FINGERPRINTS:
            return await self.afis.candidates(criteria, check.limit)
        kind = self.store.kind(check.category)
        if kind is not None:
            criteria = kind.at_node(criteria, self.matching)
        found = await self.store.search(check.category, criteria, check.limit)
        return passing(kind, criteria, found, self.hit_threshold(check.category))


def passing(kind: Kind | None, criteria: Any, found: list[Match], threshold: float) -> list[Match]:
    """The matches that are hits: all of an exact lookup's, a ranked search's from the
    threshold on."""
    if kind is None or not kind.ranked(criteria):
        return found
    return [m for m in found if m.score >= threshold]


def _visible(record: Mapping[str, Any], decision: InboundDecision) -> dict[str, Any]:
    """Only the fields the level reveals, minus those the rule redacts (`fields` is both)."""
    return {k: v for k, v in record.items() if k in decision.fields}


def _visible_score(
    score: float,
    reasons: tuple[Mapping[str, Any], ...] | None,
    level: AnswerLevel,
    hidden: frozenset[str],
) -> float:
    """A score lowered by a field the peer may not see would tell that field's value (try
    birth years one by one until the score changes): then the score says only "a hit"."""
    if level < AnswerLevel.SUMMARY:
        return 1.0
    if any(r.get("field") in hidden for r in reasons or ()):
        return 1.0
    return score


def _visible_reasons(
    reasons: tuple[Mapping[str, Any], ...] | None, level: AnswerLevel, hidden: frozenset[str]
) -> tuple[Mapping[str, Any], ...] | None:
    """Reasons are detail: none at `hit` level, and none that name a record field the level
    (or a redaction) hides, since saying where a word was found tells what the field holds."""
    if reasons is None or level < AnswerLevel.SUMMARY:
        return None
    return tuple(r for r in reasons if r.get("field") not in hidden)


def _result_summary(d: _Decided) -> dict[str, Any]:
    out: dict[str, Any] = {
        "check": d.check.id,
        "category": d.check.category.value,
        "status": d.result.status,
        "level": d.result.level.value,
        "rule": d.decision.rule,
        "hits": [h.ref for h in d.result.hits],
    }
    if d.result.reason:
        out["reason"] = d.result.reason
    if d.result.approval is not None:
        out["approval"] = d.result.approval["id"]
    return out


def _overall(results: Sequence[CheckResult]) -> Any:
    statuses = {r.status for r in results}
    if statuses == {"denied"}:
        return "denied"
    if statuses == {"error"}:
        return "error"
    if "denied" in statuses or "error" in statuses:
        return "partial"
    return "answered"
