"""`enquiries verify`: the chain checked, against an earlier checkpoint and the witnesses'."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

from connector.crypto.jws import PublicKey, Signer
from connector.enquiries.archive import ArchiveCheck, check_archives
from connector.enquiries.checkpoints import read_checkpoint
from connector.enquiries.continuity import STATE_FILE, KeptLog, KeptState, what_is_wrong
from connector.enquiries.entry import VerifyReport
from connector.enquiries.log import EnquiryLog
from connector.protocol import Checkpoint, sign_checkpoint
from connector.settings.config import Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class Recalled:
    """What one witness returned of this node's checkpoints (those that verify with this
    node's key), or why it could not be asked."""

    peer: str
    checkpoints: tuple[Checkpoint, ...] = ()
    unverifiable: int = 0  # returned, but not signed by this node's key
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Mismatch:
    """A row this node vouched for that the log no longer holds as it was."""

    seq: int
    iat: int  # when the node signed the checkpoint
    found: str | None  # the log's hash of that row now; None: the row is gone

    @property
    def problem(self) -> str:
        return "cut" if self.found is None else "rewritten"


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessAudit:
    peer: str
    held: int
    unverifiable: int
    error: str | None
    newest: Checkpoint | None  # the newest checkpoint the witness holds
    last_good: int | None  # the newest witnessed row the log still holds unchanged
    mismatches: tuple[Mismatch, ...]  # oldest first
    archived: int = 0  # checkpoints of archived rows, not checked: no archive was given

    @property
    def ok(self) -> bool:
        return self.error is None and not self.mismatches


