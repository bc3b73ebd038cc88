"""Periodic digests: a channel's summary of foreign enquiries since its last one."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC

import orjson
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Connection, func, select

from connector.enquiries.entry import new_enquiry_id, utc_iso
from connector.enquiries.log import EnquiryLog
from connector.enquiries.schema import enquiries
from connector.errors import ConfigError
from connector.notify.notice import Notice
from connector.notify.tables import digest_mark, digests, notice_rows

_DAYS = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
_CRON_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def channel_triggers(digests: Mapping[str, str | None]) -> dict[str, CronTrigger]:
    """Each channel's digest schedule (channel → `digest:` of connector.yaml), read; a
    ConfigError names the channel whose schedule does not read."""
    triggers = {}
    for name, text in digests.items():
        if text:
            try:
                triggers[name] = digest_trigger(text)
            except ConfigError as exc:
                raise ConfigError(f"notifications.channels.{name}: {exc.detail}") from exc
    return triggers


def digest_trigger(text: str) -> CronTrigger:
    """ "daily 07:00", "hourly", "weekly mon 07:00" or a five-field crontab, in UTC."""
    t = text.strip().lower()
    try:
        if t == "hourly":
            return CronTrigger(minute=0, timezone=UTC)
        if m := re.fullmatch(r"daily (\d{1,2}):(\d{2})", t):
            return CronTrigger(hour=int(m.group(1)), minute=int(m.group(2)), timezone=UTC)
        if (m := re.fullmatch(r"weekly (\w{3}) (\d{1,2}):(\d{2})", t)) and m.group(1) in _DAYS:
            return CronTrigger(
                day_of_week=m.group(1), hour=int(m.group(2)), minute=int(m.group(3)), timezone=UTC
            )
        fields = t.split()
        if len(fields) != 5:
            raise ValueError("a crontab has five fields")
        minute, hour, day, month, dow = fields
        # Cron counts weekdays from Sunday = 0 (or 7); APScheduler from Monday = 0. Names
        # mean the same to both, so numbers are turned into names.
        dow = re.sub(r"\d+", lambda m: _CRON_DAYS[int(m.group())], dow)
        return CronTrigger(
            minute=minute, hour=hour, day=day, month=month, day_of_week=dow, timezone=UTC
        )
    except (ValueError, IndexError) as exc:
        raise ConfigError(
            f"digest {text!r}: give 'daily HH:MM', 'hourly', 'weekly mon HH:MM' "
            f"or a five-field crontab ({exc})"
        ) from exc


def digest_body(
    conn: Connection, *, node: str, since: float, until: float, after_seq: int, upto_seq: int
) -> dict[str, object]:
    """Enquiries received in log rows (after_seq, upto_seq]: by peer, by category, hits and
    denials. Rows, not times, mark the span: a row committed a moment after its `at` is
    counted in exactly one digest."""
    q = select(
        enquiries.c.peer, enquiries.c.decision, enquiries.c.checks, enquiries.c.hit_refs
    ).where(
        enquiries.c.direction == "in",
        # An approval's decision is a row this node issued itself, not a peer's enquiry.
        enquiries.c.iss != node,
        enquiries.c.seq > after_seq,
        enquiries.c.seq <= upto_seq,
    )
    by_peer: Counter[str] = Counter()
    by_category: Counter[str] = Counter()
    total = hits = denials = 0
    with conn.begin():
        for peer, decision, checks, hit_refs in conn.execute(q):
            total += 1
            by_peer[peer] += 1
            for check in orjson.loads(checks):
                by_category[str(check.get("category"))] += 1
            hits += 1 if orjson.loads(hit_refs) else 0
            denials += 1 if decision == "denied" else 0
    return {
        "type": "digest",
        "node": node,
        "since": utc_iso(since),
        "until": utc_iso(until),
        "enquiries": total,
        "by_peer": dict(by_peer.most_common()),
        "by_category": dict(by_category.most_common()),
        "hits": hits,
        "denials": denials,
    }


def make_digest(
    log: EnquiryLog, *, channel: str, node: str, clock: Callable[[], float], first_since: float
) -> Notice:
    """Build the channel's next digest and put it in the outbox with its new start."""
    conn = log._conn  # the log's own connection: the digest and its mark go in one commit
    until = clock()
    upto_seq = log.head()[0]
    with conn.begin():
        row = conn.execute(
            select(digests.c.until, digests.c.seq).where(digests.c.channel == channel)
        ).first()
        if row is not None:
            since, after_seq = row.until, row.seq
        else:
            since = first_since
            first = conn.execute(
                select(func.min(enquiries.c.seq)).where(enquiries.c.at > first_since)
            ).scalar()
            after_seq = (first - 1) if first is not None else upto_seq
    body = digest_body(
        conn, node=node, since=since, until=until, after_seq=after_seq, upto_seq=upto_seq
    )
    notice = Notice(
        id=new_enquiry_id(until),
        channel=channel,
        kind="digest",
        enquiry=None,
        created_at=until,
        body=body,
    )
    log.commit_companions([*notice_rows([notice]), digest_mark(channel, until=until, seq=upto_seq)])
    return notice
