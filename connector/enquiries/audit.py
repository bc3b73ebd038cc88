"""`enquiries verify`: the chain checked, against an earlier checkpoint and the witnesses'."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, replace

from connector.crypto.jws import Signer
from connector.crypto.keyfiles import read_signing_key
from connector.enquiries.checkpoints import read_checkpoint
from connector.enquiries.continuity import STATE_FILE, KeptLog, what_is_wrong
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

    @property
    def ok(self) -> bool:
        return self.error is None and not self.mismatches


def audit_witnessed(recalled: Recalled, hash_at: Callable[[int], str | None]) -> WitnessAudit:
    """Each checkpoint a witness kept, against the log: a row gone means the log was cut,
    another hash that it was rewritten (with the chain recomputed: a broken chain is caught
    without witnesses). A rewrite began after `last_good` and by the first mismatch."""
    mismatches: list[Mismatch] = []
    good: list[int] = []
    for c in sorted(recalled.checkpoints, key=lambda c: c.seq):
        found = hash_at(c.seq)
        if found == c.hash:
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
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class KeptCheck:
    """The checkpoint the node keeps beside its log (enquiry-log-state.json), against it."""

    seq: int
    at: float
    problem: str | None  # what is wrong with the log, in words; None: it holds the row


@dataclass(frozen=True, slots=True, kw_only=True)
class Audit:
    report: VerifyReport
    checkpoint: tuple[int, str] | None  # the earlier checkpoint, (seq, hash), now proven
    token: str | None  # a new signed checkpoint of the head; None when the chain is broken
    witnesses: tuple[WitnessAudit, ...] | None = None  # None: not asked
    kept: KeptCheck | None = None  # None: no state file beside the log (a copy, a new node)

    @property
    def ok(self) -> bool:
        """The chain holds, and neither the kept checkpoint nor a witness holds a row the log
        lost or changed."""
        return (
            self.report.ok
            and not any(w.mismatches for w in self.witnesses or ())
            and (self.kept is None or self.kept.problem is None)
        )


def audit_log(
    settings: Settings,
    *,
    expect: str | None,
    now: float,
    witnessed: Sequence[Recalled] | None = None,
) -> Audit:
    """Verify the chain; `expect` (SEQ:HASH, or a signed checkpoint, which must verify with
    this node's key) also proves no rows up to it were cut off. A good chain gets a new
    checkpoint signed, to be kept off this host and given as `expect` later."""
    signer = Signer(read_signing_key(settings.path(settings.key_file)))
    checkpoint = (
        None if expect is None else read_checkpoint(expect, key=signer.public, node=settings.node)
    )
    # The node's own checkpoint beside the log, checked as every start checks it: a log
    # cut or swapped since the node last wrote it is named here too, not only at start.
    state = KeptLog(settings.state_path(STATE_FILE), node=settings.node).read()
    with closing(EnquiryLog.open(settings.enquiries_url)) as log:
        report = log.verify(expect=checkpoint)
        # Witnesses mostly hold the same rows (the heads this node sent them all): each is
        # looked up once, however many witnesses hold it.
        hash_at = functools.cache(log.hash_at)
        witnesses = (
            None if witnessed is None else tuple(audit_witnessed(r, hash_at) for r in witnessed)
        )
        kept = (
            None
            if state is None or state.seq == 0
            else KeptCheck(
                seq=state.seq, at=state.at, problem=what_is_wrong(state, log, file_missing=False)
            )
        )
    audit = Audit(report=report, checkpoint=checkpoint, token=None, witnesses=witnesses, kept=kept)
    if not audit.ok:
        # A cut or rewritten log can keep a whole chain: it gets no checkpoint to vouch for it.
        return audit
    token = sign_checkpoint(signer, node=settings.node, seq=report.rows, head=report.head, at=now)
    return replace(audit, token=token)
