"""Enquiry-log archives: rows moved into signed files, and the chain verified through them."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

import orjson
import pytest
from support.databases import DatabaseUrl, run_sql
from support.entries import entry

from connector.crypto.jws import Signer, SigningKey
from connector.enquiries.archive import (
    ARCHIVE_TYP,
    ROWS,
    Manifest,
    archive_log,
    check_archives,
)
from connector.enquiries.entry import GENESIS
from connector.enquiries.log import EnquiryLog
from connector.errors import EnquiryArchiveError
from connector.storage.backup import MANIFEST, read_archive

T0 = 1_790_000_000.0  # support.entries.entry(n) is logged at T0 + n


@pytest.fixture
def db(db_url: DatabaseUrl) -> str:
    return db_url("enquiries")


@pytest.fixture
def signer() -> Signer:
    return Signer(SigningKey.generate())


@pytest.fixture
def adir(tmp_path: Path) -> Path:
    """The archive directory (the SQLite log is in tmp_path)."""
    return tmp_path / "archive"


def _filled(db: str, rows: int) -> EnquiryLog:
    log = EnquiryLog.open(db)
    for n in range(1, rows + 1):
        log.append_now(entry(n))
    return log


def _archive(log: EnquiryLog, signer: Signer, directory: Path, before_n: int) -> Path:
    done = archive_log(log, signer=signer, node="FR", before=T0 + before_n, directory=directory)
    (path,) = done.files
    return path


def test_archive_and_verify_round_trip(db: str, signer: Signer, adir: Path) -> None:
    log = _filled(db, 30)
    try:
        head = log.head()
        done = archive_log(log, signer=signer, node="FR", before=T0 + 21, directory=adir)
        assert (done.rows, done.first_seq, done.last_seq) == (20, 1, 20)
        (path,) = done.files
        assert path == adir / "enquiries-FR-0000000001-0000000020.ncbarchive"
        assert done.base.seq == 20
        assert done.head == done.base.hash
        assert log.count() == 10
        assert log.head() == head
        # Without the archive: the live part holds, and says where it starts.
        alone = log.verify()
        assert alone.ok
        assert alone.rows == 10
        assert alone.last_seq == 30
        assert alone.base.seq == 20
        assert alone.archived_rows == 0
        assert alone.base.files == (path.name,)
        # With it: every row from 1, into the table.
        checked = check_archives([path], keys=[signer.public], node="FR")
        assert checked.ok
        assert checked.part is not None
        assert (checked.part.last_seq, checked.part.rows) == (20, 20)
        whole = log.verify(archived=checked.part)
        assert whole.ok
        assert whole.archived_rows == 20
        assert whole.head == head[1]
        # New rows chain on from the table's head as before.
        log.append_now(entry(31))
        assert log.verify(archived=checked.part).ok
        # Nothing older than the oldest row left: not an error, nothing written.
        again = archive_log(log, signer=signer, node="FR", before=T0 + 5, directory=adir)
        assert again.rows == 0
        assert again.files == ()
        assert sorted(p.name for p in adir.iterdir()) == [path.name]
    finally:
        log.close()


def test_the_newest_row_always_stays(db: str, signer: Signer, adir: Path) -> None:
    log = _filled(db, 5)
    try:
        done = archive_log(log, signer=signer, node="FR", before=T0 + 10**6, directory=adir)
        assert (done.rows, done.last_seq) == (4, 4)
        assert log.count() == 1
        assert log.head()[0] == 5
    finally:
        log.close()


def test_consecutive_archives_link_in_any_order(db: str, signer: Signer, adir: Path) -> None:
    log = _filled(db, 40)
    try:
        first = _archive(log, signer, adir, 11)
        second = _archive(log, signer, adir, 31)
        m1, m2 = _manifest(first), _manifest(second)
        assert (m1.first_seq, m1.last_seq, m1.prev_hash) == (1, 10, GENESIS)
        assert (m2.first_seq, m2.last_seq, m2.prev_hash) == (11, 30, m1.head_hash)
        checked = check_archives([second, first], keys=[signer.public], node="FR")
        assert checked.ok
        assert checked.part is not None
        assert checked.part.rows == 30
        assert log.verify(archived=checked.part).ok
        # One missing: the rows it held are named, and so is the gap.
        only_second = check_archives([second], keys=[signer.public], node="FR")
        assert not only_second.ok
        assert only_second.links == (
            f"rows 1..10 are in none of the archives given (at the start, before "
            f"{second.name}): an archive is missing",
        )
        # Given twice under two names: an overlap.
        copy = adir / "copy.ncbarchive"
        copy.write_bytes(first.read_bytes())
        twice = check_archives([first, copy, second], keys=[signer.public], node="FR")
        assert any("both hold rows 1..10" in link for link in twice.links)
        # Archives that end short of the table's base do not link to it.
        short = check_archives([first], keys=[signer.public], node="FR")
        assert short.part is not None
        report = log.verify(archived=short.part)
        assert not report.ok
        assert report.broken_seq == 31
        assert "the archives end at row 10" in (report.problem or "")
    finally:
        log.close()


def _manifest(path: Path) -> Manifest:
    token, _ = read_archive(path)
    payload = token.split(b".")[1]
    from connector.crypto.jws import b64url_decode

    return Manifest.from_json(orjson.loads(b64url_decode(payload)))


def _rewrite(path: Path, *, token: bytes | None = None, rows: bytes | None = None) -> None:
    """The archive with its manifest or rows member replaced, as an intruder would."""
    old_token, found = read_archive(path, keep=(ROWS,))
    data = rows if rows is not None else found[ROWS].data
    assert data is not None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in ((MANIFEST, token or old_token), (ROWS, data)):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    path.write_bytes(buf.getvalue())


def _tampered_rows(path: Path) -> bytes:
    data = read_archive(path, keep=(ROWS,))[1][ROWS].data
    assert data is not None
    lines = data.splitlines()
    row = orjson.loads(lines[4])
    row["sub"] = "someone/else"
    lines[4] = orjson.dumps(row, option=orjson.OPT_SORT_KEYS)
    return b"\n".join(lines) + b"\n"


def _resigned(path: Path, signer: Signer, rows: bytes) -> bytes:
    """A manifest re-signed over `rows` (what only a holder of the key could make)."""
    import hashlib

    m = _manifest(path).to_json()
    m["rows_member"] = {"name": ROWS, "sha256": hashlib.sha256(rows).hexdigest(), "size": len(rows)}
    return signer.sign_compact(orjson.dumps(m), typ=ARCHIVE_TYP)


def test_each_kind_of_damage_is_named(signer: Signer, tmp_path: Path) -> None:
    log = _filled(f"sqlite:///{tmp_path / 'e.db'}", 40)
    try:
        first = _archive(log, signer, tmp_path / "a", 11)
        second = _archive(log, signer, tmp_path / "a", 31)
    finally:
        log.close()
    pristine = {p: p.read_bytes() for p in (first, second)}

    def problems(*paths: Path) -> list[str]:
        checked = check_archives(paths, keys=[signer.public], node="FR")
        assert not checked.ok
        return [f"{o.path.name}: {p}" for o in checked.files for p in o.problems] + list(
            checked.links
        )

    # A row edited: the rows member no longer matches the signed digest.
    _rewrite(first, rows=_tampered_rows(first))
    digest, row = problems(first, second)
    assert digest.startswith(f"{first.name}: {ROWS} is not as the manifest says")
    assert row == f"{first.name}: row 5: the row's content does not match its hash"
    # Edited and re-signed with the key (digest recomputed): the row's own hash fails.
    rows = _tampered_rows(first)
    _rewrite(first, token=_resigned(first, signer, rows), rows=rows)
    assert problems(first, second) == [
        f"{first.name}: row 5: the row's content does not match its hash"
    ]
    # Another archive's manifest put in: its digest, and its place in the chain, are wrong.
    first.write_bytes(pristine[first])
    _rewrite(first, token=read_archive(second)[0])
    found_all = problems(first, second)
    assert any(p.startswith(f"{first.name}: {ROWS} is not as the manifest says") for p in found_all)
    assert any("both hold rows 11..30" in p for p in found_all)
    # Signed by another key.
    first.write_bytes(pristine[first])
    stranger = Signer(SigningKey.generate())
    rows = read_archive(first, keep=(ROWS,))[1][ROWS].data or b""
    _rewrite(first, token=_resigned(first, stranger, rows))
    assert problems(first, second) == [
        f"{first.name}: the manifest is not signed by this node's key: it was made or changed "
        "by someone else"
    ]
    # Not an archive at all.
    first.write_bytes(b"not a tar")
    unreadable, missing = problems(first, second)
    assert unreadable.startswith(f"{first.name}: {first} is not a whole enquiry-log archive")
    assert missing.startswith("rows 1..10 are in none of the archives given")


def test_a_crash_between_write_and_delete_loses_nothing(
    db: str, signer: Signer, adir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _filled(db, 30)
    try:
        head = log.head()

        def crash(self: EnquiryLog, done: object) -> int:
            raise OSError("power cut")

        with monkeypatch.context() as m:
            m.setattr(EnquiryLog, "drop_archived", crash)
            with pytest.raises(OSError, match="power cut"):
                archive_log(log, signer=signer, node="FR", before=T0 + 21, directory=adir)
        (written,) = adir.iterdir()  # the file is whole, no temporary left beside it
        assert log.count() == 30
        assert log.base().seq == 0
        assert log.verify().ok
        # More rows meanwhile; the next run finishes the interrupted one first.
        log.append_now(entry(31))
        done = archive_log(log, signer=signer, node="FR", before=T0 + 26, directory=adir)
        assert done.resumed == written
        assert (done.first_seq, done.last_seq, done.base.seq) == (21, 25, 25)
        files = sorted(adir.iterdir())
        assert [p.name for p in files] == [
            "enquiries-FR-0000000001-0000000020.ncbarchive",
            "enquiries-FR-0000000021-0000000025.ncbarchive",
        ]
        checked = check_archives(files, keys=[signer.public], node="FR")
        assert checked.part is not None
        report = log.verify(archived=checked.part)
        assert report.ok
        assert report.last_seq == 31
        assert report.archived_rows == 25
        assert log.hash_at(head[0]) == head[1]
    finally:
        log.close()


def test_a_file_that_cannot_be_written_removes_nothing(
    db: str, signer: Signer, tmp_path: Path
) -> None:
    log = _filled(db, 10)
    try:
        blocked = tmp_path / "file"
        blocked.write_text("")
        with pytest.raises(EnquiryArchiveError, match="no archive made"):
            archive_log(log, signer=signer, node="FR", before=T0 + 8, directory=blocked / "a")
        assert log.count() == 10
        assert log.base().seq == 0
    finally:
        log.close()


async def test_archive_while_rows_are_appended(db: str, signer: Signer, adir: Path) -> None:
    """The node's writer appends at the head while the archive deletes from the tail."""
    writer = EnquiryLog.open(db, serving=True)
    archiver = EnquiryLog.open(db)
    try:
        for n in range(1, 201):
            await writer.append(entry(n))
        burst = [writer.append(entry(n)) for n in range(201, 601)]
        appended, done = await asyncio.gather(
            asyncio.gather(*burst),
            asyncio.to_thread(
                archive_log,
                archiver,
                signer=signer,
                node="FR",
                before=T0 + 151,
                directory=adir,
            ),
        )
        assert sorted(appended) == list(range(201, 601))
        assert (done.first_seq, done.last_seq) == (1, 150)
        checked = check_archives(done.files, keys=[signer.public], node="FR")
        assert checked.part is not None
        report = archiver.verify(archived=checked.part)
        assert report.ok
        assert report.last_seq == 600
        assert report.rows == 450
    finally:
        await writer.aclose()
        archiver.close()


