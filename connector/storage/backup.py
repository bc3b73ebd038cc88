"""Backup archives: one tar of files and database copies, read back with each member's digest."""

# What goes into an archive, and the signed manifest, are the node's business
# (connector/node/backup.py); here is only what needs no key: copying a live database
# consistently, writing a tar whole or not at all, and reading one back with each
# member's size and SHA-256.

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import zlib
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO

from sqlalchemy import Connection, create_engine
from sqlalchemy.engine import make_url

from connector.errors import BackupError
from connector.storage.files import atomic_file
from connector.storage.urls import redacted, sync_url

MANIFEST = "manifest.jws"
_STAMP = "%Y%m%dT%H%M%SZ"
# ncb-FR-20261207T013000Z.tar[.gz]: the node, then the UTC time, so names sort by age; a
# second archive of the same second (the timer's and an admin's) is -2, -3, ….
ARCHIVE_NAME = re.compile(
    r"^ncb-(?P<node>[A-Z]{2}(?:-[A-Z0-9]{1,8})?)-(?P<at>\d{8}T\d{6}Z)(?:-(?P<n>[1-9]\d{0,3}))?"
    r"\.tar(?:\.gz)?$"
)
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """One file in an archive, as its manifest lists it."""

    name: str
    size: int
    sha256: str
    mode: int  # 0o600 for secrets and databases, 0o644 for the rest


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """A file to put into an archive under `name`."""

    name: str
    path: Path
    mode: int


def archive_name(node: str, at: float, *, compress: bool, n: int = 1) -> str:
    """The `n`th archive name of this node and second (the first has no number)."""
    stamp = datetime.fromtimestamp(at, UTC).strftime(_STAMP)
    return f"ncb-{node}-{stamp}{f'-{n}' if n > 1 else ''}.tar{'.gz' if compress else ''}"


def archives_of(directory: Path, node: str) -> list[Path]:
    """This node's archives in `directory`, oldest first (by the time in their names)."""
    found = []
    for path in directory.iterdir():
        m = ARCHIVE_NAME.match(path.name)
        if m and m["node"] == node and path.is_file():
            found.append((m["at"], int(m["n"] or 1), path))
    return [path for _, _, path in sorted(found)]


def digest(path: Path) -> tuple[int, str]:
    """(size, SHA-256 hex) of a file."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database through its online-backup API: all pages
    in one step, under one read transaction, so a node committing meanwhile (WAL) neither
    waits nor leaves half a commit in the copy. The copy is a single file (no -wal)."""
    if not source.exists():
        raise BackupError(f"the database {source} does not exist")
    # mode=rw: never create the source if it went away between the check and here.
    src = sqlite3.connect(f"file:{source}?mode=rw", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # pages=-1: everything at once, one snapshot
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy the database {source}: {exc}") from exc
    finally:
        src.close()


@contextmanager
def sqlite_connection(path: Path) -> Iterator[Connection]:
    """A SQLAlchemy connection to a database copy, to read its schema revision and head."""
    with _connect(f"sqlite:///{path}", isolation="SERIALIZABLE") as conn:
        yield conn


@contextmanager
def _connect(url: str, *, isolation: str) -> Iterator[Connection]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level=isolation)
            with conn.begin():
                yield conn
    finally:
        engine.dispose()


@contextmanager
def postgres_snapshot(url: str) -> Iterator[tuple[Connection, str]]:
    """A REPEATABLE READ transaction and its exported snapshot: `pg_dump --snapshot` then dumps
    exactly what this transaction reads, so what is read here describes the dump."""
    try:
        with _connect(url, isolation="REPEATABLE READ") as conn:
            snapshot = str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())
            yield conn, snapshot
    except BackupError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith(("sqlalchemy", "psycopg")):
            orig = getattr(exc, "orig", None) or exc
            raise BackupError(f"cannot read the database {redacted(url)}: {orig}") from exc
        raise


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password (command lines are visible to every user), and the
    environment that passes it instead."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed (Debian: the postgresql-client package)")
    return found


