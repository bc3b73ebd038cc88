"""Signed checkpoints of the enquiry log's head: proof, kept elsewhere, of how far it went."""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson
import structlog

from connector.crypto.jws import PublicKey, Signer, parse_compact
from connector.enquiries.continuity import KeptLog
from connector.enquiries.log import EnquiryLog
from connector.errors import ConfigError, ConnectorError

log = structlog.get_logger(__name__)

TYP_CHECKPOINT = "ncb-checkpoint+jwt"
_PLAIN = re.compile(r"(\d+):([0-9a-f]{64})")


class CheckpointInvalid(ConfigError):
    code = "checkpoint_invalid"


def sign_checkpoint(signer: Signer, *, node: str, seq: int, head: str, at: float) -> str:
    """A compact JWS any JOSE library verifies with the node's published key. Signed, a
    checkpoint copied off the host (journal forwarding, a ticket, a peer) cannot later be
    made up by whoever edits the log: only the node's key could have vouched for it."""
    payload = orjson.dumps({"iss": node, "seq": seq, "hash": head, "iat": int(at)})
    return signer.sign_compact(payload, typ=TYP_CHECKPOINT).decode("ascii")


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


def read_checkpoint(text: str, *, key: PublicKey, node: str) -> tuple[int, str]:
    """`SEQ:HASH`, or a signed checkpoint, which must verify with this node's key."""
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
        jws = parse_compact(text.encode("ascii"))
        jws.verify_with(key)
        claims = orjson.loads(jws.payload)
    except (ConnectorError, UnicodeEncodeError, orjson.JSONDecodeError) as exc:
        detail = exc.detail if isinstance(exc, ConnectorError) else "not a checkpoint"
        raise CheckpointInvalid(f"the checkpoint does not hold: {detail}") from exc
    if jws.typ != TYP_CHECKPOINT or not isinstance(claims, dict):
        raise CheckpointInvalid("the token is not an enquiry-log checkpoint")
    if claims.get("iss") != node:
        raise CheckpointInvalid(f"the checkpoint is {claims.get('iss')!r}'s, not {node}'s")
    seq, head = claims.get("seq"), claims.get("hash")
    if (
        not isinstance(seq, int)
        or not isinstance(head, str)
        or not re.fullmatch(r"[0-9a-f]{64}", head)
    ):
        raise CheckpointInvalid("the checkpoint lacks seq or hash")
    return seq, head