def test_a_base_the_rows_do_not_chain_from_stops_the_archive(
    db: str, signer: Signer, adir: Path
) -> None:
    log = _filled(db, 10)
    try:
        _archive(log, signer, adir, 4)
        run_sql(db, "UPDATE enquiry_archives SET head_hash = 'x'")
        with pytest.raises(EnquiryArchiveError, match="row 4 does not chain from where the log"):
            archive_log(log, signer=signer, node="FR", before=T0 + 8, directory=adir.with_name("b"))
        assert log.count() == 7
    finally:
        log.close()


def test_witnessed_rows_that_are_archived_are_not_checked_without_the_archive() -> None:
    from connector.enquiries.audit import Recalled, audit_witnessed
    from connector.protocol import Checkpoint

    held = tuple(
        Checkpoint(node="FR", seq=s, hash=f"{s:064x}", iat=1_790_000_000, token="t")
        for s in (3, 8, 12)
    )
    live = {12: f"{12:064x}"}
    audit = audit_witnessed(Recalled(peer="DE", checkpoints=held), live.get, archived_upto=10)
    assert audit.ok
    assert audit.archived == 2
    assert audit.last_good == 12
    # Above the base a row the log lacks is still a cut.
    cut = audit_witnessed(Recalled(peer="DE", checkpoints=held), live.get, archived_upto=5)
    assert [m.seq for m in cut.mismatches] == [8]


