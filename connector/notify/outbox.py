"""The outbox: notices waiting for delivery, their attempts, and the dead ones."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import BindParameter, Connection, Engine, bindparam, event, func, select, update

from connector.enquiries.schema import ensure_log_schema, make_log_engine
from connector.notify.notice import Notice, NoticeKind
from connector.notify.tables import outbox
from connector.storage.urls import redacted

State = Literal["pending", "delivered", "dead"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxRow:
    notice: Notice
    state: State
    attempts: int
    next_attempt_at: float
    last_attempt_at: float | None
    last_error: str | None
    delivered_at: float | None


def _no_fsync_per_commit(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA synchronous=NORMAL")


def _row(r: Any) -> OutboxRow:
    m = r._mapping
    kind: NoticeKind = m["kind"]
    notice = Notice(
        id=m["id"],
        channel=m["channel"],
        kind=kind,
        enquiry=m["enquiry"],
        created_at=m["created_at"],
        body=orjson.loads(m["body"]),
    )
    return OutboxRow(
        notice=notice,
        state=m["state"],
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"],
        last_attempt_at=m["last_attempt_at"],
        last_error=m["last_error"],
        delivered_at=m["delivered_at"],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Depth:
    """One channel's backlog: notices still to deliver, since when, and those given up on."""

    pending: int
    oldest_pending_at: float | None
    dead: int


def depths(engine: Engine, channels: Iterable[str]) -> dict[str, Depth]:
    """Each channel's backlog, on a connection of its own (so a worker thread may ask): one
    range of the (channel, state, …) index per channel and state, never a scan of the
    delivered notices, which pile up."""
    c: BindParameter[str] = bindparam("channel")
    pending = select(func.count(), func.min(outbox.c.created_at)).where(
        outbox.c.channel == c, outbox.c.state == "pending"
    )
    dead = (
        select(func.count())
        .select_from(outbox)
        .where(outbox.c.channel == c, outbox.c.state == "dead")
    )
    found: dict[str, Depth] = {}
    with engine.connect() as conn:
        for channel in channels:
            n, oldest = conn.execute(pending, {"channel": channel}).one()
            found[channel] = Depth(
                pending=int(n),
                oldest_pending_at=None if oldest is None else float(oldest),
                dead=int(conn.execute(dead, {"channel": channel}).scalar_one()),
            )
        conn.rollback()
    return found


