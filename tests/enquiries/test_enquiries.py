"""The enquiry log: group commit, the hash chain and its verification, the replay guard."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from support.databases import DatabaseUrl, run_sql
from support.entries import entry

from connector.enquiries.entry import new_enquiry_id
from connector.enquiries.log import EnquiryLog
from connector.errors import Replay


@pytest.fixture
def db(db_url: DatabaseUrl) -> str:
    """The log's database, on each backend."""
    return db_url("enquiries")


def serving(db: str) -> EnquiryLog:
    """A log as a node holds it: on PostgreSQL, committing through asyncpg."""
    return EnquiryLog.open(db, serving=True)


async def test_concurrent_appends_are_group_committed(db: str) -> None:
    log = serving(db)
    try:
        seqs = await asyncio.gather(*(log.append(entry(i)) for i in range(200)))
        assert sorted(seqs) == list(range(1, 201))
        assert log.stats.rows == 200
        assert log.stats.flushes < 200 / 10  # many rows per commit, not one each
        assert log.verify().ok
    finally:
        await log.aclose()


async def test_rows_wait_their_window_and_the_last_one_commits_them_all(db: str) -> None:
    """A fan-out's rows may wait for one another; a row that may not wait commits at once,
    taking every row queued before it into the same commit."""
    log = serving(db)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiting = [asyncio.ensure_future(log.append(entry(i), within=30.0)) for i in range(20)]
        await asyncio.sleep(0.05)
        assert not any(f.done() for f in waiting)  # nothing made them commit yet
        assert log.stats.flushes == 0
        last = await log.append(entry(20), within=0.0)
        assert sorted(await asyncio.gather(*waiting)) == list(range(1, 21))
        assert last == 21
        assert log.stats.flushes == 1
        assert loop.time() - started < 5.0
        # A row with the default window still commits soon after, not 30 s later.
        assert await asyncio.wait_for(log.append(entry(21)), timeout=5.0) == 22
        assert log.verify().ok
    finally:
        await log.aclose()


async def test_rows_that_arrive_while_a_commit_runs_join_the_next_one(db: str) -> None:
    """One commit at a time per process: rows never each queue a commit of their own behind
    the one running (on PostgreSQL, on the chain's lock)."""
    log = serving(db)
    try:
        first = asyncio.ensure_future(log.append(entry(0), within=0.0))
        for _ in range(2):  # the flush runs, then its commit starts
            await asyncio.sleep(0)
        assert not first.done()  # committing: a round trip or an fsync away
        rest = [asyncio.ensure_future(log.append(entry(i), within=0.0)) for i in range(1, 51)]
        assert await first == 1
        assert sorted(await asyncio.gather(*rest)) == list(range(2, 52))
        assert log.stats.batch_sizes == [1, 50]
        assert log.verify().ok
    finally:
        await log.aclose()


