"""Enquiry-log entries for tests: numbered, deterministic."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from connector.enquiries.entry import Entry, new_enquiry_id
from connector.enquiries.log import EnquiryLog
from connector.notify.notice import Notice
from connector.notify.tables import notice_rows


def entry(n: int, *, iss: str = "FR", jti: str | None = None) -> Entry:
    return Entry(
        id=new_enquiry_id(1_790_000_000 + n),
        at=1_790_000_000.0 + n,
        direction="in",
        peer=iss,
        iss=iss,
        jti=jti or f"jti-{n:020d}",
        sub="border/1",
        agency_kind="border",
        purpose="border_control",
        case_ref=None,
        decision="answered",
        rules=("r1",),
        policy_digest="sha256:00",
        checks=({"id": "1", "category": "travel_documents", "criteria": {"number": f"X{n}"}},),
        results=({"check": "1", "status": "no_hit"},),
        hit_refs=(),
        answer_digest="d",
        error=None,
        query_token="a.b.c",
    )


def sealed_notice_log(db: Path) -> tuple[Entry, Notice]:
    """A SQLite enquiry log of two rows whose first discloses a ref and seals a notice to the
    channel `duty`: what `enquiries verify` checks beside the chain."""
    log = EnquiryLog.open(f"sqlite:///{db}")
    hit = dataclasses.replace(entry(1), hit_refs=("DE:travel_documents:BKA-0815",))
    notice = Notice(
        id=f"{hit.id}.duty",
        channel="duty",
        kind="enquiry",
        enquiry=hit.id,
        created_at=hit.at,
        body={"type": "foreign_enquiry", "enquiry": hit.id},
    )
    try:
        log.append_now(hit, notice_rows([notice]))
        log.append_now(entry(2))
    finally:
        log.close()
    return hit, notice
