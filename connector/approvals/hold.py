"""A release held for an operator: the approval row and its notices, committed with the answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connector.approvals.model import Approval, HeldCheck
from connector.approvals.notices import notices
from connector.approvals.service import row_values
from connector.approvals.tables import approvals
from connector.enquiries.log import Companion
from connector.notify.tables import notice_rows

# The reminder goes out when this share of the time to decide has passed.
REMIND_AT = 0.75


def hold(
    *,
    node: str,
    approval_id: str,
    enquiry: str,
    peer: str,
    query_jti: str,
    query_digest: str,
    sub: str,
    agency_kind: str,
    purpose: str,
    case_ref: str | None,
    policy_digest: str,
    held: Sequence[HeldCheck],
    results: Sequence[dict[str, Any]],
    channels: Sequence[str],
    expires_in: int,
    now: float,
) -> tuple[Approval, tuple[Companion, ...]]:
    """The approval and the rows that commit with the enquiry row that answered `pending`:
    the approval's, and a notice to each channel that one waits."""
    approval = Approval(
        id=approval_id,
        state="pending",
        peer=peer,
        enquiry=enquiry,
        query_jti=query_jti,
        query_digest=query_digest,
        sub=sub,
        agency_kind=agency_kind,
        purpose=purpose,
        case_ref=case_ref,
        policy_digest=policy_digest,
        held=tuple(held),
        results=tuple(results),
        channels=tuple(dict.fromkeys(channels)),
        created_at=now,
        expires_at=now + expires_in,
        remind_at=now + expires_in * REMIND_AT,
    )
    rows = (Companion(table=approvals, values=row_values(approval)),)
    return approval, rows + notice_rows(notices(node, approval, "approval_waiting", now))