async def test_the_retention_job_reports_a_failure_as_an_error(
    db: str, signer: Signer, tmp_path: Path
) -> None:
    from structlog.testing import capture_logs

    from connector.enquiries.archive import Archiver

    log = _filled(db, 5)
    try:
        blocked = tmp_path / "file"
        blocked.write_text("")
        archiver = Archiver(
            enquiry_log=log,
            signer=signer,
            node="FR",
            directory=blocked / "archive",
            after_days=1,
            clock=lambda: T0 + 10 * 86_400,
        )
        with capture_logs() as logs:
            assert await archiver.run() is None
        (event,) = [e for e in logs if e["event"] == "enquiries_archive_failed"]
        assert event["log_level"] == "error"
        assert "no archive made" in event["error"]
        assert log.count() == 5
        # With a directory it may write, the same job archives.
        archiver.directory = tmp_path / "archive"
        done = await archiver.run()
        assert done is not None
        assert (done.rows, done.base.seq) == (4, 4)
    finally:
        log.close()


def test_two_runs_at_once_leave_one_archive_of_each_row(
    db: str, signer: Signer, adir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another run deletes between this run's file and its delete: in the same directory
    it finishes this run's file (and archives on); elsewhere this run's copy is removed."""
    log = _filled(db, 40)
    original = EnquiryLog.drop_archived
    elsewhere = adir.with_name("elsewhere")

    def other_run_first(directory: Path, before_n: int) -> None:
        def drop(self: EnquiryLog, done: dict[str, object]) -> int:
            monkeypatch.setattr(EnquiryLog, "drop_archived", original)
            archive_log(self, signer=signer, node="FR", before=T0 + before_n, directory=directory)
            return original(self, done)

        monkeypatch.setattr(EnquiryLog, "drop_archived", drop)

    try:
        other_run_first(adir, 26)
        done = archive_log(log, signer=signer, node="FR", before=T0 + 21, directory=adir)
        assert (done.last_seq, done.base.seq) == (20, 25)
        assert [p.name for p in sorted(adir.iterdir())] == [
            "enquiries-FR-0000000001-0000000020.ncbarchive",
            "enquiries-FR-0000000021-0000000025.ncbarchive",
        ]
        other_run_first(elsewhere, 36)
        with pytest.raises(EnquiryArchiveError, match="another archive run took rows up to 35"):
            archive_log(log, signer=signer, node="FR", before=T0 + 31, directory=adir)
        assert len(list(adir.iterdir())) == 2  # its copy of rows 26..30 removed
        (other,) = elsewhere.iterdir()
        files = [*sorted(adir.iterdir()), other]
        checked = check_archives(files, keys=[signer.public], node="FR")
        assert checked.part is not None
        assert log.verify(archived=checked.part).ok
    finally:
        log.close()


def test_a_long_backlog_is_archived_in_files_of_max_rows(
    db: str, signer: Signer, adir: Path
) -> None:
    """Each file's delete holds the write lock: a bounded number of rows at a time."""
    log = _filled(db, 25)
    try:
        done = archive_log(
            log, signer=signer, node="FR", before=T0 + 100, directory=adir, max_rows=10
        )
        assert (done.rows, done.first_seq, done.last_seq, done.base.seq) == (24, 1, 24, 24)
        assert [p.name for p in done.files] == [
            "enquiries-FR-0000000001-0000000010.ncbarchive",
            "enquiries-FR-0000000011-0000000020.ncbarchive",
            "enquiries-FR-0000000021-0000000024.ncbarchive",
        ]
        checked = check_archives(reversed(done.files), keys=[signer.public], node="FR")
        assert checked.part is not None
        assert log.verify(archived=checked.part).ok
    finally:
        log.close()
