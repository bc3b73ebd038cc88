"""Enquiry-log archives: the oldest rows moved into signed, hash-linked files, and checked."""

# An archive is a gzip'd tar, written and read by storage/backup as a node backup is: a
# manifest signed by the node's key (JWS), then one member, the rows as NDJSON with every
# column the chain hashes, so a reader recomputes every hash. Each archive's first row
# chains from the previous archive's head (the first archive's from GENESIS), and the live
# table from the newest archive's head: one chain across the files and the table.

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import structlog
from sqlalchemy.exc import SQLAlchemyError

from connector.crypto.jws import PublicKey, Signer, parse_compact
from connector.enquiries.entry import (
    GENESIS,
    ArchivedPart,
    Base,
    row_problem,
    utc_iso,
    vouched_for,
)
from connector.enquiries.log import EnquiryLog
from connector.enquiries.sealing import Sealed
from connector.errors import BackupError, ConnectorError, EnquiryArchiveError, ProtocolError
from connector.storage.backup import Source, read_archive, write_archive

log = structlog.get_logger(__name__)

ARCHIVE_TYP = "ncb-enquiry-archive+jwt"
FORMAT = "ncb-connector-enquiry-archive/1"
ROWS = "rows.ndjson"
SUFFIX = ".ncbarchive"
# enquiries-FR-0000000001-0000052344.ncbarchive: the node, then the rows, so names sort by seq.
ARCHIVE_NAME = re.compile(
    r"^enquiries-(?P<node>[A-Z]{2}(?:-[A-Z0-9]{1,8})?)-(?P<first>\d{10,})-(?P<last>\d{10,})"
    + re.escape(SUFFIX)
    + "$"
)
DAY_S = 86_400
# Rows per file: the delete that follows each file holds the log's write lock for about a
# second per 100 000 rows (SQLite, docs/operations.md §11), and the node's commits wait.
MAX_ROWS = 100_000


def archive_name(node: str, first_seq: int, last_seq: int) -> str:
    return f"enquiries-{node}-{first_seq:010d}-{last_seq:010d}{SUFFIX}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """What an archive holds, as its node signed it."""

    node: str
    kid: str
    first_seq: int
    last_seq: int
    prev_hash: str  # the hash row `first_seq` chains from: the previous archive's head
    head_hash: str  # the hash of row `last_seq`: what the next archive, or the table, chains from
    rows: int
    first_at: float
    last_at: float
    rows_sha256: str
    rows_size: int
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "node": self.node,
            "kid": self.kid,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "prev_hash": self.prev_hash,
            "head_hash": self.head_hash,
            "rows": self.rows,
            # Seconds since the epoch, exactly as the rows' `at`: the base's `last_at` is
            # compared with `disclosed_refs.first_at`, which a rounded time could miss.
            "first_at": self.first_at,
            "last_at": self.last_at,
            "rows_member": {"name": ROWS, "sha256": self.rows_sha256, "size": self.rows_size},
            "created_at": utc_iso(self.created_at, timespec="auto"),
        }

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        try:
            if data["format"] != FORMAT:
                raise EnquiryArchiveError(
                    f"the manifest is of format {data['format']!r}, not {FORMAT}"
                )
            return cls(
                node=str(data["node"]),
                kid=str(data["kid"]),
                first_seq=int(data["first_seq"]),
                last_seq=int(data["last_seq"]),
                prev_hash=str(data["prev_hash"]),
                head_hash=str(data["head_hash"]),
                rows=int(data["rows"]),
                first_at=float(data["first_at"]),
                last_at=float(data["last_at"]),
                rows_sha256=str(data["rows_member"]["sha256"]),
                rows_size=int(data["rows_member"]["size"]),
                created_at=datetime.fromisoformat(data["created_at"]).timestamp(),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EnquiryArchiveError(
                f"the manifest is not one this version reads ({exc!r})"
            ) from exc


# --- reading and checking -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Opened:
    """One archive file checked on its own: its signature, its rows member against the
    manifest, and every row's hash and link. `problems` name the row where one is."""

    path: Path
    manifest: Manifest | None
    problems: tuple[str, ...]
    given: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    sealed: tuple[Sealed, ...] = ()
    hashes: dict[int, str] = field(default_factory=dict)  # of the seqs asked for

    @property
    def ok(self) -> bool:
        return not self.problems


