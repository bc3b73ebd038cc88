"""The enquiry log: every enquiry both ways, durable, hash-chained; also the replay guard."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable, Iterator, Mapping, MutableSequence, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg
import orjson
import structlog
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from connector.enquiries.entry import (
    GENESIS,
    ArchivedPart,
    Base,
    Direction,
    Entry,
    LoggedEntry,
    VerifyReport,
    entry_from_row,
    row_hash,
    row_problem,
    row_values,
    vouched_for,
)
from connector.enquiries.pgpath import PgPath
from connector.enquiries.schema import (
    disclosed_refs,
    enquiries,
    enquiry_archives,
    ensure_log_schema,
    make_log_engine,
    metadata,
    readiness_probe,
)
from connector.enquiries.sealing import (
    SEALED,
    Sealed,
    Seals,
    disclosure_findings,
    seal_digest,
    seal_findings,
)
from connector.errors import ConfigError, EnquiryLogError, EnquiryLogLost, Replay
from connector.metrics import Metrics
from connector.storage.files import TurnLock
from connector.storage.urls import async_url, redacted, sqlite_file

log = structlog.get_logger(__name__)

# Writers to one PostgreSQL log take this transaction-level lock before reading the chain's
# head, as SQLite writers take the write lock with BEGIN IMMEDIATE: one chain, no forks.
_PG_CHAIN_LOCK = 0x4E43_4221


@dataclass(frozen=True, slots=True, kw_only=True)
class Companion:
    """A row of another table that commits in the same transaction as its enquiry, or not at
    all: no crash can leave an enquiry without the notice it caused."""

    table: Table
    values: Mapping[str, Any]
    topic: str | None = None  # told to `on_committed` once the row is committed
    replace: bool = False  # a row with the same primary key is replaced


_SQLITE_SEEN = "SELECT 1 FROM enquiries WHERE iss = ? AND jti = ? LIMIT 1"
_SQLITE_INSERT = (
    f"INSERT INTO enquiries ({', '.join(c.name for c in enquiries.columns)}) "
    f"VALUES ({', '.join(':' + c.name for c in enquiries.columns)})"
)

_SQLITE_DISCLOSE = (
    "INSERT INTO disclosed_refs (peer, ref, first_at) VALUES (:peer, :ref, :first_at) "
    "ON CONFLICT DO NOTHING"
)


def error_kind(exc: BaseException) -> str:
    """A database failure said by its kind and code (`OperationalError: OperationalError
    SQLITE_FULL`), never its message: the driver's message may quote rows."""
    orig = getattr(exc, "orig", None)
    return (
        f"{type(exc).__name__}: {type(orig).__name__ if orig else ''} "
        f"{getattr(orig, 'sqlite_errorname', '')}".strip()
    )


_Item = tuple[Entry, Sequence[Companion]]

# What a peer or an agency reads; why (removed, replaced) is for the admin's journal.
_LOST = "the enquiry log is unavailable; this node answers again once restarted on its log"


def _seals(companions: Sequence[Companion]) -> str | None:
    """What an enquiry row commits to of its companions: each row of a table that declares
    sealed columns (`Table.info`), by its key, with the digest of those columns."""
    seals: Seals = {}
    for c in companions:
        columns = c.table.info.get(SEALED)
        if columns:
            (key,) = (c.values[col.name] for col in c.table.primary_key.columns)
            seals.setdefault(str(c.table.name), {})[str(key)] = seal_digest(c.values, columns)
    return orjson.dumps(seals, option=orjson.OPT_SORT_KEYS).decode() if seals else None


def _insert_companions(conn: Connection, companions: Sequence[Companion]) -> None:
    """Each table's rows in one statement, in the order the tables first appear."""
    by_table: dict[Table, list[Companion]] = {}
    for c in companions:
        by_table.setdefault(c.table, []).append(c)
    for table, rows in by_table.items():
        keys = [col.name for col in table.primary_key.columns]
        for c in rows:
            if c.replace:
                conn.execute(delete(table).where(and_(*(table.c[k] == c.values[k] for k in keys))))
        conn.execute(insert(table), [dict(c.values) for c in rows])


