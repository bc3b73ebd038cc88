"""The checkpoints peers send this node to keep for them, as their witness (protocol §13)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    Row,
    String,
    Table,
    Text,
    delete,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from connector.enquiries.schema import ensure_log_schema, make_log_engine, metadata
from connector.protocol import MAX_WITNESSED, Checkpoint
from connector.storage.urls import redacted

# In the enquiry log's database: what a peer's log vouched for is kept beside our own.
witnessed = Table(
    "witnessed",
    metadata,
    Column("node", String(16), primary_key=True),
    Column("seq", Integer, primary_key=True),
    # In the key: a second hash for a row already witnessed is kept beside the first, never
    # in its place: the two are the evidence that the node's log was rewritten.
    Column("hash", String(64), primary_key=True),
    Column("iat", Integer, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("token", Text, nullable=False),
)

DAY_S = 86_400


@dataclass(frozen=True, slots=True, kw_only=True)
class Thinning:
    """What a witness keeps of one node's checkpoints: the newest `recent`, then one a day
    for `daily_days`, then one a month; every conflict up to `conflicts` rows."""

    recent: int = 48
    daily_days: int = 400
    conflicts: int = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class Held:
    """One checkpoint as held: (seq, hash, iat)."""

    seq: int
    hash: str
    iat: int


def to_forget(held: Sequence[Held], thinning: Thinning) -> set[tuple[int, str]]:
    """The (seq, hash) a witness may drop: what it keeps stays bounded (about 500 rows a
    node after five years) while any rewrite of rows before the newest is still caught."""
    if not held:
        return set()
    seqs = sorted({h.seq for h in held}, reverse=True)
    keep = set(seqs[: thinning.recent])
    per_seq: dict[int, int] = {}
    for h in held:
        per_seq[h.seq] = per_seq.get(h.seq, 0) + 1
    conflicted = sorted((s for s, n in per_seq.items() if n > 1), reverse=True)
    keep.update(conflicted[: thinning.conflicts])
    newest = max(h.iat for h in held)
    periods: dict[tuple[str, int], int] = {}
    for h in held:
        days_old = (newest - h.iat) // DAY_S
        period = (
            ("d", h.iat // DAY_S)
            if days_old < thinning.daily_days
            else ("m", h.iat // (30 * DAY_S))
        )
        periods[period] = max(periods.get(period, -1), h.seq)
    keep.update(periods.values())
    return {(h.seq, h.hash) for h in held if h.seq not in keep}


@dataclass(frozen=True, slots=True, kw_only=True)
class Kept:
    """What keeping one checkpoint found."""

    latest: Checkpoint  # the newest held of that node, this one included
    conflict: bool  # the node had already vouched for another hash at this row
    new: bool  # not held before (a retry of the same checkpoint is not)


class WitnessStore:
    """Reads and writes the `witnessed` table; each call is one short transaction, called
    from a worker thread (the loop keeps answering while SQLite syncs)."""

    def __init__(self, engine: Engine, *, thinning: Thinning | None = None) -> None:
        self.engine = engine
        self.thinning = thinning or Thinning()

    @classmethod
    def open(cls, url: str, *, thinning: Thinning | None = None) -> WitnessStore:
        engine = make_log_engine(url)
        with engine.connect() as conn:
            ensure_log_schema(conn, what=f"enquiry log {redacted(url)}")
        return cls(engine, thinning=thinning)

    def close(self) -> None:
        self.engine.dispose()

    def keep(self, checkpoint: Checkpoint, *, received_at: float) -> Kept:
        with self.engine.connect() as conn:
            conn.info["write"] = True
            with conn.begin():
                rows = conn.execute(
                    select(witnessed.c.seq, witnessed.c.hash, witnessed.c.iat).where(
                        witnessed.c.node == checkpoint.node
                    )
                ).all()
                held = [Held(seq=r.seq, hash=r.hash, iat=r.iat) for r in rows]
                new = not any(h.seq == checkpoint.seq and h.hash == checkpoint.hash for h in held)
                conflict = any(h.seq == checkpoint.seq and h.hash != checkpoint.hash for h in held)
                if new:
                    insert = (
                        pg_insert(witnessed)
                        if conn.dialect.name == "postgresql"
                        else sqlite_insert(witnessed)
                    )
                    conn.execute(
                        insert.values(
                            node=checkpoint.node,
                            seq=checkpoint.seq,
                            hash=checkpoint.hash,
                            iat=checkpoint.iat,
                            received_at=received_at,
                            token=checkpoint.token,
                        ).on_conflict_do_nothing()
                    )
                    held.append(Held(seq=checkpoint.seq, hash=checkpoint.hash, iat=checkpoint.iat))
                    for seq, hash_ in to_forget(held, self.thinning):
                        conn.execute(
                            delete(witnessed).where(
                                witnessed.c.node == checkpoint.node,
                                witnessed.c.seq == seq,
                                witnessed.c.hash == hash_,
                            )
                        )
                top = conn.execute(
                    select(witnessed)
                    .where(witnessed.c.node == checkpoint.node)
                    .order_by(witnessed.c.seq.desc(), witnessed.c.received_at.desc())
                    .limit(1)
                ).one()
        return Kept(latest=_checkpoint(top), conflict=conflict, new=new)

    def held(self, node: str) -> list[Checkpoint]:
        """What this witness holds of `node`, oldest first: at most MAX_WITNESSED, every
        conflict among them."""
        with self.engine.connect() as conn, conn.begin():
            rows = conn.execute(
                select(witnessed)
                .where(witnessed.c.node == node)
                .order_by(witnessed.c.seq.desc(), witnessed.c.received_at)
            ).all()
        kept = [_checkpoint(r) for r in rows]
        if len(kept) > MAX_WITNESSED:
            per_seq: dict[int, int] = {}
            for c in kept:
                per_seq[c.seq] = per_seq.get(c.seq, 0) + 1
            conflicts = [c for c in kept if per_seq[c.seq] > 1]
            rest = [c for c in kept if per_seq[c.seq] == 1]
            kept = conflicts + rest[: MAX_WITNESSED - len(conflicts)]
        return sorted(kept, key=lambda c: c.seq)


def _checkpoint(row: Row[Any]) -> Checkpoint:
    m = row._mapping
    return Checkpoint(node=m["node"], seq=m["seq"], hash=m["hash"], iat=m["iat"], token=m["token"])