def open_archive(
    path: Path, *, keys: Sequence[PublicKey], node: str, wanted: Collection[int] = ()
) -> Opened:
    """Check one archive file: signed by one of `keys` (the node's key, and earlier ones),
    of `node`, its rows member as the manifest says, each row hashing to its hash and
    chaining from the one before, from `prev_hash` to `head_hash`."""
    try:
        token, found = read_archive(path, keep=(ROWS,), what="enquiry-log archive")
    except BackupError as exc:
        return Opened(path=path, manifest=None, problems=(exc.detail,))
    try:
        jws = parse_compact(token)
        if jws.typ != ARCHIVE_TYP:
            raise EnquiryArchiveError(f"the manifest is a {jws.typ!r} token, not {ARCHIVE_TYP}")
        manifest = Manifest.from_json(orjson.loads(jws.payload))
    except (ProtocolError, EnquiryArchiveError, orjson.JSONDecodeError) as exc:
        detail = exc.detail if isinstance(exc, ConnectorError) else str(exc)
        return Opened(path=path, manifest=None, problems=(f"the manifest is unreadable: {detail}",))
    problems: list[str] = []
    if not any(k.kid == jws.kid and k.verify(jws.signing_input, jws.signature) for k in keys):
        problems.append(
            "the manifest is not signed by this node's key: it was made or changed by someone else"
        )
    if manifest.node != node:
        problems.append(f"the archive is node {manifest.node}'s, this node is {node}")
    rows = found.get(ROWS)
    if rows is None or rows.data is None:
        problems.append(f"{ROWS} is missing")
        return Opened(path=path, manifest=manifest, problems=tuple(problems))
    if (rows.size, rows.sha256) != (manifest.rows_size, manifest.rows_sha256):
        problems.append(
            f"{ROWS} is not as the manifest says (SHA-256 {rows.sha256[:16]}…, {rows.size} "
            f"bytes; signed: {manifest.rows_sha256[:16]}…, {manifest.rows_size} bytes)"
        )
    given: dict[tuple[str, str], tuple[int, str]] = {}
    sealed: list[Sealed] = []
    hashes: dict[int, str] = {}
    wanted_set = set(wanted)
    seq, prev = manifest.first_seq, manifest.prev_hash
    for number, line in enumerate(rows.data.splitlines(), start=1):
        try:
            values = orjson.loads(line)
            problem = row_problem(values, seq=seq, prev=prev)
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            problem = f"line {number} is not a row ({exc})"
        if problem is not None:
            problems.append(f"row {seq}: {problem}")
            break
        vouched_for(values, given, sealed)
        if seq in wanted_set:
            hashes[seq] = values["hash"]
        prev, seq = values["hash"], seq + 1
    else:
        n = seq - manifest.first_seq
        if (n, seq - 1, prev) != (manifest.rows, manifest.last_seq, manifest.head_hash):
            problems.append(
                f"holds rows {manifest.first_seq}..{seq - 1} ({n}) ending on {prev[:16]}…, "
                f"but its manifest says rows {manifest.first_seq}..{manifest.last_seq} "
                f"({manifest.rows}) ending on {manifest.head_hash[:16]}…"
            )
    return Opened(
        path=path,
        manifest=manifest,
        problems=tuple(problems),
        given=given,
        sealed=tuple(sealed),
        hashes=hashes,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveCheck:
    """Archive files checked each on its own and as one chain, in seq order."""

    files: tuple[Opened, ...]  # by first row
    links: tuple[str, ...]  # gaps, overlaps and broken links between the files
    part: ArchivedPart | None  # None unless every file and link holds

    @property
    def ok(self) -> bool:
        return self.part is not None


def check_archives(
    paths: Iterable[Path], *, keys: Sequence[PublicKey], node: str, wanted: Collection[int] = ()
) -> ArchiveCheck:
    """Every file (given in any order) checked, then linked: the first from row 1 and
    GENESIS, each next one from the row after the last and the hash it ended on."""
    opened = [open_archive(p, keys=keys, node=node, wanted=wanted) for p in dict.fromkeys(paths)]
    readable = sorted(
        (o for o in opened if o.manifest is not None),
        key=lambda o: (o.manifest.first_seq, o.manifest.last_seq) if o.manifest else (0, 0),
    )
    files = tuple(readable + [o for o in opened if o.manifest is None])
    links: list[str] = []
    seq, head, before = 0, GENESIS, None
    for o in readable:
        m = o.manifest
        assert m is not None
        where = f"after {before.path.name}" if before is not None else "at the start"
        if m.first_seq > seq + 1:
            links.append(
                f"rows {seq + 1}..{m.first_seq - 1} are in none of the archives given "
                f"({where}, before {o.path.name}): an archive is missing"
            )
        elif m.first_seq <= seq:
            assert before is not None
            links.append(
                f"{o.path.name} and {before.path.name} both hold rows "
                f"{m.first_seq}..{min(seq, m.last_seq)}"
            )
        elif m.prev_hash != head:
            links.append(
                f"{o.path.name} does not chain from "
                f"{before.path.name if before else 'the start of the log'}: its row "
                f"{m.first_seq} follows {m.prev_hash[:16]}…, not {head[:16]}…"
            )
        seq, head, before = m.last_seq, m.head_hash, o
    if not opened or links or not all(o.ok for o in opened):
        return ArchiveCheck(files=files, links=tuple(links), part=None)
    given: dict[tuple[str, str], tuple[int, str]] = {}
    sealed: list[Sealed] = []
    hashes: dict[int, str] = {}
    for o in readable:
        for key, first in o.given.items():
            given.setdefault(key, first)
        sealed.extend(o.sealed)
        hashes.update(o.hashes)
    part = ArchivedPart(
        last_seq=seq,
        head=head,
        rows=sum(o.manifest.rows for o in readable if o.manifest),
        given=given,
        sealed=tuple(sealed),
        hashes=hashes,
    )
    return ArchiveCheck(files=files, links=(), part=part)


def archive_files(paths: Iterable[Path]) -> list[Path]:
    """The files given, a directory standing for every archive file in it."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.name.endswith(SUFFIX)))
        else:
            out.append(path)
    return out


# --- writing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Archived:
    """What one archive run did: the files written, oldest first (none: no row was old
    enough), and the rows they hold."""

    rows: int
    files: tuple[Path, ...] = ()
    first_seq: int | None = None
    last_seq: int | None = None
    head: str | None = None
    base: Base = field(default_factory=Base)  # where the live log starts now
    # An archive an earlier run wrote but could not finish (its rows then removed here).
    resumed: Path | None = None


@dataclass(slots=True)
class _Staged:
    path: Path
    base: Base = field(default_factory=Base)
    rows: int = 0
    first_seq: int = 0
    last_seq: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    head: str = GENESIS
    size: int = 0
    sha256: str = ""


def archive_log(
    enquiry_log: EnquiryLog,
    *,
    signer: Signer,
    node: str,
    before: float,
    directory: Path,
    clock: Callable[[], float] = time.time,
    max_rows: int = MAX_ROWS,
) -> Archived:
    """Move the rows older than `before` (never the newest) into archive files in
    `directory`, at most `max_rows` a file. Each file is written whole and synced, read
    back and checked; only then are its rows removed, in the transaction that records the
    new base. A run that stopped between the two (a crash) is finished first."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        resumed = _resume(enquiry_log, signer=signer, node=node, directory=directory)
    except OSError as exc:
        raise EnquiryArchiveError(
            f"no archive made: {exc.filename or directory}: {exc.strerror or exc}"
        ) from exc
    files: list[Archived] = []
    while True:
        one = _archive_one(
            enquiry_log,
            signer=signer,
            node=node,
            before=before,
            directory=directory,
            clock=clock,
            max_rows=max_rows,
        )
        if one.rows:
            files.append(one)
        if one.rows < max_rows:
            break
    if not files:
        return Archived(rows=0, base=one.base, resumed=resumed)
    return Archived(
        rows=sum(f.rows for f in files),
        files=tuple(p for f in files for p in f.files),
        first_seq=files[0].first_seq,
        last_seq=files[-1].last_seq,
        head=files[-1].head,
        base=files[-1].base,
        resumed=resumed,
    )


def _archive_one(
    enquiry_log: EnquiryLog,
    *,
    signer: Signer,
    node: str,
    before: float,
    directory: Path,
    clock: Callable[[], float],
    max_rows: int,
) -> Archived:
    try:
        staged = _stage(enquiry_log, before=before, directory=directory, limit=max_rows)
    except OSError as exc:
        raise EnquiryArchiveError(
            f"no archive made: {exc.filename or directory}: {exc.strerror or exc}"
        ) from exc
    if staged.rows == 0:
        return Archived(rows=0, base=staged.base)
    try:
        path = _write(staged, signer=signer, node=node, directory=directory, at=clock())
    finally:
        staged.path.unlink(missing_ok=True)
    try:
        done = _finish(enquiry_log, path, signer=signer, node=node, at=clock())
    except EnquiryArchiveError:
        base = enquiry_log.base()
        if path.name in base.files:
            # Another run (the node's job, say) found this file and finished it first.
            done = Base(seq=base.seq, hash=base.hash, last_at=base.last_at)
        elif base.seq >= staged.last_seq:
            # Another run archived these rows into its own file meanwhile: this copy would
            # overlap it, and its rows are safe there.
            path.unlink(missing_ok=True)
            raise EnquiryArchiveError(
                f"another archive run took rows up to {base.seq} meanwhile; nothing more "
                "was removed (run again for newer rows)"
            ) from None
        else:
            raise
    return Archived(
        rows=staged.rows,
        files=(path,),
        first_seq=staged.first_seq,
        last_seq=staged.last_seq,
        head=staged.head,
        base=done,
    )


def _stage(enquiry_log: EnquiryLog, *, before: float, directory: Path, limit: int) -> _Staged:
    """The rows to archive as NDJSON in a temporary file beside the archives, hashed as they
    are written (they are streamed: a day of rows need not fit in memory); none, no file."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".enquiries-", suffix=".ndjson.tmp")
    staged = _Staged(path=Path(tmp))
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as fh, enquiry_log.archivable(before, limit=limit) as (base, rows):
            staged.base = base
            for values in rows:
                if staged.rows == 0 and values["prev_hash"] != base.hash:
                    raise EnquiryArchiveError(
                        f"row {values['seq']} does not chain from where the log starts (row "
                        f"{base.seq}, {base.hash[:16]}…): nothing archived; run "
                        "`ncb-connector enquiries verify`"
                    )
                line = orjson.dumps(values, option=orjson.OPT_SORT_KEYS) + b"\n"
                fh.write(line)
                digest.update(line)
                staged.size += len(line)
                if staged.rows == 0:
                    staged.first_seq, staged.first_at = values["seq"], values["at"]
                staged.rows += 1
                staged.last_seq, staged.head = values["seq"], values["hash"]
                staged.first_at = min(staged.first_at, values["at"])
                staged.last_at = max(staged.last_at, values["at"])
    except BaseException:
        staged.path.unlink(missing_ok=True)
        raise
    if staged.rows == 0:
        staged.path.unlink(missing_ok=True)
    staged.sha256 = digest.hexdigest()
    return staged


def _write(staged: _Staged, *, signer: Signer, node: str, directory: Path, at: float) -> Path:
    manifest = Manifest(
        node=node,
        kid=signer.kid,
        first_seq=staged.first_seq,
        last_seq=staged.last_seq,
        prev_hash=staged.base.hash,
        head_hash=staged.head,
        rows=staged.rows,
        first_at=staged.first_at,
        last_at=staged.last_at,
        rows_sha256=staged.sha256,
        rows_size=staged.size,
        created_at=at,
    )
    token = signer.sign_compact(orjson.dumps(manifest.to_json()), typ=ARCHIVE_TYP)
    path = directory / archive_name(node, staged.first_seq, staged.last_seq)
    try:
        write_archive(
            path, token, [Source(name=ROWS, path=staged.path, mode=0o600)], at=at, compress=True
        )
    except BackupError as exc:
        raise EnquiryArchiveError(f"no row removed: {exc.detail}") from exc
    except OSError as exc:
        raise EnquiryArchiveError(
            f"no row removed: cannot write {path}: {exc.strerror or exc}"
        ) from exc
    return path


def _finish(enquiry_log: EnquiryLog, path: Path, *, signer: Signer, node: str, at: float) -> Base:
    """The file read back and checked, then its rows removed and the base moved, at once."""
    opened = open_archive(path, keys=[signer.public], node=node)
    if not opened.ok or opened.manifest is None:
        raise EnquiryArchiveError(
            f"{path} does not read back as written ({'; '.join(opened.problems)}); "
            "no row was removed — check the disk, then run the archive again"
        )
    m = opened.manifest
    try:
        enquiry_log.drop_archived(
            {
                "last_seq": m.last_seq,
                "first_seq": m.first_seq,
                "prev_hash": m.prev_hash,
                "head_hash": m.head_hash,
                "rows": m.rows,
                "first_at": m.first_at,
                "last_at": m.last_at,
                "file": path.name,
                "archived_at": at,
            }
        )
    except ConnectorError as exc:
        raise EnquiryArchiveError(f"{path} is written, but {exc.detail}") from exc
    log.info(
        "enquiries_archived",
        rows=m.rows,
        file=str(path),
        first_seq=m.first_seq,
        last_seq=m.last_seq,
        head=m.head_hash,
    )
    return Base(seq=m.last_seq, hash=m.head_hash, last_at=m.last_at)


def _resume(enquiry_log: EnquiryLog, *, signer: Signer, node: str, directory: Path) -> Path | None:
    """An archive of the rows right after the base, written by a run that stopped before
    it removed them: its rows are removed now, if the table still holds them as archived."""
    base = enquiry_log.base()
    for path in _candidates(directory, node, first_seq=base.seq + 1):
        if path.name in base.files:
            continue
        _finish(enquiry_log, path, signer=signer, node=node, at=time.time())
        return path
    return None


def _candidates(directory: Path, node: str, *, first_seq: int) -> Iterator[Path]:
    for path in sorted(directory.iterdir()):
        m = ARCHIVE_NAME.match(path.name)
        if m and m["node"] == node and int(m["first"]) == first_seq and path.is_file():
            yield path


# --- the scheduled job ----------------------------------------------------------------------


class Archiver:
    """`retention:` in connector.yaml: the rows older than `after_days` archived on a
    schedule, in a worker thread (the node keeps answering; its appends and the archive's
    delete take the chain's write lock in turn)."""

    def __init__(
        self,
        *,
        enquiry_log: EnquiryLog,
        signer: Signer,
        node: str,
        directory: Path,
        after_days: int,
        clock: Callable[[], float],
    ) -> None:
        self.enquiry_log = enquiry_log
        self.signer = signer
        self.node = node
        self.directory = directory
        self.after_days = after_days
        self.clock = clock

    async def run(self) -> Archived | None:
        """One run, as a job of the scheduler; a failure is an error event, never a crash."""
        before = self.clock() - self.after_days * DAY_S
        try:
            return await asyncio.to_thread(
                archive_log,
                self.enquiry_log,
                signer=self.signer,
                node=self.node,
                before=before,
                directory=self.directory,
                clock=self.clock,
            )
        except ConnectorError as exc:
            log.error("enquiries_archive_failed", dir=str(self.directory), error=exc.detail)
        except (OSError, SQLAlchemyError) as exc:
            # The database's message may quote rows: its kind only, as the log's commits do.
            log.error("enquiries_archive_failed", dir=str(self.directory), error=type(exc).__name__)
        return None