class Outbox:
    """Reads and updates the outbox table of the enquiry-log database. Each update is its own
    short transaction, so delivery never holds the write lock while it waits on a network."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection = engine.connect()

    @classmethod
    def open(cls, url: str) -> Outbox:
        engine = make_log_engine(url)
        if engine.dialect.name == "sqlite":
            # A delivery mark lost to a power cut means one more delivery of the same notice
            # (at-least-once, same idempotency key), so these commits need not wait for an
            # fsync the way enquiries do; WAL keeps them atomic.
            event.listen(engine, "connect", _no_fsync_per_commit)
        box = cls(engine)
        ensure_log_schema(box._conn, what=f"enquiry log {redacted(url)}")
        return box

    def close(self) -> None:
        self._conn.close()
        self.engine.dispose()

    def take(self, channel: str, *, now: float, limit: int, lease_until: float) -> list[OutboxRow]:
        """Due notices of one channel, leased: their next attempt moves to `lease_until`, so
        another pass does not send them too; a crash lets the lease run out and retries."""
        q = (
            select(outbox)
            .where(
                outbox.c.state == "pending",
                outbox.c.channel == channel,
                outbox.c.next_attempt_at <= now,
            )
            .order_by(outbox.c.next_attempt_at)
            .limit(limit)
        )
        self._conn.info["write"] = True
        with self._conn.begin():
            rows = [_row(r) for r in self._conn.execute(q)]
            if rows:
                self._conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_([r.notice.id for r in rows]))
                    .values(next_attempt_at=lease_until, leased=1)
                )
        return rows

    def release_leases(self, *, now: float) -> int:
        """At start: notices this node was sending when it stopped are due again at once."""
        self._conn.info["write"] = True
        with self._conn.begin():
            result = self._conn.execute(
                update(outbox)
                .where(outbox.c.state == "pending", outbox.c.leased == 1)
                .values(leased=0, next_attempt_at=now)
            )
        return int(result.rowcount)

    def due_elsewhere(
        self, channels: Sequence[str], *, now: float, limit: int = 100
    ) -> list[OutboxRow]:
        """Due notices for channels not in `channels` (removed from connector.yaml since)."""
        q = (
            select(outbox)
            .where(
                outbox.c.state == "pending",
                outbox.c.channel.not_in(list(channels)),
                outbox.c.next_attempt_at <= now,
            )
            .limit(limit)
        )
        with self._conn.begin():
            return [_row(r) for r in self._conn.execute(q)]

    def _update(self, notice_id: str, **values: Any) -> None:
        self._conn.info["write"] = True
        with self._conn.begin():
            self._conn.execute(update(outbox).where(outbox.c.id == notice_id).values(**values))

    def delivered(self, notice_id: str, *, now: float, attempts: int) -> None:
        self.delivered_many([(notice_id, now, attempts)])

    def delivered_many(self, marks: Sequence[tuple[str, float, int]]) -> None:
        """Mark many delivered notices in one transaction: (id, when, attempts)."""
        if not marks:
            return
        self._conn.info["write"] = True
        stmt = (
            update(outbox)
            .where(outbox.c.id == bindparam("notice_id"))
            .values(
                state="delivered",
                attempts=bindparam("n"),
                last_attempt_at=bindparam("at"),
                delivered_at=bindparam("at"),
                last_error=None,
                leased=0,
            )
        )
        with self._conn.begin():
            self._conn.execute(stmt, [{"notice_id": i, "at": at, "n": n} for i, at, n in marks])

    def failed(
        self, notice_id: str, *, now: float, attempts: int, error: str, retry_at: float | None
    ) -> None:
        """A failed attempt: retried at `retry_at`, or dead when that is None."""
        if retry_at is None:
            self._update(
                notice_id,
                state="dead",
                attempts=attempts,
                last_attempt_at=now,
                last_error=error,
                leased=0,
            )
        else:
            self._update(
                notice_id,
                attempts=attempts,
                last_attempt_at=now,
                last_error=error,
                next_attempt_at=retry_at,
                leased=0,
            )

    def retry(self, notice_ids: Sequence[str] | None, *, now: float) -> int:
        """Make dead notices (all of them, or these) pending again, due now."""
        self._conn.info["write"] = True
        q = update(outbox).where(outbox.c.state == "dead")
        if notice_ids is not None:
            q = update(outbox).where(
                outbox.c.id.in_(list(notice_ids)), outbox.c.state != "delivered"
            )
        with self._conn.begin():
            result = self._conn.execute(q.values(state="pending", next_attempt_at=now))
        return int(result.rowcount)

    def list(self, *, state: State | None = None, limit: int | None = None) -> list[OutboxRow]:
        q = select(outbox)
        if state is not None:
            q = q.where(outbox.c.state == state)
        q = q.order_by(outbox.c.created_at.desc())
        if limit is not None:
            q = q.limit(limit)
        with self._conn.begin():
            rows = [_row(r) for r in self._conn.execute(q)]
        rows.reverse()
        return rows

    def get(self, notice_id: str) -> OutboxRow | None:
        with self._conn.begin():
            r = self._conn.execute(select(outbox).where(outbox.c.id == notice_id)).first()
        return None if r is None else _row(r)

    def counts(self) -> dict[str, int]:
        q = select(outbox.c.state, func.count()).group_by(outbox.c.state)
        with self._conn.begin():
            return {state: int(n) for state, n in self._conn.execute(q)}
