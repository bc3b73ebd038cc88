"""`verify` also vouches for what lives beside the chain: disclosed refs and sealed notices."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine
from support.databases import DatabaseUrl, run_sql
from support.entries import entry

from connector.enquiries.entry import GENESIS, Entry, VerifyReport, row_hash, row_values
from connector.enquiries.log import EnquiryLog
from connector.enquiries.sealing import Sealed, seal_findings
from connector.notify.notice import Notice
from connector.notify.tables import notice_rows
from connector.storage.migrations import Schema, upgrade_existing
from connector.storage.urls import sync_url

REF = "DE:travel_documents:BKA-0815"


@pytest.fixture
def db(db_url: DatabaseUrl) -> str:
    return db_url("enquiries")


def _hit(n: int, *, peer: str = "FR", refs: tuple[str, ...] = (REF,)) -> Entry:
    return dataclasses.replace(entry(n, iss=peer), hit_refs=refs)


def _notice(e: Entry, channel: str = "duty") -> Notice:
    return Notice(
        id=f"{e.id}.{channel}",
        channel=channel,
        kind="enquiry",
        enquiry=e.id,
        created_at=e.at,
        body={"type": "foreign_enquiry", "enquiry": e.id, "asked_by": {"node": e.peer}},
    )


async def _log_with_notices(db: str) -> tuple[Entry, Entry]:
    """Row 1: a hit for FR with a notice; row 2: no hit, no notice; row 3: a hit for ES with
    two notices. Returns the two enquiries with notices."""
    log = EnquiryLog.open(db, serving=True)
    try:
        first, third = _hit(1), _hit(3, peer="ES", refs=(REF, "DE:vehicles:V-1"))
        await log.append(first, notice_rows([_notice(first)]))
        await log.append(entry(2))
        await log.append(third, notice_rows([_notice(third), _notice(third, "desk")]))
    finally:
        await log.aclose()
    return first, third


def _verify(db: str) -> VerifyReport:
    log = EnquiryLog.open(db)
    try:
        return log.verify()
    finally:
        log.close()


async def test_an_untouched_log_with_notices_and_disclosures_verifies(db: str) -> None:
    await _log_with_notices(db)
    # Delivery state is not sealed: a notice delivered (or dead) is still the one committed.
    run_sql(db, "UPDATE outbox SET state = 'delivered', attempts = 2, delivered_at = 1.0")
    report = _verify(db)
    assert report.ok, report
    assert (report.rows, report.disclosures, report.sealed) == (3, (), ())


async def test_a_disclosed_ref_inserted_by_hand_is_reported(db: str) -> None:
    await _log_with_notices(db)
    run_sql(
        db,
        "INSERT INTO disclosed_refs (peer, ref, first_at) "
        "VALUES ('FR', 'DE:travel_documents:BKA-0816', 1.0)",
    )
    report = _verify(db)
    assert not report.ok
    assert report.broken_seq is None  # the chain itself is whole
    (finding,) = report.disclosures
    assert (finding.problem, finding.peer, finding.ref) == (
        "added",
        "FR",
        "DE:travel_documents:BKA-0816",
    )
    assert "no answer in the chain gave it that ref" in finding.message
    assert "1 disclosed ref(s) do not match the chain" in (report.problem or "")


async def test_a_disclosed_ref_deleted_is_reported_with_the_answer_that_gave_it(db: str) -> None:
    _, third = await _log_with_notices(db)
    run_sql(db, "DELETE FROM disclosed_refs WHERE peer = 'ES' AND ref = 'DE:vehicles:V-1'")
    report = _verify(db)
    assert not report.ok
    (finding,) = report.disclosures
    assert (finding.problem, finding.peer, finding.ref, finding.seq, finding.enquiry) == (
        "removed",
        "ES",
        "DE:vehicles:V-1",
        3,
        third.id,
    )
    assert f"enquiry {third.id} (row 3) gave DE:vehicles:V-1 to ES" in finding.message


@pytest.mark.parametrize(
    ("sql", "problem", "message"),
    [
        ("DELETE FROM outbox WHERE id = '{id}'", "missing", "it was deleted"),
        (
            "UPDATE outbox SET body = '{{\"type\": \"foreign_enquiry\"}}' WHERE id = '{id}'",
            "changed",
            "its content was edited",
        ),
        ("UPDATE outbox SET channel = 'nobody' WHERE id = '{id}'", "changed", "edited"),
        ("UPDATE outbox SET created_at = created_at + 1 WHERE id = '{id}'", "changed", "edited"),
    ],
)
async def test_a_notice_deleted_or_edited_is_reported(
    db: str, sql: str, problem: str, message: str
) -> None:
    _, third = await _log_with_notices(db)
    notice_id = f"{third.id}.desk"
    run_sql(db, sql.format(id=notice_id))
    report = _verify(db)
    assert not report.ok
    assert report.broken_seq is None
    (finding,) = report.sealed
    assert (finding.problem, finding.table, finding.key, finding.seq, finding.enquiry) == (
        problem,
        "outbox",
        notice_id,
        3,
        third.id,
    )
    assert message in finding.message
    assert "1 sealed row(s) do not match the chain" in (report.problem or "")


async def test_a_notice_committed_after_its_row_is_sealed_by_the_next_row(db: str) -> None:
    """A denied check's watch notices (and a digest's) commit without an enquiry row: the
    next row the log writes seals them, so a deletion is seen as for any other notice."""
    log = EnquiryLog.open(db, serving=True)
    try:
        denied = entry(1)
        await log.append(denied)  # its answer leaves; the watch search comes after
        log.commit_companions(notice_rows([_notice(denied)]))
        later = entry(2)
        await log.append(later)
    finally:
        await log.aclose()
    assert _verify(db).ok
    run_sql(db, f"DELETE FROM outbox WHERE id = '{denied.id}.duty'")
    (finding,) = _verify(db).sealed
    assert (finding.problem, finding.key, finding.seq, finding.enquiry) == (
        "missing",
        f"{denied.id}.duty",
        2,
        later.id,
    )


async def test_a_broken_chain_is_reported_as_before_without_findings(db: str) -> None:
    await _log_with_notices(db)
    run_sql(db, "UPDATE enquiries SET hit_refs = '[]' WHERE seq = 1")
    report = _verify(db)
    assert (report.ok, report.broken_seq, report.disclosures, report.sealed) == (False, 1, (), ())


def test_an_old_format_row_keeps_the_hash_it_was_written_with() -> None:
    """The hash the code before the `sealed` column gave this row (computed then): a row with
    nothing sealed hashes exactly as before, also read back with `sealed` NULL."""
    e = dataclasses.replace(entry(1), id="01KBSTQ9ZH0000000000000001", hit_refs=(REF,))
    old = "1cc60b2f55d4e258d2888e32d460860e55c5ea8ff82983dd80002c75b49a5660"
    values = row_values(1, e, GENESIS)
    assert "sealed" not in values
    assert row_hash(values) == old
    assert row_hash({**values, "sealed": None, "hash": old}) == old
    assert row_hash({**values, "sealed": '{"outbox": {}}', "hash": old}) != old


async def test_a_log_written_before_revision_e0003_still_verifies_after_the_upgrade(
    db: str,
) -> None:
    """Rows, disclosed refs and notices as revision e0002 held them (no `sealed` column),
    upgraded: the chain verifies, and so do the refs; the old notices were never sealed."""
    log = EnquiryLog.open(db, serving=True)
    try:
        hits = [_hit(n) for n in range(1, 4)]
        for e in hits:
            await log.append(e)
        # As e0002's code did: the notices beside the rows, sealed by none.
        log.commit_companions(notice_rows([_notice(e) for e in hits]))
    finally:
        await log.aclose()
    run_sql(db, "ALTER TABLE enquiries DROP COLUMN sealed")
    run_sql(db, "DROP TABLE witnessed")  # e0004's, after this one
    run_sql(db, "DROP TABLE enquiry_archives")  # e0005's
    run_sql(db, "DROP TABLE readiness_probe")  # e0006's
    run_sql(db, "DROP TABLE approvals")  # e0007's
    run_sql(db, "DROP TABLE awaited_releases")  # e0007's
    run_sql(db, f"UPDATE {Schema.ENQUIRIES.version_table} SET version_num = 'e0002'")
    engine = create_engine(sync_url(db))
    with engine.begin() as conn:
        assert upgrade_existing(Schema.ENQUIRIES, conn) == ("e0002", "e0007")
    engine.dispose()
    assert run_sql(db, "SELECT count(*) AS n FROM enquiries WHERE sealed IS NULL") == [{"n": 3}]
    report = _verify(db)
    assert report.ok, report
    # New rows chain on to the old ones, sealed.
    log = EnquiryLog.open(db, serving=True)
    try:
        new = _hit(4)
        await log.append(new, notice_rows([_notice(new)]))
    finally:
        await log.aclose()
    assert _verify(db).ok
    run_sql(db, f"DELETE FROM outbox WHERE id = '{new.id}.duty'")
    assert [f.key for f in _verify(db).sealed] == [f"{new.id}.duty"]


async def test_rows_committed_while_verify_reads_are_not_taken_for_rows_added_by_hand(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running node commits while `verify` walks the chain: the disclosed refs and notices
    it commits then are read in the chain's snapshot, so they are neither `added` nor seen."""
    await _log_with_notices(db)
    writer = EnquiryLog.open(db)
    walk = EnquiryLog._iter_rows

    def walk_then_commit(conn: Connection) -> Iterator[dict[str, Any]]:
        yield from walk(conn)
        late = _hit(9, peer="IT", refs=("DE:travel_documents:LATE",))
        writer.append_now(late, notice_rows([_notice(late)]))

    monkeypatch.setattr(EnquiryLog, "_iter_rows", staticmethod(walk_then_commit))
    try:
        report = _verify(db)
    finally:
        writer.close()
    assert report.ok, report
    assert report.rows == 3
    monkeypatch.undo()
    assert _verify(db).rows == 4


def test_a_row_sealed_in_a_table_this_program_does_not_declare_is_reported_not_skipped() -> None:
    sealed = [Sealed(seq=7, enquiry="E7", seals={"outbox": {"E7.duty": "ab"}})]
    (finding,) = seal_findings(sealed, {}, known_tables=())
    assert (finding.problem, finding.table, finding.key, finding.seq) == (
        "unknown_table",
        "outbox",
        "E7.duty",
        7,
    )
    assert "cannot be checked" in finding.message
    assert seal_findings(sealed, {"outbox": {"E7.duty": "ab"}}, known_tables=("outbox",)) == ()
