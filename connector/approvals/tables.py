"""The approvals tables, in the enquiry log's database: a held release commits with its enquiry."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from connector.enquiries.schema import metadata

# The responder's side: one row per enquiry whose answer said `pending` (a rule with
# `release: approval` matched a record). `held` keeps what is released once an operator
# approves: personal data, in the log's database like the rows it answers. The row is
# written with the enquiry row (a Companion) and rewritten, whole, with the decision's row:
# the decision's (iss, jti) is unique in the log, so an approval is decided once.
approvals = Table(
    "approvals",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("state", String(12), nullable=False),  # pending | approved | denied | expired
    Column("peer", String(16), nullable=False),  # the querier: the only node that may fetch it
    Column("enquiry", String(40), nullable=False),  # the enquiry answered `pending`
    Column("query_jti", String(128), nullable=False),
    Column("query_digest", String(64), nullable=False),
    Column("sub", String(256), nullable=False),
    Column("agency_kind", String(16), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("case_ref", String(256)),
    Column("policy_digest", String(80), nullable=False),
    Column("held", Text, nullable=False),  # JSON: the held checks (criteria, rule, level, hits)
    Column("results", Text, nullable=False),  # JSON: every result's claims as released
    Column("channels", Text, nullable=False),  # JSON: who is told it waits, and reminded
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("remind_at", Float),  # NULL once the reminder is committed
    Column("decided_at", Float),
    Column("decided_by", Text),  # JSON: the trail's Actor (an OS user, a console account)
    Column("reason", Text),
    Column("decision_enquiry", String(40)),  # the log row that records the decision
    Index("ix_approvals_state_expires", "state", "expires_at"),
)

# The querier's side: one row per pending answer a peer gave us, until its release is
# fetched. `request` is the agency's check (the local API's id) the release completes.
awaited = Table(
    "awaited_releases",
    metadata,
    Column("peer", String(16), primary_key=True),
    Column("approval", String(40), primary_key=True),
    Column("state", String(12), nullable=False),  # pending | released | denied | expired
    Column("request", String(40), nullable=False),
    Column("agency", String(64), nullable=False),
    Column("query_jti", String(128), nullable=False),
    Column("query_digest", String(64), nullable=False),
    Column("checks", Text, nullable=False),  # JSON: the query's check ids, in order
    Column("pending", Text, nullable=False),  # JSON: the pending results as first answered
    Column("results", Text),  # JSON: the released results, once fetched and verified
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("next_poll_at", Float, nullable=False),
    Column("polls", Integer, nullable=False),
    Column("released_at", Float),
    Column("release_enquiry", String(40)),  # our log row of the fetch that released it
    Index("ix_awaited_state_poll", "state", "next_poll_at"),
    Index("ix_awaited_request", "request"),
)
