"""Enquiry-log entries for tests: numbered, deterministic."""

from __future__ import annotations

from connector.enquiries.entry import Entry, new_enquiry_id


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
