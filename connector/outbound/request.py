"""What a national user wants to know from peers: who asks, why, and the checks."""

from __future__ import annotations

from dataclasses import dataclass

from connector.protocol import Check
from connector.vocabulary import AgencyKind, Purpose


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """What a national user wants to know from one peer."""

    agency: str
    agency_kind: AgencyKind
    sub: str
    purpose: Purpose
    case: str | None
    checks: tuple[Check, ...]
    # The agency check's id (the local API's), when there is one: a release a peer holds
    # for an operator completes it later (`GET /local/v1/checks/{id}`).
    id: str | None = None