def dump_postgres(url: str, target: Path, *, snapshot: str) -> None:
    """`pg_dump` in its custom format, of the snapshot `postgres_snapshot` exported."""
    uri, env = _libpq(url)
    done = subprocess.run(
        [
            _pg_tool("pg_dump"),
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            f"--snapshot={snapshot}",
            f"--file={target}",
            f"--dbname={uri}",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BackupError(f"pg_dump of {redacted(url)} failed: {done.stderr.strip()}")


def restore_postgres(dump: Path, url: str) -> None:
    """`pg_restore` into an empty database, in one transaction: all of it or nothing."""
    uri, env = _libpq(url)
    done = subprocess.run(
        [
            _pg_tool("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={uri}",
            str(dump),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BackupError(f"pg_restore into {redacted(url)} failed: {done.stderr.strip()}")


def write_archive(
    path: Path, manifest: bytes, sources: list[Source], *, at: float, compress: bool
) -> None:
    """The manifest first, then each source; the archive is 0600 from its first byte (it
    holds the node's keys), synced, and takes its name only when whole. Never replaces a
    file: an archive of the same name is already there → BackupError."""
    try:
        with atomic_file(path, mode=0o600, exclusive=True) as fh:
            # Level 6: most of what 9 saves on database pages, at a fraction of the time.
            stream: BinaryIO = (
                gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=6, mtime=int(at))  # type: ignore[assignment]
                if compress
                else fh
            )
            with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
                _add(tar, MANIFEST, 0o644, len(manifest), at, _BytesReader(manifest))
                for source in sources:
                    size = source.path.stat().st_size
                    with source.path.open("rb") as data:
                        _add(tar, source.name, source.mode, size, at, data)
            if compress:
                stream.close()  # writes gzip's trailer; fh stays open for the sync
    except FileExistsError as exc:
        raise BackupError(f"{path} already exists; not replaced") from exc


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else self._at + n
        chunk = self._data[self._at : end]
        self._at += len(chunk)
        return chunk


def _add(tar: tarfile.TarFile, name: str, mode: int, size: int, at: float, data: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = int(at)
    info.uname = info.gname = ""  # owners are the restoring admin's business
    tar.addfile(info, data)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class Found:
    """A member as read from the archive."""

    name: str
    size: int
    sha256: str
    data: bytes | None = None  # the content, of the members asked for by `keep`


def read_archive(
    path: Path,
    *,
    keep: Collection[str] = (),
    into: Mapping[str, Path] | None = None,
    what: str = "backup archive",
) -> tuple[bytes, dict[str, Found]]:
    """The manifest's bytes and every other member's size and SHA-256, in one pass; the
    content too of the (small) members named in `keep`. With `into`, the members it names
    are also written there (never over an existing file; a directory is made as needed,
    0700) — the caller checks their digests before trusting them. BackupError when the file
    is not a whole archive."""
    manifest: bytes | None = None
    found: dict[str, Found] = {}
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for info in tar:
                if not info.isfile():
                    raise BackupError(f"{path}: member {info.name!r} is not a plain file")
                if info.name in found or (info.name == MANIFEST and manifest is not None):
                    raise BackupError(f"{path}: member {info.name!r} appears twice")
                data = tar.extractfile(info)
                assert data is not None  # a plain file always has data
                if info.name == MANIFEST:
                    manifest = data.read(1 << 20)
                    continue
                target = (into or {}).get(info.name)
                if info.name in keep:
                    content = data.read()
                    found[info.name] = Found(
                        name=info.name,
                        size=len(content),
                        sha256=hashlib.sha256(content).hexdigest(),
                        data=content,
                    )
                    continue
                found[info.name] = _read_member(info.name, data, target)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BackupError(f"{path} is not a whole {what}: {exc}") from exc
    except FileNotFoundError as exc:
        raise BackupError(f"cannot read {path}: no such file") from exc
    except IsADirectoryError as exc:
        raise BackupError(f"{path} is a directory, not an archive") from exc
    if manifest is None:
        raise BackupError(f"{path} holds no {MANIFEST}: not a {what}")
    return manifest, found


def _read_member(name: str, data: IO[bytes], target: Path | None) -> Found:
    h = hashlib.sha256()
    size = 0
    if target is None:
        while chunk := data.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
        return Found(name=name, size=size, sha256=h.hexdigest())
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        with atomic_file(target, mode=0o600, exclusive=True) as out:
            while chunk := data.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
                out.write(chunk)
    except FileExistsError as exc:
        raise BackupError(f"{target} already exists; a restore never replaces a file") from exc
    return Found(name=name, size=size, sha256=h.hexdigest())
