"""Signed checkpoints of the enquiry log's head: proof, kept elsewhere, of how far it went."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import structlog

from connector.crypto.jws import PublicKey, Signer
from connector.enquiries.continuity import KeptLog
from connector.enquiries.log import EnquiryLog
from connector.errors import ConfigError, ConnectorError
from connector.protocol import open_checkpoint, sign_checkpoint

log = structlog.get_logger(__name__)

_PLAIN = re.compile(r"(\d+):([0-9a-f]{64})")


class CheckpointInvalid(ConfigError):
    code = "checkpoint_invalid"


class Checkpoints:
    """A running node's checkpoints: the log's head, signed, as a log event (the journal),
    and into the kept state, which the next start checks the log against."""

    def __init__(
        self,
        *,
        enquiry_log: EnquiryLog,
        signer: Signer,
        node: str,
        clock: Callable[[], float],
        kept: KeptLog | None = None,
    ) -> None:
        self.enquiry_log = enquiry_log
        self.kept = kept
        self.signer = signer
        self.node = node
        self.clock = clock
        self._last: tuple[int, str] = (-1, "")

    async def run(self) -> None:
        """`write`, as a job of a scheduler that runs coroutines on the event loop."""
        self.write()

    def write(self) -> None:
        """A checkpoint, unless the head has not moved since the last one."""
        head = self.enquiry_log.head()
        if head == self._last:
            return
        self._last = head
        at = self.clock()
        log.info(
            "enquiry_log_checkpoint",
            seq=head[0],
            hash=head[1],
            expect=f"{head[0]}:{head[1]}",
            signed=sign_checkpoint(self.signer, node=self.node, seq=head[0], head=head[1], at=at),
        )
        if self.kept is not None:
            try:
                self.kept.checkpoint(head[0], head[1], at)
            except ConfigError as exc:
                # The journal has the checkpoint; the next start checks against an older one.
                log.error(
                    "enquiry_log_state_write_failed", file=str(self.kept.path), error=exc.detail
                )


def read_checkpoint(text: str, *, keys: Sequence[PublicKey], node: str) -> tuple[int, str]:
    """`SEQ:HASH`, or a signed checkpoint, which must verify with one of this node's keys
    (over a key rotation, the old one or the new)."""
    text = text.strip()
    plain = _PLAIN.fullmatch(text)
    if plain is not None:
        return int(plain[1]), plain[2]
    if ":" in text and "." not in text:
        raise CheckpointInvalid(
            "SEQ:HASH wants the row number, a colon and the 64 hex "
            "digits of that row's hash, as verify printed them"
        )
    try:
        checkpoint = open_checkpoint(text, keys=tuple(keys), node=node)
    except ConnectorError as exc:
        raise CheckpointInvalid(f"the checkpoint does not hold: {exc.detail}") from exc
    return checkpoint.seq, checkpoint.hash
