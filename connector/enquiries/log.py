"""The enquiry log: every enquiry both ways, durable, hash-chained; also the replay guard."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import structlog
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from connector.errors import ConfigError, EnquiryLogError, Replay
from connector.notify.notice import Notice
from connector.storage.sqlite import on_connect
from connector.storage.urls import async_url, redacted, sync_url

log = structlog.get_logger("connector.enquiries.log")

GENESIS = "0" * 64
# Writers to one PostgreSQL log take this transaction-level lock before reading the chain's
# head, as SQLite writers take the write lock with BEGIN IMMEDIATE: one chain, no forks.
_PG_CHAIN_LOCK = 0x4E43_4221
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Two digits (10 bits) at a time: a ULID's 130 bits are 13 lookups instead of 26 shifts.
_CROCKFORD_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
_PAIR_SHIFTS = tuple(range(120, -10, -10))

metadata = MetaData()

enquiries = Table(
    "enquiries",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("id", String(40), nullable=False, unique=True),
    Column("at", Float, nullable=False),
    Column("direction", String(3), nullable=False),
    Column("peer", String(16), nullable=False),
    Column("iss", String(16), nullable=False),
    Column("jti", String(128), nullable=False),
    Column("sub", String(256)),
    Column("agency_kind", String(16)),
    Column("purpose", String(32)),
    Column("case_ref", String(256)),
    Column("decision", String(16), nullable=False),
    Column("rules", Text, nullable=False),
    Column("policy_digest", String(80)),
    Column("checks", Text, nullable=False),
    Column("results", Text, nullable=False),
    Column("hit_refs", Text, nullable=False),
    Column("answer_digest", String(64)),
    Column("error", Text),
    Column("query_token", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("uq_enquiries_iss_jti", "iss", "jti", unique=True),
    Index("ix_enquiries_peer_at", "peer", "at"),
    Index("ix_enquiries_at", "at"),
)

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
)

# Until when each channel's last digest counted, so the next one starts there.
digests = Table(
    "digests",
    metadata,
    Column("channel", String(64), primary_key=True),
    Column("until", Float, nullable=False),
    Column("seq", Integer, nullable=False),  # the last log row the digest counted
)

# The record references each peer was given in an answer: a check by reference is answered
# for those only (connector.yaml `matching.ref_checks`), so refs cannot be enumerated.
disclosed_refs = Table(
    "disclosed_refs",
    metadata,
    Column("peer", String(16), primary_key=True),
    Column("ref", String(200), primary_key=True),
    Column("first_at", Float, nullable=False),
)

Direction = Literal["in", "out"]
Decision = Literal["answered", "denied", "partial", "error"]


def new_enquiry_id(now: float) -> str:
    """A ULID: 48-bit millisecond time then 80 random bits, Crockford base32, sortable by time."""
    value = (int(now * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join([_CROCKFORD_PAIRS[(value >> s) & 1023] for s in _PAIR_SHIFTS])


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One enquiry as logged; `results` holds per check its status, level, rule and hit refs."""

    id: str
    at: float
    direction: Direction
    peer: str
    iss: str
    jti: str
    sub: str | None
    agency_kind: str | None
    purpose: str | None
    case_ref: str | None
    decision: Decision
    rules: tuple[str, ...]
    policy_digest: str | None
    checks: tuple[dict[str, Any], ...]
    results: tuple[dict[str, Any], ...]
    hit_refs: tuple[str, ...]
    answer_digest: str | None
    error: str | None
    query_token: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedEntry:
    seq: int
    entry: Entry
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    rows: int
    ok: bool
    broken_seq: int | None = None
    problem: str | None = None
    head: str = GENESIS


_ENTRY_FIELDS = tuple(f.name for f in fields(Entry))


def _row_values(seq: int, entry: Entry, prev_hash: str) -> dict[str, Any]:
    # Shallow on purpose: dataclasses.asdict deep-copies and costs more than the commit.
    values = {name: getattr(entry, name) for name in _ENTRY_FIELDS}
    values["rules"] = orjson.dumps(list(entry.rules)).decode()
    values["checks"] = orjson.dumps(list(entry.checks)).decode()
    values["results"] = orjson.dumps(list(entry.results)).decode()
    values["hit_refs"] = orjson.dumps(list(entry.hit_refs)).decode()
    values["seq"] = seq
    values["prev_hash"] = prev_hash
    return values


