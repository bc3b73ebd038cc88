"""The outbox: notices waiting for delivery, their attempts, and the dead ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, Engine, func, select, update

from connector.enquiries import make_log_engine, metadata, outbox
from connector.notify.notice import Notice, NoticeKind

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


def _row(r: Any) -> OutboxRow:
    m = r._mapping
    kind: NoticeKind = m["kind"]
    notice = Notice(id=m["id"], channel=m["channel"], kind=kind, enquiry=m["enquiry"],
                    created_at=m["created_at"], body=orjson.loads(m["body"]))
    return OutboxRow(notice=notice, state=m["state"], attempts=m["attempts"],
                     next_attempt_at=m["next_attempt_at"], last_attempt_at=m["last_attempt_at"],
                     last_error=m["last_error"], delivered_at=m["delivered_at"])


class Outbox:
    """Reads and updates the outbox table of the enquiry-log database. Each update is its own
    short transaction, so delivery never holds the write lock while it waits on a network."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection = engine.connect()

    @classmethod
    def open(cls, url: str) -> Outbox:
        box = cls(make_log_engine(url))
        box._conn.info["write"] = True
        with box._conn.begin():
            metadata.create_all(box._conn)
        return box

    def close(self) -> None:
        self._conn.close()
        self.engine.dispose()

    def due(self, now: float, limit: int = 100) -> list[OutboxRow]:
        q = (select(outbox).where(outbox.c.state == "pending", outbox.c.next_attempt_at <= now)
             .order_by(outbox.c.next_attempt_at).limit(limit))
        with self._conn.begin():
            return [_row(r) for r in self._conn.execute(q)]

    def next_due_at(self) -> float | None:
        q = select(func.min(outbox.c.next_attempt_at)).where(outbox.c.state == "pending")
        with self._conn.begin():
            value = self._conn.execute(q).scalar()
        return None if value is None else float(value)

    def _update(self, notice_id: str, **values: Any) -> None:
        self._conn.info["write"] = True
        with self._conn.begin():
            self._conn.execute(update(outbox).where(outbox.c.id == notice_id).values(**values))

    def delivered(self, notice_id: str, *, now: float, attempts: int) -> None:
        self._update(notice_id, state="delivered", attempts=attempts, last_attempt_at=now,
                     delivered_at=now, last_error=None)

    def failed(self, notice_id: str, *, now: float, attempts: int, error: str,
               retry_at: float | None) -> None:
        """A failed attempt: retried at `retry_at`, or dead when that is None."""
        if retry_at is None:
            self._update(notice_id, state="dead", attempts=attempts, last_attempt_at=now,
                         last_error=error)
        else:
            self._update(notice_id, attempts=attempts, last_attempt_at=now, last_error=error,
                         next_attempt_at=retry_at)

    def retry(self, notice_ids: Sequence[str] | None, *, now: float) -> int:
        """Make dead notices (all of them, or these) pending again, due now."""
        self._conn.info["write"] = True
        q = update(outbox).where(outbox.c.state == "dead")
        if notice_ids is not None:
            q = update(outbox).where(outbox.c.id.in_(list(notice_ids)),
                                     outbox.c.state != "delivered")
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