def audit_witnessed(
    recalled: Recalled, hash_at: Callable[[int], str | None], *, archived_upto: int = 0
) -> WitnessAudit:
    """Each checkpoint a witness kept, against the log: a row gone means the log was cut,
    another hash that it was rewritten (with the chain recomputed: a broken chain is caught
    without witnesses). A rewrite began after `last_good` and by the first mismatch.
    `hash_at` answers for archived rows (up to `archived_upto`) only when the archives were
    given: a row it does not know there is archived, not gone."""
    mismatches: list[Mismatch] = []
    good: list[int] = []
    archived = 0
    for c in sorted(recalled.checkpoints, key=lambda c: c.seq):
        found = hash_at(c.seq)
        if found is None and c.seq <= archived_upto:
            archived += 1
        elif found == c.hash:
            good.append(c.seq)
        else:
            mismatches.append(Mismatch(seq=c.seq, iat=c.iat, found=found))
    first_bad = mismatches[0].seq if mismatches else None
    return WitnessAudit(
        peer=recalled.peer,
        held=len(recalled.checkpoints),
        unverifiable=recalled.unverifiable,
        error=recalled.error,
        newest=max(recalled.checkpoints, key=lambda c: c.seq, default=None),
        last_good=max((s for s in good if first_bad is None or s < first_bad), default=None),
        mismatches=tuple(mismatches),
        archived=archived,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class KeptCheck:
    """The checkpoint the node keeps beside its log (enquiry-log-state.json), against it."""

    seq: int
    at: float
    problem: str | None  # what is wrong with the log, in words; None: it holds the row
    archived: bool = False  # its row is archived and no archive was given: not checked


@dataclass(frozen=True, slots=True, kw_only=True)
class Audit:
    report: VerifyReport
    checkpoint: tuple[int, str] | None  # the earlier checkpoint, (seq, hash), now proven
    token: str | None  # a new signed checkpoint of the head; None when the chain is broken
    witnesses: tuple[WitnessAudit, ...] | None = None  # None: not asked
    kept: KeptCheck | None = None  # None: no state file beside the log (a copy, a new node)
    archives: ArchiveCheck | None = None  # None: no archive file given

    @property
    def ok(self) -> bool:
        """The chain holds across the archives given and the table, and neither the kept
        checkpoint nor a witness holds a row the log lost or changed."""
        return (
            self.report.ok
            and (self.archives is None or self.archives.ok)
            and not any(w.mismatches for w in self.witnesses or ())
            and (self.kept is None or self.kept.problem is None)
        )


def audit_log(
    settings: Settings,
    *,
    expect: str | None,
    now: float,
    signer: Signer,
    keys: Sequence[PublicKey],
    witnessed: Sequence[Recalled] | None = None,
    archives: Sequence[Path] = (),
) -> Audit:
    """Verify the chain; `expect` (SEQ:HASH, or a signed checkpoint, which must verify with
    this node's key) also proves no rows up to it were cut off. With `archives` (the files
    `enquiries archive` wrote) the chain is checked from row 1 through every file into the
    table; without them from the table's base, what only archived rows could prove said to
    be not checked. A good chain gets a new checkpoint signed, to be kept off this host and
    given as `expect` later. `signer`: the key the node signs with now; `keys`: every key it
    publishes (over a rotation, the old and the new), which a checkpoint or an archive may be
    signed with."""
    checkpoint = None if expect is None else read_checkpoint(expect, keys=keys, node=settings.node)
    # The node's own checkpoint beside the log, checked as every start checks it: a log
    # cut or swapped since the node last wrote it is named here too, not only at start.
    state = KeptLog(settings.state_path(STATE_FILE), node=settings.node).read()
    # Of the archived rows, only the hashes of those a checkpoint names are kept in memory.
    wanted = {c.seq for r in witnessed or () for c in r.checkpoints}
    wanted |= {s.seq for s in (state,) if s is not None} | {c[0] for c in (checkpoint,) if c}
    checked = (
        check_archives(archives, keys=list(keys), node=settings.node, wanted=wanted)
        if archives
        else None
    )
    part = None if checked is None else checked.part
    with closing(EnquiryLog.open(settings.enquiries_url)) as log:
        base = log.base()
        if checked is not None and part is None:
            # The archives do not hold: the table is checked from its base, as without them.
            report = log.verify(expect=checkpoint)
        else:
            report = log.verify(expect=checkpoint, archived=part)
        # Witnesses mostly hold the same rows (the heads this node sent them all): each is
        # looked up once, however many witnesses hold it.
        live_hash = functools.cache(log.hash_at)

        def hash_at(seq: int) -> str | None:
            if seq <= base.seq:
                return None if part is None else part.hashes.get(seq)
            return live_hash(seq)

        witnesses = (
            None
            if witnessed is None
            else tuple(audit_witnessed(r, hash_at, archived_upto=base.seq) for r in witnessed)
        )
        kept = None if state is None or state.seq == 0 else _kept(state, log, base.seq, hash_at)
    audit = Audit(
        report=report,
        checkpoint=checkpoint,
        token=None,
        witnesses=witnesses,
        kept=kept,
        archives=checked,
    )
    if not audit.ok:
        # A cut or rewritten log can keep a whole chain: it gets no checkpoint to vouch for it.
        return audit
    token = sign_checkpoint(
        signer, node=settings.node, seq=report.last_seq, head=report.head, at=now
    )
    return replace(audit, token=token)


def _kept(
    state: KeptState, log: EnquiryLog, base_seq: int, hash_at: Callable[[int], str | None]
) -> KeptCheck:
    """The kept checkpoint as every start checks it; its row, if archived since, against
    the archives given, or said to be not checked."""
    if 0 < state.seq <= base_seq:
        found = hash_at(state.seq)
        if found is None:
            return KeptCheck(seq=state.seq, at=state.at, problem=None, archived=True)
        problem = (
            None
            if found == state.hash
            else f"does not hold row {state.seq} as this node logged it (the archived row differs)"
        )
        return KeptCheck(seq=state.seq, at=state.at, problem=problem)
    return KeptCheck(
        seq=state.seq, at=state.at, problem=what_is_wrong(state, log, file_missing=False)
    )