def _chained(
    items: Sequence[_Item], seq: int, prev: str, owed: Sequence[Companion] = ()
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], float]]:
    """The batch's rows chained on from row `seq` (hash `prev`), and the (peer, ref) each
    inbound answer disclosed, with when it was first given. `owed`: sealed rows committed
    without an enquiry row, which the batch's first row seals."""
    rows = []
    for e, own in items:
        seq += 1
        companions, owed = ([*owed, *own], []) if owed else (own, owed)
        # Nothing to seal, nothing to do: most answers cause no notice.
        sealed = _seals(companions) if companions else None
        values = row_values(seq, e, prev, sealed)
        values["hash"] = prev = row_hash(values)
        if sealed is None:
            values["sealed"] = None  # after hashing: NULL is left out of the hash
        rows.append(values)
    given = {(e.peer, ref): e.at for e, _ in items if e.direction == "in" for ref in e.hit_refs}
    return rows, given


@dataclass(slots=True)
class _Pending:
    entry: Entry
    companions: Sequence[Companion]
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
        metrics: Metrics | None = None,
        turns: TurnLock | None = None,
        pg: PgPath | None = None,
    ) -> None:
        self.engine = engine
        # A serving node's replay checks and commits on PostgreSQL, straight on asyncpg.
        self._pg = pg
        # Several processes committing to one SQLite log take turns on this lock before
        # BEGIN IMMEDIATE: woken as soon as the other's commit ends, not after SQLite's
        # sleep between tries (docs/architecture.md §6). None: one process, no lock.
        self._turns = turns
        self.metrics = metrics  # told each commit's time, rows, and whether it failed
        self._async = async_engine
        self._flushing: set[asyncio.Task[None]] = set()
        self._writer = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="enquiry-log")
            if writer_thread and async_engine is None
            else None
        )
        self._writer_conn: Connection | None = None  # made, used and closed in that thread
        self._committing = False
        # Sealed rows committed without an enquiry row (a denied check's watch notices, a
        # digest): the next enquiry row seals them. Taken by the commit in the writer thread.
        self._unsealed: list[Companion] = []
        self._unsealed_lock = threading.Lock()
        self.commit_delay = commit_delay
        self.max_batch = max_batch
        self._conn = engine.connect()
        self._pending: list[_Pending] = []
        self._pending_keys: set[tuple[str, str]] = set()
        self._flush_handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._flush_due = 0.0  # the loop time the scheduled flush runs at
        # Called after a commit with each topic its companion rows name (a notice's channel),
        # so delivery starts without waiting.
        self.on_committed: Callable[[str], None] | None = None
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
        # The SQLite file as opened: (st_dev, st_ino) tells it from a file put in its place.
        self.file = sqlite_file(engine.url)
        self._identity = _identity(self.file) if self.file is not None else None
        self.lost: str | None = None  # why the file is no longer the one opened
        self._lost_lock = threading.Lock()  # the writer thread and the watch job both look

    @classmethod
    def open(
        cls,
        url: str,
        *,
        commit_delay: float = 0.002,
        max_batch: int = 256,
        serving: bool = False,
        metrics: Metrics | None = None,
        shared: bool = False,
    ) -> EnquiryLog:
        """The log on a schema this version knows (a new database is created). `serving`: a
        node's, committing through asyncpg on PostgreSQL. `shared`: one of several serving
        processes of a node (on SQLite, their commits take turns on a lock file)."""
        try:
            engine = make_log_engine(url)
            aengine = pg = None
            if serving and engine.dialect.name == "postgresql":
                aengine = create_async_engine(
                    async_url(url), hide_parameters=True, pool_size=4, max_overflow=4
                )
                pg = PgPath(async_url(url), chain_lock=_PG_CHAIN_LOCK)
            log_ = cls(
                engine,
                commit_delay=commit_delay,
                max_batch=max_batch,
                async_engine=aengine,
                writer_thread=serving and engine.dialect.name == "sqlite",
                metrics=metrics,
                turns=_turn_lock(url) if shared and serving else None,
                pg=pg,
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
        if self._turns is not None:
            self._turns.close()
        self._conn.close()
        self.engine.dispose()

    async def aclose(self) -> None:
        """Commits what is pending, then closes."""
        if self._pending:
            self._flush()
        while self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
        if self._pg is not None:
            await self._pg.close()
        if self._async is not None:
            await self._async.dispose()
        self.close()

    def check_file(self) -> str | None:
        """Why the log's file is no longer the one opened (removed, replaced), or None. Once
        lost, always lost: rows committed since went to a file no one will read again, and
        nothing more is appended."""
        if self.lost is not None or self.file is None:
            return self.lost
        now = _identity(self.file)
        if now == self._identity:
            return None
        with self._lost_lock:
            if self.lost is not None:
                return self.lost
            self.lost = self._lost_because(now)
        return self.lost

    def _lost_because(self, now: tuple[int, int] | None) -> str:
        lost = (
            "the enquiry log's file was removed"
            if now is None
            else "the enquiry log's file was replaced by another file"
        )
        log.error(
            "enquiry_log_lost",
            file=str(self.file),
            reason=lost,
            opened=list(self._identity or ()),
            found=list(now or ()),
            hint="stop the node, put its log back, start it again (or `run --new-log`)",
        )
        return lost

    # --- the replay guard --------------------------------------------------------------------

    async def seen(self, iss: str, jti: str) -> bool:
        if self._async is None or (iss, jti) in self._pending_keys:
            return self.seen_now(iss, jti)
        if self._pg is not None:
            return await self._pg.seen(iss, jti)
        async with self._async.connect() as conn:
            row = (await conn.execute(self._seen_stmt, {"iss": iss, "jti": jti})).first()
        return row is not None

    async def disclosed(self, peer: str, refs: Sequence[str]) -> set[str]:
        """Which of these refs this peer has been given in an answer."""
        if self._pg is not None:
            return await self._pg.disclosed(peer, refs)
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
        self, entry: Entry, companions: Sequence[Companion] = (), *, within: float | None = None
    ) -> int:
        """Returns the row's sequence number once it and its companions are committed; Replay on
        a seen (iss, jti). `within`: how long the row may wait for others to join its commit
        (default `commit_delay`); the earliest wish of the rows waiting decides."""
        if self.lost is not None:
            raise EnquiryLogLost(_LOST)
        key = (entry.iss, entry.jti)
        if key in self._pending_keys:
            raise Replay("this jti was already used by this issuer", jti=entry.jti)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        self._pending.append(_Pending(entry=entry, companions=companions, done=fut))
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

    def append_now(self, entry: Entry, companions: Sequence[Companion] = ()) -> int:
        """Synchronous append for command-line tools (one row, one commit)."""
        return self._write([(entry, companions)])[0]

    def commit_companions(self, companions: Sequence[Companion]) -> None:
        """Rows that belong to no enquiry (a digest's notice and where the next digest
        starts), committed at once in one transaction."""
        self._conn.info["write"] = True
        with self._conn.begin():
            _insert_companions(self._conn, companions)
        owed = [c for c in companions if c.table.info.get(SEALED)]
        if owed:
            with self._unsealed_lock:
                self._unsealed.extend(owed)
        self._announce([(None, companions)])

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._committing:
            return  # the commit running now flushes again when it is done
        if self._turns is not None and self._writer is not None and self._pending:
            # The batch is taken once this process's turn has come (_flush_threaded).
            self._committing = True
            self._track(asyncio.get_running_loop().create_task(self._flush_threaded(None)))
            return
        batch, self._pending = self._pending, []
        if not batch:
            return
        if self._async is not None:
            # One commit at a time per process, as the writer thread does on SQLite: rows
            # that arrive meanwhile join the next commit instead of each queueing a commit
            # of its own on the chain's lock.
            self._committing = True
            self._track(asyncio.get_running_loop().create_task(self._flush_async(batch)))
            return
        if self._writer is not None:
            self._track(asyncio.get_running_loop().create_task(self._flush_threaded(batch)))
            return
        items = [(p.entry, p.companions) for p in batch]
        started = self._started()
        seqs = self._commit_batch(self._conn, items)
        self._settle(batch, seqs, started)
        self._announce(items)

    def _commit_batch(self, conn: Connection, items: Sequence[_Item]) -> list[int | BaseException]:
        """One commit for the batch (row by row after a conflict); never raises: a failed
        commit must fail every waiter, not hang it."""
        lost = self.check_file()  # a stat: nothing next to the commit's fsync
        if lost is not None:
            return [EnquiryLogLost(_LOST)] * len(items)
        try:
            return list(self._write_on(conn, items))
        except IntegrityError:
            return self._write_one_by_one(conn, items)
        except Exception as exc:
            # The driver's message may quote the batch's rows (other peers' enquiries):
            # it goes to no peer and into the log only as its kind and code.
            log.error("enquiry_log_commit_failed", error=error_kind(exc), rows=len(items))
            return [EnquiryLogError("the enquiry log could not be written")] * len(items)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush_threaded(self, batch: list[_Pending] | None) -> None:
        """`batch` committed by the writer thread. None: several processes share the log,
        and the batch is what is pending once the writer holds this process's turn — every
        row that arrived while another process committed goes into this one commit, so the
        processes' commits are about as few as one process's."""
        loop = asyncio.get_running_loop()
        self._committing = True
        started = self._started()
        if batch is None:
            assert self._turns is not None
            try:
                await loop.run_in_executor(self._writer, self._turns.__enter__)
            except Exception as exc:  # the lock file refused (ENOLCK): fail, never hang
                self._committing = False
                log.error("enquiry_log_commit_failed", error=error_kind(exc), rows=0)
                batch, self._pending = self._pending, []
                failed = EnquiryLogError("the enquiry log could not be written")
                self._settle(batch, [failed] * len(batch), started)
                return
            if self._flush_handle is not None:
                self._flush_handle.cancel()
                self._flush_handle = None
            batch, self._pending = self._pending, []
        items = [(p.entry, p.companions) for p in batch]
        try:
            seqs = await loop.run_in_executor(self._writer, self._commit_in_thread, items)
        except Exception as exc:
            log.error("enquiry_log_commit_failed", error=error_kind(exc), rows=len(batch))
            seqs = [EnquiryLogError("the enquiry log could not be written")] * len(batch)
        finally:
            self._committing = False
        self._settle(batch, seqs, started)
        self._announce(items)
        if self._pending and self._flush_handle is None:
            self._flush()  # what gathered while this commit ran

    def _commit_in_thread(self, items: Sequence[_Item]) -> list[int | BaseException]:
        if self._writer_conn is None:
            self._writer_conn = self.engine.connect()
        if self._turns is None:
            return self._commit_batch(self._writer_conn, items)
        try:  # the turn was taken in this thread before the batch was (_flush_threaded)
            return self._commit_batch(self._writer_conn, items)
        finally:
            self._turns.__exit__()

    async def _flush_async(self, batch: list[_Pending]) -> None:
        items = [(p.entry, p.companions) for p in batch]
        seqs: list[int | BaseException]
        started = self._started()
        try:
            seqs = list(await self._write_async(items))
        except (IntegrityError, asyncpg.IntegrityConstraintViolationError):
            seqs = []
            for item in items:
                try:
                    seqs.append((await self._write_async([item]))[0])
                except Exception as exc:
                    seqs.append(await self._failure(item[0], exc))
        except Exception as exc:
            log.error("enquiry_log_commit_failed", error=error_kind(exc), rows=len(batch))
            seqs = [EnquiryLogError("the enquiry log could not be written")] * len(batch)
        finally:
            self._committing = False
        self._settle(batch, seqs, started)
        if self._pending and self._flush_handle is None:
            self._flush()  # what gathered while this commit ran

    async def _write_async(self, items: Sequence[_Item]) -> list[int]:
        assert self._async is not None
        if self._pg is not None and not self._unsealed and not any(c for _, c in items):
            # Plain enquiry rows (most commits): no companion table to write through
            # SQLAlchemy, nothing owed a seal.
            return await self._pg.append(functools.partial(_chained, items))
        async with self._async.begin() as conn:
            seqs = await conn.run_sync(self._append_rows, items)
        self._announce(items)
        return seqs

    async def _failure(self, entry: Entry, exc: Exception) -> BaseException:
        # Only the (iss, jti) key makes a replay; another conflict is a failure.
        conflict = (IntegrityError, asyncpg.IntegrityConstraintViolationError)
        if isinstance(exc, conflict) and await self.seen(entry.iss, entry.jti):
            return Replay("this jti was already used by this issuer", jti=entry.jti)
        log.error("enquiry_log_commit_failed", error=error_kind(exc), rows=1)
        return EnquiryLogError("the enquiry log could not be written")

    def _started(self) -> float:
        return self.metrics.now() if self.metrics is not None else 0.0

    def _settle(
        self, batch: Sequence[_Pending], seqs: Sequence[int | BaseException], started: float
    ) -> None:
        if self.metrics is not None:
            self.metrics.committed(
                self.metrics.now() - started,
                len(batch),
                failed=any(isinstance(s, EnquiryLogError) for s in seqs),
            )
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
        self, conn: Connection, items: Sequence[_Item]
    ) -> list[int | BaseException]:
        out: list[int | BaseException] = []
        for e, companions in items:
            try:
                out.append(self._write_on(conn, [(e, companions)])[0])
            except IntegrityError as exc:
                # Only the (iss, jti) key makes a replay; another conflict is a failure.
                if self._seen_on(conn, e.iss, e.jti):
                    out.append(Replay("this jti was already used by this issuer", jti=e.jti))
                else:
                    log.error("enquiry_log_commit_failed", error=error_kind(exc), rows=1)
                    out.append(EnquiryLogError("the enquiry log could not be written"))
            except Exception as exc:
                log.error("enquiry_log_commit_failed", error=error_kind(exc), rows=1)
                out.append(EnquiryLogError("the enquiry log could not be written"))
        return out

    def _write(self, items: Sequence[_Item]) -> list[int]:
        seqs = self._write_on(self._conn, items)
        self._announce(items)
        return seqs

    async def probe_write(self, now: float) -> None:
        """Commit one write beside the chain (the `readiness_probe` row), by the path a
        commit of rows takes — the writer thread on SQLite, asyncpg on PostgreSQL — with the
        log's durability; the driver's error when the log accepts none."""
        if self._async is not None:
            async with self._async.begin() as aconn:
                await aconn.run_sync(self._probe_on, now)
        elif self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(
                self._writer, self._probe_in_thread, now
            )
        else:
            self._probe_on(self._conn, now, begin=True)

    def _probe_in_thread(self, now: float) -> None:
        if self._writer_conn is None:
            self._writer_conn = self.engine.connect()
        self._probe_on(self._writer_conn, now, begin=True)

    @staticmethod
    def _probe_on(conn: Connection, now: float, *, begin: bool = False) -> None:
        def write() -> None:
            conn.execute(delete(readiness_probe))
            conn.execute(insert(readiness_probe), [{"id": 1, "at": now}])

        if begin:
            conn.info["write"] = True
            with conn.begin():
                write()
        else:
            write()

    def _write_on(self, conn: Connection, items: Sequence[_Item]) -> list[int]:
        conn.info["write"] = True
        with conn.begin():
            return self._append_rows(conn, items)

    def _seen_on(self, conn: Connection, iss: str, jti: str) -> bool:
        with conn.begin():
            return conn.execute(self._seen_stmt, {"iss": iss, "jti": jti}).first() is not None

    def _append_rows(self, conn: Connection, items: Sequence[_Item]) -> list[int]:
        """Extends the chain inside the caller's transaction."""
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_PG_CHAIN_LOCK)))
        head = conn.execute(self._head_stmt).first()
        owed = self._take_unsealed() if self._unsealed else []
        seq, prev = (head.seq, head.hash) if head else (0, GENESIS)
        rows, given = _chained(items, seq, prev, owed)
        if conn.dialect.name == "sqlite":
            # The statement as the driver takes it, rows as they are: a compiled insert()
            # processes every parameter of every row again (a fan-out commits hundreds).
            conn.exec_driver_sql(_SQLITE_INSERT, rows)
        else:
            conn.execute(insert(enquiries), rows)
        _insert_companions(conn, [c for _, companions in items for c in companions])
        if given:
            refs = [{"peer": p, "ref": r, "first_at": at} for (p, r), at in given.items()]
            if conn.dialect.name == "sqlite":
                # As the rows above: a Core insert built per commit costs as much as the rows.
                conn.exec_driver_sql(_SQLITE_DISCLOSE, refs)
            else:
                conn.execute(pg_insert(disclosed_refs).on_conflict_do_nothing(), refs)
        return [r["seq"] for r in rows]

    def _take_unsealed(self) -> list[Companion]:
        """The rows the next enquiry row seals. Should its commit fail they stay unsealed
        (never reported as edited): a gap in the proof, not a false alarm."""
        with self._unsealed_lock:
            owed, self._unsealed = self._unsealed, []
        return owed

    def _announce(self, items: Sequence[tuple[Entry | None, Sequence[Companion]]]) -> None:
        if self.on_committed is not None:
            for topic in {c.topic for _, companions in items for c in companions if c.topic}:
                self.on_committed(topic)

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
                return [entry_from_row(r) for r in self._conn.execute(q)]
        except (SQLAlchemyError, ValueError, TypeError) as exc:
            # A value of the wrong type in an edited row fails inside the driver.
            raise EnquiryLogError(
                f"the enquiry log holds a damaged row ({exc}); run `ncb-connector enquiries verify`"
            ) from exc

    def get(self, enquiry_id: str) -> LoggedEntry | None:
        with self._conn.begin():
            row = self._conn.execute(select(enquiries).where(enquiries.c.id == enquiry_id)).first()
        return None if row is None else entry_from_row(row)

    def count(self) -> int:
        with self._conn.begin():
            return int(self._conn.execute(select(func.count()).select_from(enquiries)).scalar_one())

    @staticmethod
    def _iter_rows(conn: Connection) -> Iterator[dict[str, Any]]:
        for row in conn.execute(select(enquiries).order_by(enquiries.c.seq)):
            yield {str(k): v for k, v in row._mapping.items()}

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """One read transaction that sees one state of the database throughout: SQLite's
        reads do (WAL); PostgreSQL's need REPEATABLE READ, on a connection of their own."""
        if self.engine.dialect.name != "postgresql":
            with self._conn.begin():
                yield self._conn
            return
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def head(self) -> tuple[int, str]:
        """The newest row's sequence number and hash: a checkpoint to verify against later.
        (Archiving never takes the newest row, so the table holds the head.)"""
        with self._conn.begin():
            row = self._conn.execute(self._head_stmt).first()
            if row is None:
                base = _base_on(self._conn)
                return base.seq, base.hash
        return row.seq, row.hash

    def base(self) -> Base:
        """Where the live table starts: the rows before it are in archive files. On a
        connection of its own: archiving runs in a worker thread."""
        with self.engine.connect() as conn, conn.begin():
            return _base_on(conn)

    # --- archiving ---------------------------------------------------------------------------

    @contextmanager
    def archivable(
        self, before: float, *, limit: int
    ) -> Iterator[tuple[Base, Iterator[dict[str, Any]]]]:
        """The base, and the oldest rows of the live table, oldest first, up to the first
        that is not older than `before` — never the newest row, which the next append chains
        from — and at most `limit`. One snapshot on a connection of its own (callable from a
        worker thread while the node appends)."""
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                base = _base_on(conn)
                head = conn.execute(self._head_stmt).first()
                last = 0 if head is None else head.seq - 1

                def rows() -> Iterator[dict[str, Any]]:
                    q = (
                        select(enquiries)
                        .where(enquiries.c.seq > base.seq, enquiries.c.seq <= last)
                        .order_by(enquiries.c.seq)
                        .limit(limit)
                    )
                    for row in conn.execute(q):
                        values = {str(k): v for k, v in row._mapping.items()}
                        if values["at"] >= before:
                            return
                        yield values

                yield base, rows()

    def drop_archived(self, done: Mapping[str, Any]) -> int:
        """Rows `first_seq`..`last_seq` leave the table and `done` (an `enquiry_archives`
        row) becomes the base, in one transaction under the chain's write lock — only if
        the base is still the one the archive chains from and the table still holds its
        last row as archived; EnquiryLogError otherwise (another archive ran meanwhile).
        Returns the rows deleted."""
        with self.engine.connect() as conn:
            conn.info["write"] = True
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(select(func.pg_advisory_xact_lock(_PG_CHAIN_LOCK)))
                base = _base_on(conn)
                if (base.seq + 1, base.hash) != (done["first_seq"], done["prev_hash"]):
                    raise EnquiryLogError(
                        f"the log now starts after row {base.seq}, not {done['first_seq'] - 1}: "
                        "another archive ran meanwhile; nothing was removed"
                    )
                held = conn.execute(
                    select(enquiries.c.hash).where(enquiries.c.seq == done["last_seq"])
                ).scalar()
                if held != done["head_hash"]:
                    raise EnquiryLogError(
                        f"row {done['last_seq']} is not the row archived; nothing was removed"
                    )
                gone = conn.execute(
                    delete(enquiries).where(
                        enquiries.c.seq >= done["first_seq"], enquiries.c.seq <= done["last_seq"]
                    )
                ).rowcount
                if gone != done["rows"]:
                    raise EnquiryLogError(
                        f"rows {done['first_seq']}..{done['last_seq']} were {gone} in the table, "
                        f"{done['rows']} in the archive; nothing was removed"
                    )
                conn.execute(insert(enquiry_archives), [dict(done)])
        return int(gone)

    def hash_at(self, seq: int) -> str | None:
        """The hash of row `seq`, or None when the log has no such row."""
        with self._conn.begin():
            row = self._conn.execute(select(enquiries.c.hash).where(enquiries.c.seq == seq)).first()
        return None if row is None else str(row.hash)

    def verify(
        self, *, expect: tuple[int, str] | None = None, archived: ArchivedPart | None = None
    ) -> VerifyReport:
        """Walk the chain; the first row whose hash, link or sequence is off is reported.

        The chain alone cannot show that its newest rows were cut off; `expect`, a
        checkpoint (seq, hash) taken earlier, can: that row must still be there, unchanged.

        The live table starts at its base (rows before it are archived): `archived`, the
        archive files' rows already checked, must end exactly there. Without them, what
        only archived rows could prove (an older checkpoint, refs given before the base) is
        reported as not checked, never as broken.

        An intact chain then vouches for what lives beside it (`disclosed_refs`, the rows it
        sealed), read in the same snapshot: rows a running node commits meanwhile are not
        mistaken for rows added by hand.
        """
        given: dict[tuple[str, str], tuple[int, str]] = {}  # (peer, ref) → its first answer
        sealed: list[Sealed] = []
        if archived is not None:
            given.update(archived.given)
            sealed.extend(archived.sealed)
        with self._snapshot() as conn:
            base = _base_on(conn)
            report = self._walk(conn, expect, given, sealed, base=base, archived=archived)
            return self._check_outside(conn, report, given, sealed) if report.ok else report

    def _walk(
        self,
        conn: Connection,
        expect: tuple[int, str] | None,
        given: dict[tuple[str, str], tuple[int, str]],
        sealed: MutableSequence[Sealed],
        *,
        base: Base,
        archived: ArchivedPart | None,
    ) -> VerifyReport:
        """The chain checked row by row from its base, collecting the refs its inbound
        answers gave and the rows it sealed."""
        done = replace(
            VerifyReport(rows=0, ok=True, base=base),
            archived_rows=0 if archived is None else archived.rows,
        )
        if archived is not None and (archived.last_seq, archived.head) != (base.seq, base.hash):
            return replace(
                done,
                ok=False,
                broken_seq=base.seq + 1,
                problem=f"the archives end at row {archived.last_seq} (head {archived.head}), "
                f"but the live log starts after row {base.seq} (from {base.hash})",
            )
        prev, expected_seq, n = base.hash, base.seq + 1, 0
        checkpoint_seen = expect is None or expect == (0, GENESIS)
        checkpoint_archived = False
        if expect is not None and 0 < expect[0] <= base.seq:
            # Before the base: the archives' row, when given; otherwise not checked here.
            if archived is None:
                checkpoint_seen = checkpoint_archived = True
            elif archived.hashes.get(expect[0]) != expect[1]:
                return replace(
                    done,
                    ok=False,
                    broken_seq=expect[0],
                    problem="the archived row does not match the checkpoint",
                )
            else:
                checkpoint_seen = True
        for values in self._iter_rows(conn):
            n += 1
            seq = values["seq"]
            problem = row_problem(values, seq=expected_seq, prev=prev)
            if problem is not None:
                return replace(done, rows=n, ok=False, broken_seq=seq, problem=problem)
            if expect is not None and seq == expect[0]:
                if values["hash"] != expect[1]:
                    return replace(
                        done,
                        rows=n,
                        ok=False,
                        broken_seq=seq,
                        problem="the row does not match the checkpoint",
                    )
                checkpoint_seen = True
            vouched_for(values, given, sealed)
            prev, expected_seq = values["hash"], seq + 1
        if not checkpoint_seen:
            assert expect is not None
            return replace(
                done,
                rows=n,
                ok=False,
                broken_seq=expect[0],
                problem=f"row {expect[0]} of the checkpoint is gone: "
                f"rows were removed from the end of the log",
            )
        return replace(done, rows=n, head=prev, checkpoint_archived=checkpoint_archived)

    def _check_outside(
        self,
        conn: Connection,
        report: VerifyReport,
        given: Mapping[tuple[str, str], tuple[int, str]],
        sealed: Sequence[Sealed],
    ) -> VerifyReport:
        """An intact chain's word on the rows it vouches for outside itself: `disclosed_refs`
        (derived from the inbound rows' hit refs) and the companion rows the rows sealed."""
        q = select(disclosed_refs.c.peer, disclosed_refs.c.ref, disclosed_refs.c.first_at)
        stored = []
        archived_refs = 0
        # Without the archives, a ref first given by an archived row has nothing here to
        # back it: counted as not checked, not reported as added.
        archived_until = None if report.archived_rows else report.base.last_at
        for p, r, first_at in conn.execute(q):
            if archived_until is not None and first_at <= archived_until and (p, r) not in given:
                archived_refs += 1
                continue
            stored.append((p, r))
        report = replace(report, archived_refs=archived_refs)
        found = self._sealed_now(conn, sealed)
        disclosures = disclosure_findings(given, stored)
        seals = seal_findings(sealed, found, known_tables=found)
        if not disclosures and not seals:
            return report
        parts = [
            f"{len(disclosures)} disclosed ref(s)" if disclosures else "",
            f"{len(seals)} sealed row(s)" if seals else "",
        ]
        return replace(
            report,
            ok=False,
            problem=f"{' and '.join(p for p in parts if p)} do not match the chain",
            disclosures=disclosures,
            sealed=seals,
        )

    @staticmethod
    def _sealed_now(conn: Connection, sealed: Sequence[Sealed]) -> dict[str, dict[str, str]]:
        """Per table this program declares with sealed columns, the digest of each sealed
        key's row as it is now (a key not found is absent)."""
        wanted: dict[str, list[str]] = {}
        for s in sealed:
            for name, digests in s.seals.items():
                wanted.setdefault(name, []).extend(digests)
        found: dict[str, dict[str, str]] = {}
        for name, keys in wanted.items():
            table = metadata.tables.get(name)
            columns = None if table is None else table.info.get(SEALED)
            if table is None or not columns:
                continue
            (pk,) = table.primary_key.columns
            now = found.setdefault(name, {})
            for i in range(0, len(keys), 500):
                q = select(pk, *(table.c[c] for c in columns)).where(pk.in_(keys[i : i + 500]))
                for row in conn.execute(q):
                    values = dict(row._mapping)
                    now[str(values[pk.name])] = seal_digest(values, columns)
        return found


def _base_on(conn: Connection) -> Base:
    rows = conn.execute(select(enquiry_archives).order_by(enquiry_archives.c.last_seq)).all()
    if not rows:
        return Base()
    last = rows[-1]
    return Base(
        seq=last.last_seq,
        hash=last.head_hash,
        last_at=max(r.last_at for r in rows),
        files=tuple(r.file for r in rows),
    )


def _turn_lock(url: str) -> TurnLock | None:
    """Beside a SQLite log's file, the lock its serving processes commit in turn under."""
    file = sqlite_file(url)
    return None if file is None else TurnLock(file.with_name(file.name + ".commit-lock"))


def _identity(path: os.PathLike[str] | str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)
