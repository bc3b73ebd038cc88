"""Having witnesses: this node's checkpoints sent to its peers, and recalled (protocol §13)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from connector.crypto.jws import PublicKey
from connector.enquiries.audit import Recalled
from connector.errors import ConnectorError
from connector.peers.client import PeerClient
from connector.peers.trust import Peer, TrustStore
from connector.protocol import (
    Checkpoint,
    new_jti,
    open_checkpoint,
    open_receipt,
    open_witnessed,
    sign_checkpoint,
    sign_recall,
)

log = structlog.get_logger(__name__)

DEPOSIT_PATH = "/v1/witness"
RECALL_PATH = "/v1/witness/recall"


class Witnesses:
    """Sends the log's head, signed, to every peer in peers.yaml after it moves, and asks
    them for what they kept. A peer that misses a round gets the next head: a witness
    needs the newest checkpoint, not every one."""

    def __init__(
        self,
        *,
        client: PeerClient,
        trust: Callable[[], TrustStore],
        head: Callable[[], tuple[int, str]],
        timeout: float = 5.0,
    ) -> None:
        self.client = client
        self.trust = trust
        self.head = head
        self.timeout = timeout
        self._sent: dict[str, tuple[int, str]] = {}
        self._failing: dict[str, str] = {}

    async def run(self) -> None:
        """`deposit`, as a job of a scheduler that runs coroutines on the event loop."""
        await self.deposit()

    async def deposit(self) -> dict[str, str]:
        """The head sent to each peer that does not hold it yet: {peer: why not} for those
        that could not be given it."""
        head = self.head()
        if head[0] == 0:
            return {}  # an empty log vouches for nothing
        peers = [p for p in self.trust().peers.values() if self._sent.get(p.id) != head]
        reasons = await asyncio.gather(*(self._deposit(p, head) for p in peers))
        failing = {p.id: r for p, r in zip(peers, reasons, strict=True) if r is not None}
        # Once per change, not every round: a peer that is down is the health check's news.
        if failing != self._failing:
            if failing:
                log.warning("checkpoint_deposits_failed", seq=head[0], peers=failing)
            else:
                log.info("checkpoint_deposits_resumed", seq=head[0])
            self._failing = failing
        return failing

    async def _deposit(self, peer: Peer, head: tuple[int, str]) -> str | None:
        client = self.client
        now = client.clock()
        jti = new_jti(now)
        token = sign_checkpoint(
            client.signer, node=client.node, seq=head[0], head=head[1], at=now, aud=peer.id, jti=jti
        )
        try:
            body = await client.post(
                peer, DEPOSIT_PATH, token.encode("ascii"), timeout=self.timeout
            )
            receipt = open_receipt(
                body,
                keys=client.pinned_keys(peer),
                peer=peer.id,
                me=client.node,
                in_reply_to=jti,
                now=client.clock(),
            )
        except ConnectorError as exc:
            return exc.detail
        if (receipt.seq, receipt.hash) != head:
            return "the receipt names another checkpoint"
        self._sent[peer.id] = head
        if receipt.latest_seq > head[0]:
            # The peer holds a checkpoint this node signed of a row its log no longer has.
            log.error(
                "enquiry_log_behind_witness",
                peer=peer.id,
                witnessed_seq=receipt.latest_seq,
                log_seq=head[0],
                detail="the log holds fewer rows than this node once vouched for: rows were "
                "cut, or it was restored from an older copy; run "
                "`ncb-connector enquiries verify --witnesses`",
            )
        return None


async def recall(
    client: PeerClient, peers: list[Peer], *, own_keys: list[PublicKey], timeout: float = 5.0
) -> list[Recalled]:
    """Each peer asked at once for the checkpoints it holds of this node (the client's),
    each checked with `own_keys`: a witness cannot make one up."""
    return list(await asyncio.gather(*(_recall(client, p, own_keys, timeout) for p in peers)))


async def _recall(
    client: PeerClient, peer: Peer, own_keys: list[PublicKey], timeout: float
) -> Recalled:
    jti, token = sign_recall(client.signer, iss=client.node, aud=peer.id, now=client.clock())
    try:
        body = await client.post(peer, RECALL_PATH, token, timeout=timeout)
        claims = open_witnessed(
            body,
            keys=client.pinned_keys(peer),
            peer=peer.id,
            me=client.node,
            in_reply_to=jti,
            now=client.clock(),
        )
    except ConnectorError as exc:
        return Recalled(peer=peer.id, error=exc.detail)
    held: list[Checkpoint] = []
    unverifiable = 0
    for text in claims.checkpoints:
        try:
            held.append(open_checkpoint(text, keys=own_keys, node=client.node))
        except ConnectorError:
            unverifiable += 1
    return Recalled(peer=peer.id, checkpoints=tuple(held), unverifiable=unverifiable)