def test_enquiry_ids_are_ulids() -> None:
    """48 bits of milliseconds then 80 random bits, in Crockford's base32: sortable by time."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    ids = [new_enquiry_id(1_790_000_000.0 + n / 1000) for n in range(200)]
    for n, ulid in enumerate(ids):
        assert len(ulid) == 26
        assert set(ulid) <= set(alphabet)
        value = 0
        for ch in ulid:
            value = value * 32 + alphabet.index(ch)
        assert value >> 128 == 0
        assert value >> 80 == int((1_790_000_000.0 + n / 1000) * 1000)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


async def test_replay_within_a_batch_and_across_commits(db: str) -> None:
    log = serving(db)
    try:
        first = asyncio.ensure_future(log.append(entry(1, jti="same-jti-0000000000000")))
        await asyncio.sleep(0)  # the first append is pending, not yet committed
        with pytest.raises(Replay):
            await log.append(entry(2, jti="same-jti-0000000000000"))
        await first
        assert log.seen_now("FR", "same-jti-0000000000000")
        assert not log.seen_now("DE", "same-jti-0000000000000")
        with pytest.raises(Replay):
            await log.append(entry(3, jti="same-jti-0000000000000"))
        # Another issuer may use the same jti: the key is (iss, jti).
        await log.append(entry(4, iss="DE", jti="same-jti-0000000000000"))
        assert log.count() == 2
    finally:
        await log.aclose()


async def test_two_writers_share_one_chain(db: str) -> None:
    """The CLI's outbound log and the server's inbound log may write to one file."""
    a, b = serving(db), EnquiryLog.open(db)
    try:
        for i in range(20):
            await (a if i % 2 else b).append(entry(i))
        b.append_now(entry(99))
        report = a.verify()
        assert report.ok
        assert report.rows == 21
    finally:
        await a.aclose()
        await b.aclose()


async def test_two_serving_processes_commit_one_chain_and_refuse_each_others_jti(
    db: str,
) -> None:
    """Two nodes' worth of serving logs on one database, committing at once: one chain, the
    refs each answer disclosed recorded once, and a jti one committed refused by the other."""
    a, b = serving(db), serving(db)
    try:
        hits = [
            dataclasses.replace(entry(i), hit_refs=(f"DE:travel_documents:R{i % 7}",))
            for i in range(120)
        ]
        seqs = await asyncio.gather(*((a if i % 2 else b).append(e) for i, e in enumerate(hits)))
        assert sorted(seqs) == list(range(1, 121))
        assert a.stats.flushes + b.stats.flushes < 120 / 5  # rows share commits
        assert await b.seen("FR", hits[1].jti)  # committed by a
        with pytest.raises(Replay):
            await b.append(dataclasses.replace(entry(500), jti=hits[1].jti))
        with pytest.raises(Replay):
            await a.append(dataclasses.replace(entry(501), jti=hits[0].jti))
        assert not await a.seen("FR", "never-used-jti-00000000")
        report = a.verify()
        assert report.ok, report.problem
        assert report.rows == 120
        assert sorted(await a.disclosed("FR", [f"DE:travel_documents:R{n}" for n in range(9)])) == [
            f"DE:travel_documents:R{n}" for n in range(7)
        ]
    finally:
        await a.aclose()
        await b.aclose()


async def _filled(db: str, n: int = 10) -> None:
    log = serving(db)
    try:
        for i in range(n):
            await log.append(entry(i))
    finally:
        await log.aclose()


def _verify(db: str) -> tuple[bool, int | None]:
    log = EnquiryLog.open(db)
    try:
        report = log.verify()
    finally:
        log.close()
    return report.ok, report.broken_seq


@pytest.mark.parametrize(
    ("sql", "broken"),
    [
        ("UPDATE enquiries SET decision = 'denied' WHERE seq = 4", 4),
        ("UPDATE enquiries SET hit_refs = '[\"FR:travel_documents:X\"]' WHERE seq = 7", 7),
        ("UPDATE enquiries SET at = at + 1 WHERE seq = 1", 1),
        ("DELETE FROM enquiries WHERE seq = 5", 6),
        ("UPDATE enquiries SET seq = seq + 100 WHERE seq = 10", 110),
    ],
)
async def test_verify_catches_edits_made_directly_in_the_database(
    db: str, sql: str, broken: int
) -> None:
    await _filled(db)
    assert _verify(db) == (True, None)
    run_sql(db, sql)
    assert _verify(db) == (False, broken)


async def test_rehashing_one_row_still_breaks_the_next_link(db: str) -> None:
    """An editor who recomputes the edited row's hash breaks the following row's link."""
    from connector.enquiries.entry import row_hash

    await _filled(db)
    row = run_sql(db, "SELECT * FROM enquiries WHERE seq = 3")[0]
    row["decision"] = "denied"
    run_sql(db, f"UPDATE enquiries SET decision = 'denied', hash = '{row_hash(row)}' WHERE seq = 3")
    assert _verify(db) == (False, 4)


async def test_failed_commit_fails_every_waiter(db: str) -> None:
    log = serving(db)
    try:
        run_sql(
            db,
            "DROP TABLE enquiries CASCADE"
            if db.startswith("postgresql")
            else "DROP TABLE enquiries",
        )
        from connector.errors import EnquiryLogError

        results = await asyncio.gather(
            *(log.append(entry(i)) for i in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, EnquiryLogError) for r in results)
    finally:
        await log.aclose()


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("DELETE FROM enquiries WHERE seq >= 8", "rows were removed from the end"),
        ("DELETE FROM enquiries", "rows were removed from the end"),
        ("UPDATE enquiries SET decision = 'denied' WHERE seq = 10", "content"),
    ],
)
async def test_checkpoint_catches_rows_cut_from_the_end(db: str, sql: str, problem: str) -> None:
    await _filled(db)
    log = serving(db)
    try:
        checkpoint = log.head()
        assert checkpoint[0] == 10
        assert log.verify(expect=checkpoint).ok
        run_sql(db, sql)
        assert log.verify().ok or "content" in problem  # the chain alone cannot see a cut end
        report = log.verify(expect=checkpoint)
        assert not report.ok
        assert problem in (report.problem or "")
    finally:
        await log.aclose()


async def test_a_later_checkpoint_still_verifies_an_earlier_one(db: str) -> None:
    await _filled(db, 5)
    log = serving(db)
    try:
        early = log.head()
        for i in range(5, 9):
            await log.append(entry(i))
        assert log.verify(expect=early).ok
        assert log.verify(expect=(early[0], "0" * 64)).broken_seq == early[0]
    finally:
        await log.aclose()


async def test_the_readiness_probe_commits_beside_the_chain(db: str) -> None:
    """The probe is a real committed write, by a serving log's own path, on each backend,
    and it leaves the chain alone."""
    log = serving(db)
    try:
        await log.append(entry(1))
        await log.probe_write(1_790_000_000.0)
        await log.probe_write(1_790_000_060.0)  # rewritten, never a second row
        assert run_sql(db, "SELECT id, at FROM readiness_probe") == [
            {"id": 1, "at": 1_790_000_060.0}
        ]
        report = log.verify()
        assert (report.ok, report.rows) == (True, 1)
    finally:
        await log.aclose()
    quiet = EnquiryLog.open(db)  # a command's log: the same probe, on its connection
    try:
        await quiet.probe_write(1_790_000_120.0)
    finally:
        quiet.close()
    assert run_sql(db, "SELECT at FROM readiness_probe") == [{"at": 1_790_000_120.0}]
