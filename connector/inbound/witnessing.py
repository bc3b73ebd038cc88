"""Being a witness: keeping the checkpoints peers send, and returning them (protocol §13)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from connector.crypto.jws import Signer
from connector.enquiries.witnessed import WitnessStore
from connector.errors import TooManyCheckpoints
from connector.peers.trust import TrustStore
from connector.protocol import (
    TYP_CHECKPOINT,
    TYP_RECALL,
    Checkpoint,
    Envelope,
    checkpoint_claims,
    open_envelope,
    sign_receipt,
    sign_witnessed,
)

log = structlog.get_logger(__name__)

# A node sends its checkpoint once a minute; one a second from a peer is plenty, and more is
# only a peer making this node's disk work for it.
MIN_INTERVAL_S = 1.0


class Witness:
    """Opens a peer's signed checkpoint or recall the way a query is opened (§10: a pinned
    key, typ, iss, aud, time window), then keeps or returns that peer's checkpoints only."""

    def __init__(
        self,
        *,
        node: str,
        signer: Signer,
        store: WitnessStore,
        trust: Callable[[], TrustStore],
        clock: Callable[[], float],
        min_interval_s: float = MIN_INTERVAL_S,
    ) -> None:
        self.node = node
        self.signer = signer
        self.store = store
        self.trust = trust
        self.clock = clock
        self.min_interval_s = min_interval_s
        # Keyed by pinned peers only (a token must verify first), so bounded by peers.yaml.
        self._last: dict[str, float] = {}

    def _open(self, token: bytes, typ: str) -> Envelope:
        now = self.clock()
        trust, when = self.trust(), datetime.fromtimestamp(now, UTC)
        return open_envelope(
            token, resolve_kid=lambda kid: trust.resolve(kid, when), me=self.node, now=now, typ=typ
        )

    async def deposit(self, token: bytes) -> bytes:
        """Keep a peer's checkpoint; the receipt names the newest this witness holds of it,
        so a node whose log went back (a restore, a cut) hears it at once."""
        envelope = self._open(token, TYP_CHECKPOINT)
        claims = checkpoint_claims(envelope.payload)
        now = self.clock()
        last = self._last.get(envelope.iss)
        if last is not None and now - last < self.min_interval_s:
            raise TooManyCheckpoints(
                "one checkpoint a second at most", retry_after=self.min_interval_s - (now - last)
            )
        self._last[envelope.iss] = now
        checkpoint = Checkpoint(
            node=envelope.iss,
            seq=claims.seq,
            hash=claims.hash,
            iat=claims.iat,
            token=token.decode("ascii"),
        )
        kept = await asyncio.to_thread(self.store.keep, checkpoint, received_at=now)
        if kept.conflict:
            log.error(
                "witnessed_checkpoint_conflict",
                peer=envelope.iss,
                seq=claims.seq,
                hash=claims.hash,
                detail="the peer's key vouched for two different logs at this row: "
                "both are kept as evidence",
            )
        elif kept.latest.seq > claims.seq:
            log.warning(
                "witnessed_checkpoint_behind",
                peer=envelope.iss,
                seq=claims.seq,
                witnessed_seq=kept.latest.seq,
            )
        elif kept.new:
            log.debug("witnessed_checkpoint", peer=envelope.iss, seq=claims.seq)
        return sign_receipt(
            self.signer,
            iss=self.node,
            aud=envelope.iss,
            in_reply_to=envelope.jti,
            kept=checkpoint,
            latest=kept.latest,
            now=now,
        )

    async def recall(self, token: bytes) -> bytes:
        """The checkpoints held of the peer that asks, and of no other node."""
        envelope = self._open(token, TYP_RECALL)
        held = await asyncio.to_thread(self.store.held, envelope.iss)
        log.info("witnessed_checkpoints_recalled", peer=envelope.iss, checkpoints=len(held))
        return sign_witnessed(
            self.signer,
            iss=self.node,
            aud=envelope.iss,
            in_reply_to=envelope.jti,
            checkpoints=[c.token for c in held],
            now=self.clock(),
        )
