"""Asking peers outside the serving node (commands, tests, the demo): the node's policy,
keys and log, with a session, log handle and breakers of the desk's own."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from connector.outbound.fanout import FanOut, PeerOutcome
from connector.outbound.prepare import Prepared, prepare
from connector.outbound.request import Request
from connector.peers.client import Exchange
from connector.peers.trust import TrustStore
from connector.policy import Policy
from connector.records.store import RecordStore


@dataclass(frozen=True, slots=True, kw_only=True)
class Desk:
    """Lent by the node for one command: each request is decided by the policy and trust
    store in force when it is made."""

    node: str
    fanout: FanOut
    policy: Callable[[], Policy]
    trust: Callable[[], TrustStore]
    open_records: Callable[[], RecordStore]
    deadline_ms: int  # federation.deadline_ms, for a search that names none

    async def ask(self, request: Request, peer: str) -> Exchange:
        """One peer, all of the request or nothing (FanOut.ask says what is raised)."""
        return await self.fanout.ask(request, peer, policy=self.policy(), trust=self.trust())

    async def search(
        self,
        request: Request,
        *,
        peers: Sequence[str] | Literal["*"],
        deadline_ms: int | None,
        on_update: Callable[[Prepared, Mapping[str, PeerOutcome]], None],
    ) -> tuple[Prepared, dict[str, PeerOutcome]]:
        """The national records and every peer allowed, as an agency's check through the
        local API; `on_update` is told of each outcome as it arrives."""
        store = self.open_records()
        try:
            prepared = await prepare(
                node=self.node,
                request=request,
                peers=peers,
                policy=self.policy(),
                trust=self.trust(),
                store=store,
            )
        finally:
            store.close()
        outcomes: dict[str, PeerOutcome] = {}
        on_update(prepared, outcomes)
        async for o in self.fanout.run(
            request,
            prepared.plans,
            trust=prepared.trust,
            policy_digest=prepared.policy_digest,
            deadline_s=(deadline_ms or self.deadline_ms) / 1000,
        ):
            outcomes[o.peer] = o
            on_update(prepared, outcomes)
        return prepared, outcomes
