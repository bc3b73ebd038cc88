"""The notification tables, in the enquiry log's database: notices commit with their enquiry."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from connector.enquiries.log import Companion
from connector.enquiries.schema import metadata
from connector.enquiries.sealing import SEALED
from connector.notify.notice import Notice

# Notices wait here, in the log's own database: each is committed in the same transaction
# as the enquiry that caused it, so no crash can leave an enquiry without its notice.
outbox = Table(
    "outbox",
    metadata,
    Column("id", String(96), primary_key=True),  # <enquiry id>.<channel>, or a ULID
    Column("channel", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("enquiry", String(40)),
    Column("created_at", Float, nullable=False),
    Column("body", Text, nullable=False),
    Column("state", String(12), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_attempt_at", Float),
    Column("last_error", Text),
    Column("delivered_at", Float),
    Column("leased", Integer, nullable=False, default=0),  # being sent by this process now
    # The one index the dispatcher needs; every index is paid for by each enquiry's commit.
    Index("ix_outbox_channel_due", "channel", "state", "next_attempt_at"),
    # What a notice says never changes once committed, so the enquiry row that caused it
    # commits to it (`enquiries verify` finds one deleted or edited); its delivery state does.
    info={SEALED: ("channel", "kind", "enquiry", "created_at", "body")},
)

# Until when each channel's last digest counted, so the next one starts there.
digests = Table(
    "digests",
    metadata,
    Column("channel", String(64), primary_key=True),
    Column("until", Float, nullable=False),
    Column("seq", Integer, nullable=False),  # the last log row the digest counted
)


def notice_rows(notices: Sequence[Notice]) -> tuple[Companion, ...]:
    """Each notice as an outbox row that commits with its enquiry; its channel is told once
    the commit is done, so delivery starts without waiting for the next poll."""
    return tuple(
        Companion(table=outbox, values=_notice_values(n), topic=n.channel) for n in notices
    )


def digest_mark(channel: str, *, until: float, seq: int) -> Companion:
    """Where the channel's next digest starts, committed with the digest's notice."""
    return Companion(
        table=digests, values={"channel": channel, "until": until, "seq": seq}, replace=True
    )


def _notice_values(n: Notice) -> dict[str, object]:
    return {
        "id": n.id,
        "channel": n.channel,
        "kind": n.kind,
        "enquiry": n.enquiry,
        "created_at": n.created_at,
        "body": orjson.dumps(n.body).decode(),
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": n.created_at,
        "last_attempt_at": None,
        "last_error": None,
        "delivered_at": None,
        "leased": 0,
    }
