"""Asking peers outside the serving node (commands, tests, the demo): the node's policy,
keys and log, with a session, log handle and breakers of the desk's own; what a person
typed made into a request."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal

from connector.errors import InvalidRequest
from connector.outbound.fanout import FanOut, PeerOutcome
from connector.outbound.prepare import Prepared, prepare
from connector.outbound.request import Request
from connector.outbound.subject import Subject, subject_checks
from connector.peers.client import Exchange
from connector.peers.trust import TrustStore
from connector.policy import Policy
from connector.protocol import Check
from connector.records.criteria import parse_criteria
from connector.records.store import RecordStore
from connector.vocabulary import (
    DOCUMENT_COUNTRY,
    DOCUMENT_NUMBER,
    DOCUMENT_TYPE,
    AgencyKind,
    Category,
    Purpose,
)


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


OpenDesk = Callable[[], AbstractAsyncContextManager[Desk]]


def typed_check(
    category: Category,
    *,
    criteria: Mapping[str, Any] | None,
    mrz: str | None,
    document_number: str | None,
    document_country: str | None,
    document_type: str | None,
) -> Check:
    """The one check `query` sends: criteria as given (any category), or a travel document's
    number (country, type) or MRZ. Refused here when wrong (InvalidCriteria names the
    field): bad input is ours to refuse, not a peer's."""
    given: dict[str, str | int | bool]
    if criteria is not None:
        if mrz or document_number:
            raise InvalidRequest(
                "give --criteria, or --document-number/--mrz for a travel document, not both"
            )
        given = dict(criteria)
    elif category is not Category.TRAVEL_DOCUMENTS:
        raise InvalidRequest(f"{category.value}: give --criteria JSON (see docs/protocol.md §6)")
    else:
        if bool(mrz) == bool(document_number):
            raise InvalidRequest("give either --document-number (with --document-country) or --mrz")
        given = {"mrz": mrz} if mrz else {DOCUMENT_NUMBER: document_number or ""}
        if document_country:
            given[DOCUMENT_COUNTRY] = document_country.upper()
        if document_type:
            given[DOCUMENT_TYPE] = document_type
    parse_criteria(category, given)
    return Check(id="1", category=category, criteria=given)


async def ask_peer(
    open_desk: OpenDesk,
    *,
    peer: str,
    agency: str,
    agency_kind: AgencyKind,
    sub: str,
    purpose: Purpose,
    case: str | None,
    category: Category,
    criteria: Mapping[str, Any] | None,
    mrz: str | None = None,
    document_number: str | None = None,
    document_country: str | None = None,
    document_type: str | None = None,
) -> Exchange:
    """`ncb-connector query`: one check of one category to one peer. The check is made (and
    refused) before the desk opens."""
    check = typed_check(
        category,
        criteria=criteria,
        mrz=mrz,
        document_number=document_number,
        document_country=document_country,
        document_type=document_type,
    )
    request = Request(
        agency=agency,
        agency_kind=agency_kind,
        sub=sub,
        purpose=purpose,
        case=case,
        checks=(check,),
    )
    async with open_desk() as desk:
        return await desk.ask(request, peer)


async def search_peers(
    open_desk: OpenDesk,
    *,
    subject: Subject,
    peers: Sequence[str] | Literal["*"],
    agency: str,
    agency_kind: AgencyKind,
    sub: str,
    purpose: Purpose,
    case: str | None,
    deadline_ms: int | None,
    on_update: Callable[[Prepared, Mapping[str, PeerOutcome]], None],
) -> tuple[Prepared, dict[str, PeerOutcome]]:
    """`ncb-connector search`: a subject split into its checks, against the national records
    and every peer allowed (Desk.search)."""
    checks = subject_checks(subject)
    if not checks:
        raise InvalidRequest(
            "give something to check: --mrz, --document-number, --last-name, --plate or --vin"
        )
    request = Request(
        agency=agency,
        agency_kind=agency_kind,
        sub=sub,
        purpose=purpose,
        case=case,
        checks=checks,
    )
    async with open_desk() as desk:
        return await desk.search(request, peers=peers, deadline_ms=deadline_ms, on_update=on_update)
