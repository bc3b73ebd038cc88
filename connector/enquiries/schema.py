"""The enquiry log's database: its tables, its engine, and the check of its schema version."""

from __future__ import annotations

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
    create_engine,
    event,
)

from connector.storage.sqlite import create_private, on_connect
from connector.storage.urls import sqlite_file, sync_url

# Other packages keep their own tables in this database (notify: the outbox and digests), so
# that their rows commit in the same transaction as the enquiry that caused them.
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
    # The companion rows this row commits to, {table: {key: sha256}} as JSON (rows of a table
    # whose `info` names its sealed columns: notify's outbox); NULL when none, and in every
    # row written before revision e0003. Hashed only when not NULL (entry.row_hash).
    Column("sealed", Text),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("uq_enquiries_iss_jti", "iss", "jti", unique=True),
    Index("ix_enquiries_peer_at", "peer", "at"),
    Index("ix_enquiries_at", "at"),
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


# One row per archive written (`enquiries archive`): the rows up to `last_seq` left the table
# for that file in the transaction that wrote this row. The newest is the base the live log
# chains from; `last_at` is the newest `at` archived (disclosed refs given before it may be
# backed by archived rows only).
enquiry_archives = Table(
    "enquiry_archives",
    metadata,
    Column("last_seq", Integer, primary_key=True, autoincrement=False),
    Column("first_seq", Integer, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("first_at", Float, nullable=False),
    Column("last_at", Float, nullable=False),
    Column("file", String(200), nullable=False),
    Column("archived_at", Float, nullable=False),
)


# One row, rewritten by the readiness job: a committed write beside the chain, by the path a
# commit takes, proves the log accepts one (a disk that is full or read-only, a database in
# recovery do not).
readiness_probe = Table(
    "readiness_probe",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", Float, nullable=False),
)


def _sqlite_begin(conn: Connection) -> None:
    # Only writers take the write lock up front; readers must not block other processes.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.pop("write", False) else "BEGIN")


def make_log_engine(url: str) -> Engine:
    # hide_parameters: an error message must never carry enquiry data (names, criteria).
    engine = create_engine(sync_url(url), hide_parameters=True)
    if engine.dialect.name == "sqlite":
        create_private(sqlite_file(url))
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
