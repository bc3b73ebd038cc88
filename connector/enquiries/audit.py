"""`enquiries verify`: the log's hash chain checked, against an earlier checkpoint if given."""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass

from connector.crypto.jws import Signer
from connector.crypto.keyfiles import read_signing_key
from connector.enquiries.checkpoints import read_checkpoint, sign_checkpoint
from connector.enquiries.entry import VerifyReport
from connector.enquiries.log import EnquiryLog
from connector.settings.config import Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class Audit:
    report: VerifyReport
    checkpoint: tuple[int, str] | None  # the earlier checkpoint, (seq, hash), now proven
    token: str | None  # a new signed checkpoint of the head; None when the chain is broken


def audit_log(settings: Settings, *, expect: str | None, now: float) -> Audit:
    """Verify the chain; `expect` (SEQ:HASH, or a signed checkpoint, which must verify with
    this node's key) also proves no rows up to it were cut off. A good chain gets a new
    checkpoint signed, to be kept off this host and given as `expect` later."""
    signer = Signer(read_signing_key(settings.path(settings.key_file)))
    checkpoint = (
        None if expect is None else read_checkpoint(expect, key=signer.public, node=settings.node)
    )
    with closing(EnquiryLog.open(settings.enquiries_url)) as log:
        report = log.verify(expect=checkpoint)
    token = (
        sign_checkpoint(signer, node=settings.node, seq=report.rows, head=report.head, at=now)
        if report.ok
        else None
    )
    return Audit(report=report, checkpoint=checkpoint, token=token)
