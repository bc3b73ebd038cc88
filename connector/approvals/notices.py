"""The notices an approval sends its channels: one waits, and a reminder before it expires."""

from __future__ import annotations

from connector.approvals.model import Approval
from connector.enquiries.entry import utc_iso
from connector.notify.notice import Notice


def notices(node: str, approval: Approval, kind: str, now: float) -> list[Notice]:
    """`approval_waiting` or `approval_reminder` to each of the approval's channels. The
    body names the records by ref only: what they hold stays on the node."""
    body = {
        "type": kind,
        "node": node,
        "approval": approval.id,
        "enquiry": approval.enquiry,
        "asked_by": {
            "node": approval.peer,
            "agency_kind": approval.agency_kind,
            "sub": approval.sub,
            "purpose": approval.purpose,
            "case": approval.case_ref,
        },
        "refs": list(approval.refs),
        "rules": list(approval.rules),
        "created_at": utc_iso(approval.created_at),
        "expires_at": utc_iso(approval.expires_at),
    }
    # The outbox's id is at most 96 characters: 26 + 3 + a channel's 64.
    suffix = "w" if kind == "approval_waiting" else "r"
    return [
        Notice(
            id=f"{approval.id}.{suffix}.{channel}",
            channel=channel,
            kind="approval",
            enquiry=approval.enquiry,
            created_at=now,
            body=body,
        )
        for channel in approval.channels
    ]