def row_hash(values: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of every column but `hash`, `prev_hash` included."""
    body = {k: v for k, v in values.items() if k != "hash"} if "hash" in values else values
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _entry_from_row(row: Any) -> LoggedEntry:
    try:
        return _decode_row(row._mapping)
    except (ValueError, TypeError, KeyError) as exc:
        raise EnquiryLogError(
            f"row {row._mapping.get('seq')} of the enquiry log is damaged "
            f"({exc}); run `ncb-connector enquiries verify`"
        ) from exc


def _decode_row(m: Any) -> LoggedEntry:
    entry = Entry(
        id=m["id"],
        at=m["at"],
        direction=m["direction"],
        peer=m["peer"],
        iss=m["iss"],
        jti=m["jti"],
        sub=m["sub"],
        agency_kind=m["agency_kind"],
        purpose=m["purpose"],
        case_ref=m["case_ref"],
        decision=m["decision"],
        rules=tuple(orjson.loads(m["rules"])),
        policy_digest=m["policy_digest"],
        checks=tuple(orjson.loads(m["checks"])),
        results=tuple(orjson.loads(m["results"])),
        hit_refs=tuple(orjson.loads(m["hit_refs"])),
        answer_digest=m["answer_digest"],
        error=m["error"],
        query_token=m["query_token"],
    )
    return LoggedEntry(seq=m["seq"], entry=entry, prev_hash=m["prev_hash"], hash=m["hash"])


_SQLITE_SEEN = "SELECT 1 FROM enquiries WHERE iss = ? AND jti = ? LIMIT 1"
_SQLITE_INSERT = (
    f"INSERT INTO enquiries ({', '.join(c.name for c in enquiries.columns)}) "
    f"VALUES ({', '.join(':' + c.name for c in enquiries.columns)})"
)


def _error_kind(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return (
        f"{type(exc).__name__}: {type(orig).__name__ if orig else ''} "
        f"{getattr(orig, 'sqlite_errorname', '')}".strip()
    )


def _notice_row(n: Notice) -> dict[str, Any]:
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


def _sqlite_begin(conn: Connection) -> None:
    # Only writers take the write lock up front; readers must not block other processes.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.pop("write", False) else "BEGIN")


def make_log_engine(url: str) -> Engine:
    # hide_parameters: an error message must never carry enquiry data (names, criteria).
    engine = create_engine(sync_url(url), hide_parameters=True)
    if engine.dialect.name == "sqlite":
        # Our own BEGIN (IMMEDIATE for writers): the chain head is read and extended under
        # the write lock, so several processes can share one log file. Every commit is
        # durable before the answer it records leaves.
        event.listen(
            engine, "connect", on_connect(synchronous="FULL", busy_ms=10_000, autocommit=True)
        )
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def ensure_log_schema(conn: Connection, *, what: str) -> None:
    """The schema check in a read transaction — a command that only reads the log must not
    queue behind the node's writers — and the write lock only to create a new log."""
    from connector.storage.migrations import Schema, ensure, status

    with conn.begin():
        if status(Schema.ENQUIRIES, conn).up_to_date:
            return
    conn.info["write"] = True
    with conn.begin():
        ensure(Schema.ENQUIRIES, conn, what=what)


@dataclass(slots=True)
class _Pending:
    entry: Entry
    notices: Sequence[Notice]
    done: asyncio.Future[int]


@dataclass(slots=True)
class _Stats:
    flushes: int = 0
    rows: int = 0
    batch_sizes: list[int] = field(default_factory=list)


class EnquiryLog:
    """Appends are group-committed: every caller awaits the commit that holds its row. The
    first append opens a short window (`commit_delay`) in which others join the same commit;
    a full batch (`max_batch`) commits at once.

    A serving node's commits do not hold the event loop: on PostgreSQL they go through
    asyncpg, on SQLite through one writer thread with its own connection (sqlite3 releases
    the GIL while it writes and fsyncs, so answers go on being computed meanwhile). While a
    commit runs, rows gather for the next one. Command-line tools commit in place."""

    def __init__(
        self,
        engine: Engine,
        *,
        commit_delay: float = 0.002,
        max_batch: int = 256,
        async_engine: AsyncEngine | None = None,
        writer_thread: bool = False,
    ) -> None:
        self.engine = engine
        self._async = async_engine
        self._flushing: set[asyncio.Task[None]] = set()
        self._writer = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="enquiry-log")
            if writer_thread and async_engine is None
            else None
        )
        self._writer_conn: Connection | None = None  # made, used and closed in that thread
        self._committing = False
        self.commit_delay = commit_delay
        self.max_batch = max_batch
        self._conn = engine.connect()
        self._pending: list[_Pending] = []
        self._pending_keys: set[tuple[str, str]] = set()
        self._flush_handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._flush_due = 0.0  # the loop time the scheduled flush runs at
        # Called after a commit that added notices, with their channels, so delivery starts
        # without waiting.
        self.on_notices: Callable[[str], None] | None = None
        self.stats = _Stats()
        # Built once: constructing a statement costs more than running it.
        self._seen_stmt = (
            select(enquiries.c.seq)
            .where(enquiries.c.iss == bindparam("iss"), enquiries.c.jti == bindparam("jti"))
            .limit(1)
        )
        self._raw: Any = None
        if engine.dialect.name == "sqlite":
            self._raw = self._conn.connection.dbapi_connection
        self._head_stmt = (
            select(enquiries.c.seq, enquiries.c.hash).order_by(enquiries.c.seq.desc()).limit(1)
        )

    @classmethod
    def open(
        cls, url: str, *, commit_delay: float = 0.002, max_batch: int = 256, serving: bool = False
    ) -> EnquiryLog:
        """The log on a schema this version knows (a new database is created). `serving`: a
        node's, committing through asyncpg on PostgreSQL."""
        try:
            engine = make_log_engine(url)
            aengine = None
            if serving and engine.dialect.name == "postgresql":
                aengine = create_async_engine(
                    async_url(url), hide_parameters=True, pool_size=4, max_overflow=4
                )
            log_ = cls(
                engine,
                commit_delay=commit_delay,
                max_batch=max_batch,
                async_engine=aengine,
                writer_thread=serving and engine.dialect.name == "sqlite",
            )
            ensure_log_schema(log_._conn, what=f"enquiry log {redacted(url)}")
        except SQLAlchemyError as exc:
            raise ConfigError(
                f"cannot open the enquiry log {redacted(url)}: {getattr(exc, 'orig', None) or exc}"
            ) from exc
        return log_

    def close(self) -> None:
        if self._pending and self._async is None and self._writer is None:
            self._flush()
        if self._writer is not None:
            if self._writer_conn is not None:
                self._writer.submit(self._writer_conn.close).result()
            self._writer.shutdown(wait=True)
        self._conn.close()
        self.engine.dispose()

    async def aclose(self) -> None:
        """Commits what is pending, then closes."""
        if self._pending:
            self._flush()
        while self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
        if self._async is not None:
            await self._async.dispose()
        self.close()

    # --- the replay guard --------------------------------------------------------------------

    async def seen(self, iss: str, jti: str) -> bool:
        if self._async is None or (iss, jti) in self._pending_keys:
            return self.seen_now(iss, jti)
        async with self._async.connect() as conn:
            row = (await conn.execute(self._seen_stmt, {"iss": iss, "jti": jti})).first()
        return row is not None

    async def disclosed(self, peer: str, refs: Sequence[str]) -> set[str]:
        """Which of these refs this peer has been given in an answer."""
        q = select(disclosed_refs.c.ref).where(
            disclosed_refs.c.peer == peer, disclosed_refs.c.ref.in_(list(refs))
        )
        if self._async is not None:
            async with self._async.connect() as conn:
                return {r for (r,) in await conn.execute(q)}
        with self._conn.begin():
            return {r for (r,) in self._conn.execute(q)}

    def seen_now(self, iss: str, jti: str) -> bool:
        if (iss, jti) in self._pending_keys:
            return True
        if self._raw is not None:
            # SQLite in autocommit mode: a read needs no transaction, and BEGIN/COMMIT
            # around it would cost more than the indexed lookup itself.
            cur = self._raw.execute(_SQLITE_SEEN, (iss, jti))
            return cur.fetchone() is not None
        with self._conn.begin():
            return self._conn.execute(self._seen_stmt, {"iss": iss, "jti": jti}).first() is not None

    # --- appending ---------------------------------------------------------------------------

    async def append(
        self, entry: Entry, notices: Sequence[Notice] = (), *, within: float | None = None
    ) -> int:
        """Returns the row's sequence number once it and its notices are committed; Replay on
        a seen (iss, jti). `within`: how long the row may wait for others to join its commit
        (default `commit_delay`); the earliest wish of the rows waiting decides."""
        key = (entry.iss, entry.jti)
        if key in self._pending_keys:
            raise Replay("this jti was already used by this issuer", jti=entry.jti)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        self._pending.append(_Pending(entry=entry, notices=notices, done=fut))
        self._pending_keys.add(key)
        # Each commit blocks the loop for an fsync; a window of a few milliseconds lets
        # twice as many rows share it, which costs less than the wait adds.
        delay = self.commit_delay if within is None else within
        if len(self._pending) >= self.max_batch:
            delay = 0.0
        due = loop.time() + delay
        if self._flush_handle is not None and self._flush_due <= due:
            return await fut
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush_due = due
        self._flush_handle = (
            loop.call_later(delay, self._flush) if delay > 0 else loop.call_soon(self._flush)
        )
        return await fut

    def append_now(self, entry: Entry, notices: Sequence[Notice] = ()) -> int:
        """Synchronous append for command-line tools (one row, one commit)."""
        return self._write([(entry, notices)])[0]

    def add_notices(
        self, notices: Sequence[Notice], *, mark_digest: tuple[str, float, int] | None = None
    ) -> None:
        """Notices that belong to no enquiry (digests, tests), committed at once; a digest
        commits where the channel's next digest starts in the same transaction."""
        self._conn.info["write"] = True
        with self._conn.begin():
            self._conn.execute(insert(outbox), [_notice_row(n) for n in notices])
            if mark_digest is not None:
                channel, until, seq = mark_digest
                self._conn.execute(delete(digests).where(digests.c.channel == channel))
                self._conn.execute(insert(digests).values(channel=channel, until=until, seq=seq))
        if self.on_notices is not None:
            for channel in {n.channel for n in notices}:
                self.on_notices(channel)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._committing:
            return  # the commit running now flushes again when it is done
        batch, self._pending = self._pending, []
        if not batch:
            return
        if self._async is not None or self._writer is not None:
            flush = self._flush_async if self._async is not None else self._flush_threaded
            task = asyncio.get_running_loop().create_task(flush(batch))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
            return
        items = [(p.entry, p.notices) for p in batch]
        seqs = self._commit_batch(self._conn, items)
        self._settle(batch, seqs)
        self._announce(items)

    def _commit_batch(
        self, conn: Connection, items: Sequence[tuple[Entry, Sequence[Notice]]]
    ) -> list[int | BaseException]:
        """One commit for the batch (row by row after a conflict); never raises: a failed
        commit must fail every waiter, not hang it."""
        try:
            return list(self._write_on(conn, items))
        except IntegrityError:
            return self._write_one_by_one(conn, items)
        except Exception as exc:
            # The driver's message may quote the batch's rows (other peers' enquiries):
            # it goes to no peer and into the log only as its kind and code.
            log.error("enquiry_log_commit_failed", error=_error_kind(exc), rows=len(items))
            return [EnquiryLogError("the enquiry log could not be written")] * len(items)

    async def _flush_threaded(self, batch: list[_Pending]) -> None:
        items = [(p.entry, p.notices) for p in batch]
        self._committing = True
        try:
            seqs = await asyncio.get_running_loop().run_in_executor(
                self._writer, self._commit_in_thread, items
            )
        except Exception as exc:
            log.error("enquiry_log_commit_failed", error=_error_kind(exc), rows=len(batch))
            seqs = [EnquiryLogError("the enquiry log could not be written")] * len(batch)
        finally:
            self._committing = False
        self._settle(batch, seqs)
        self._announce(items)
        if self._pending and self._flush_handle is None:
            self._flush()  # what gathered while this commit ran

    def _commit_in_thread(
        self, items: Sequence[tuple[Entry, Sequence[Notice]]]
    ) -> list[int | BaseException]:
        if self._writer_conn is None:
            self._writer_conn = self.engine.connect()
        return self._commit_batch(self._writer_conn, items)

    async def _flush_async(self, batch: list[_Pending]) -> None:
        items = [(p.entry, p.notices) for p in batch]
        seqs: list[int | BaseException]
        try:
            seqs = list(await self._write_async(items))
        except IntegrityError:
            seqs = []
            for item in items:
                try:
                    seqs.append((await self._write_async([item]))[0])
                except Exception as exc:
                    seqs.append(await self._failure(item[0], exc))
        except Exception as exc:
            log.error("enquiry_log_commit_failed", error=_error_kind(exc), rows=len(batch))
            seqs = [EnquiryLogError("the enquiry log could not be written")] * len(batch)
        self._settle(batch, seqs)

    async def _write_async(self, items: Sequence[tuple[Entry, Sequence[Notice]]]) -> list[int]:
        assert self._async is not None
        async with self._async.begin() as conn:
            seqs = await conn.run_sync(self._append_rows, items)
        self._announce(items)
        return seqs

    async def _failure(self, entry: Entry, exc: Exception) -> BaseException:
        # Only the (iss, jti) key makes a replay; another conflict is a failure.
        if isinstance(exc, IntegrityError) and await self.seen(entry.iss, entry.jti):
            return Replay("this jti was already used by this issuer", jti=entry.jti)
        log.error("enquiry_log_commit_failed", error=_error_kind(exc), rows=1)
        return EnquiryLogError("the enquiry log could not be written")

    def _settle(self, batch: Sequence[_Pending], seqs: Sequence[int | BaseException]) -> None:
        for p, seq in zip(batch, seqs, strict=True):
            self._pending_keys.discard((p.entry.iss, p.entry.jti))
            if p.done.done():
                continue
            if isinstance(seq, BaseException):
                p.done.set_exception(seq)
            else:
                p.done.set_result(seq)
        self.stats.flushes += 1
        self.stats.rows += len(batch)
        if len(self.stats.batch_sizes) < 10_000:
            self.stats.batch_sizes.append(len(batch))

    def _write_one_by_one(
        self, conn: Connection, items: Sequence[tuple[Entry, Sequence[Notice]]]
    ) -> list[int | BaseException]:
        out: list[int | BaseException] = []
        for e, notices in items:
            try:
                out.append(self._write_on(conn, [(e, notices)])[0])
            except IntegrityError as exc:
                # Only the (iss, jti) key makes a replay; another conflict is a failure.
                if self._seen_on(conn, e.iss, e.jti):
                    out.append(Replay("this jti was already used by this issuer", jti=e.jti))
                else:
                    log.error("enquiry_log_commit_failed", error=_error_kind(exc), rows=1)
                    out.append(EnquiryLogError("the enquiry log could not be written"))
            except Exception as exc:
                log.error("enquiry_log_commit_failed", error=_error_kind(exc), rows=1)
                out.append(EnquiryLogError("the enquiry log could not be written"))
        return out

    def _write(self, items: Sequence[tuple[Entry, Sequence[Notice]]]) -> list[int]:
        seqs = self._write_on(self._conn, items)
        self._announce(items)
        return seqs

    def _write_on(
        self, conn: Connection, items: Sequence[tuple[Entry, Sequence[Notice]]]
    ) -> list[int]:
        conn.info["write"] = True
        with conn.begin():
            return self._append_rows(conn, items)

    def _seen_on(self, conn: Connection, iss: str, jti: str) -> bool:
        with conn.begin():
            return conn.execute(self._seen_stmt, {"iss": iss, "jti": jti}).first() is not None

    def _append_rows(
        self, conn: Connection, items: Sequence[tuple[Entry, Sequence[Notice]]]
    ) -> list[int]:
        """Extends the chain inside the caller's transaction."""
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_PG_CHAIN_LOCK)))
        head = conn.execute(self._head_stmt).first()
        seq, prev = (head.seq, head.hash) if head else (0, GENESIS)
        rows = []
        for e, _ in items:
            seq += 1
            values = _row_values(seq, e, prev)
            values["hash"] = prev = row_hash(values)
            rows.append(values)
        if conn.dialect.name == "sqlite":
            # The statement as the driver takes it, rows as they are: a compiled insert()
            # processes every parameter of every row again (a fan-out commits hundreds).
            conn.exec_driver_sql(_SQLITE_INSERT, rows)
        else:
            conn.execute(insert(enquiries), rows)
        notice_rows = [_notice_row(n) for _, notices in items for n in notices]
        if notice_rows:
            conn.execute(insert(outbox), notice_rows)
        given = {(e.peer, ref): e.at for e, _ in items if e.direction == "in" for ref in e.hit_refs}
        if given:
            stmt = (
                pg_insert(disclosed_refs)
                if conn.dialect.name == "postgresql"
                else sqlite_insert(disclosed_refs)
            ).on_conflict_do_nothing()
            conn.execute(
                stmt, [{"peer": p, "ref": r, "first_at": at} for (p, r), at in given.items()]
            )
        return [r["seq"] for r in rows]

    def _announce(self, items: Sequence[tuple[Entry, Sequence[Notice]]]) -> None:
        if self.on_notices is not None:
            for channel in {n.channel for _, notices in items for n in notices}:
                self.on_notices(channel)

    # --- reading -----------------------------------------------------------------------------

    def list(
        self,
        *,
        peer: str | None = None,
        since: float | None = None,
        direction: Direction | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[LoggedEntry]:
        q = select(enquiries)
        if peer is not None:
            q = q.where(enquiries.c.peer == peer)
        if since is not None:
            q = q.where(enquiries.c.at >= since)
        if direction is not None:
            q = q.where(enquiries.c.direction == direction)
        q = q.order_by(enquiries.c.seq.desc() if newest_first else enquiries.c.seq)
        if limit is not None:
            q = q.limit(limit)
        try:
            with self._conn.begin():
                return [_entry_from_row(r) for r in self._conn.execute(q)]
        except (SQLAlchemyError, ValueError, TypeError) as exc:
            # A value of the wrong type in an edited row fails inside the driver.
            raise EnquiryLogError(
                f"the enquiry log holds a damaged row ({exc}); run `ncb-connector enquiries verify`"
            ) from exc

    def get(self, enquiry_id: str) -> LoggedEntry | None:
        with self._conn.begin():
            row = self._conn.execute(select(enquiries).where(enquiries.c.id == enquiry_id)).first()
        return None if row is None else _entry_from_row(row)

    def count(self) -> int:
        with self._conn.begin():
            return int(self._conn.execute(select(func.count()).select_from(enquiries)).scalar_one())

    def _iter_rows(self) -> Iterator[dict[str, Any]]:
        with self._conn.begin():
            for row in self._conn.execute(select(enquiries).order_by(enquiries.c.seq)):
                yield {str(k): v for k, v in row._mapping.items()}

    def head(self) -> tuple[int, str]:
        """The newest row's sequence number and hash: a checkpoint to verify against later."""
        with self._conn.begin():
            row = self._conn.execute(self._head_stmt).first()
        return (row.seq, row.hash) if row else (0, GENESIS)

    def verify(self, *, expect: tuple[int, str] | None = None) -> VerifyReport:
        """Walk the chain; the first row whose hash, link or sequence is off is reported.

        The chain alone cannot show that its newest rows were cut off; `expect`, a
        checkpoint (seq, hash) taken earlier, can: that row must still be there, unchanged.
        """
        prev, expected_seq, n = GENESIS, 1, 0
        checkpoint_seen = expect is None or expect == (0, GENESIS)
        for values in self._iter_rows():
            n += 1
            seq = values["seq"]
            if seq != expected_seq:
                return VerifyReport(
                    rows=n,
                    ok=False,
                    broken_seq=seq,
                    problem=f"row {expected_seq} is missing (next is {seq})",
                )
            if values["prev_hash"] != prev:
                return VerifyReport(
                    rows=n,
                    ok=False,
                    broken_seq=seq,
                    problem="prev_hash does not match the previous row's hash",
                )
            if row_hash(values) != values["hash"]:
                return VerifyReport(
                    rows=n,
                    ok=False,
                    broken_seq=seq,
                    problem="the row's content does not match its hash",
                )
            if expect is not None and seq == expect[0]:
                if values["hash"] != expect[1]:
                    return VerifyReport(
                        rows=n,
                        ok=False,
                        broken_seq=seq,
                        problem="the row does not match the checkpoint",
                    )
                checkpoint_seen = True
            prev, expected_seq = values["hash"], seq + 1
        if not checkpoint_seen:
            assert expect is not None
            return VerifyReport(
                rows=n,
                ok=False,
                broken_seq=expect[0],
                problem=f"row {expect[0]} of the checkpoint is gone: "
                f"rows were removed from the end of the log",
            )
        return VerifyReport(rows=n, ok=True, head=prev)


def utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now() -> float:
    return time.time()
