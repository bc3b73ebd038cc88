"""Archiving a running node's log: while it answers, from the command line and on schedule."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import yaml
from support.databases import DatabaseUrl
from support.docs import assert_shows
from support.entries import entry
from support.network import ask, configure, load, on_databases
from support.processes import audit_entries, cli

from connector.demo import network
from connector.enquiries.log import EnquiryLog
from connector.vocabulary import Category

DOC = Category.TRAVEL_DOCUMENTS


async def test_archive_while_the_node_answers(tmp_path: Path, db_url: DatabaseUrl) -> None:
    on_backend = on_databases(db_url)

    def patient(node_id: str, directory: Path) -> None:
        # What is tested is the chain under concurrent writes, not latency on a shared
        # machine: a burst that waits for a busy CPU must not time out.
        on_backend(node_id, directory)
        path = directory / "connector.yaml"
        config = yaml.safe_load(path.read_text())
        config["outgoing"]["timeout"] = 30
        path.write_text(yaml.safe_dump(config))

    async with network(tmp_path, ["FR", "DE"], patient) as net:
        load(net)
        config = tmp_path / "DE" / "connector.yaml"
        # A hit gives FR a ref it may follow up by reference (matching.ref_checks: disclosed).
        given = await ask(net, "FR", [(Category.TERRORISM_SUSPECTS, {"last_name": "Doe"})])
        assert given["0"].hits[0].ref == "DE:terrorism_suspects:DE-TS-9"
        for i in range(9):
            await ask(net, "FR", [(DOC, {"number": f"X{i}", "country": "DE"})])
        cut = datetime.now(UTC).isoformat()
        # Row 11, after the cut: the archive takes rows 1..10 however the burst goes.
        await ask(net, "FR", [(DOC, {"number": "X9", "country": "DE"})])
        # A bounded burst of queries while the archive runs in another process.
        burst = [ask(net, "FR", [(DOC, {"number": f"Y{i}", "country": "DE"})]) for i in range(40)]
        archived, *answers = await asyncio.gather(
            asyncio.to_thread(
                cli, "enquiries", "archive", "--before", cut, "--json", config=config
            ),
            *burst,
        )
        assert all(a["0"].status == "no_hit" for a in answers)
        done = json.loads(archived.stdout)
        assert (done["rows"], done["first_seq"], done["last_seq"]) == (10, 1, 10)
        assert done["base"] == {"seq": 10, "hash": done["head"]}
        # retention.dir, relative: in the state directory (beside a SQLite log).
        archive_dir = net["DE"].node.settings.state_path(Path("archive"))
        assert [Path(f).parent for f in done["files"]] == [archive_dir]

        # Without the archive: the live part holds; what only archived rows back is named.
        alone = json.loads(
            (await asyncio.to_thread(cli, "enquiries", "verify", "--json", config=config)).stdout
        )
        assert alone["ok"] is True
        assert (alone["rows"], alone["head_seq"]) == (41, 51)
        assert alone["archived"]["base_seq"] == 10
        assert alone["archived"]["checked"] is False
        assert alone["archived"]["refs_not_checked"] == 1  # DE-TS-9, given by row 1
        text = (await asyncio.to_thread(cli, "enquiries", "verify", config=config)).stdout
        # As operations.md §11 shows it.
        assert text.splitlines()[:3] == [
            "rows 1..10 are archived (1 file(s)) and not checked here: give them with "
            "--archive to check the whole chain",
            "1 disclosed ref(s) first given by archived rows: not checked here",
            f"ok: 41 row(s), chain head {alone['head']}",
        ]
        assert_shows("operations.md", "verify-archived", text)

        # With it: the whole chain, the ref backed by its archived answer.
        whole = await asyncio.to_thread(
            cli,
            "enquiries",
            "verify",
            "--archive",
            str(archive_dir),
            "--json",
            config=config,
        )
        doc = json.loads(whole.stdout)
        assert doc["ok"] is True
        assert doc["archived"]["checked"] is True
        assert doc["archived"]["rows_checked"] == 10
        assert doc["archived"]["refs_not_checked"] == 0
        assert [f["ok"] for f in doc["archived"]["files"]] == [True]
        # The running node answers as before: the archived answer's ref may be followed up.
        again = await ask(net, "FR", [(Category.TERRORISM_SUSPECTS, {"ref": "DE-TS-9"})])
        assert again["0"].status == "hit"


def test_archive_from_the_command_line(tmp_path: Path) -> None:
    from support.processes import init

    config, _, _ = init(tmp_path, "FR")
    log = EnquiryLog.open(f"sqlite:///{tmp_path / 'FR' / 'enquiries.db'}")
    try:
        for n in range(1, 21):
            log.append_now(entry(n))
    finally:
        log.close()
    future = cli("enquiries", "archive", "--before", "2999-01-01", config=config, check=False)
    assert future.returncode == 2
    assert "is in the future" in future.stderr
    assert "--before 90d" in future.stderr
    nothing = cli("enquiries", "archive", "--before", "2020-01-01", config=config)
    assert nothing.stdout.startswith("nothing to archive: no row before 2020-01-01T00:00:00")
    # support.entries.entry(n) is logged at 1_790_000_000 + n: 2026-09-21T14:13:20Z + n s.
    done = cli("enquiries", "archive", "--before", "2026-09-21T14:13:31Z", config=config)
    out = tmp_path / "FR" / "archive" / "enquiries-FR-0000000001-0000000010.ncbarchive"
    # As operations.md §11 shows it.
    head = json.loads(cli("enquiries", "verify", "--json", config=config).stdout)
    assert done.stdout.splitlines() == [
        f"archived 10 row(s), 1..10, into {out}",
        f"the log now starts after row 10 (chains from {head['archived']['base_hash']})",
    ]
    assert_shows("operations.md", "archive-run", done.stdout)
    # An admin's change, in the admin audit trail (operations.md §13); nothing archived is none.
    archived = [e for e in audit_entries(config) if e["action"] == "enquiries.archived"]
    assert [(e["target"], e["details"]) for e in archived] == [
        (
            "FR",
            {
                "rows": 10,
                "first_seq": 1,
                "last_seq": 10,
                "head": head["archived"]["base_hash"],
                "files": [str(out)],
            },
        )
    ]
    # FILES needs --archive, and --archive FILES.
    assert cli("enquiries", "verify", str(out), config=config, check=False).returncode == 2
    ok = cli("enquiries", "verify", "--archive", str(out), config=config)
    assert "archives: 1 file(s), rows 1..10 (10 row(s)), every row checked" in ok.stdout
    assert "ok: 10 row(s)" in ok.stdout
    # A row of the archive edited: verify names the file and the row, and exits 1.
    (tmp_path / "other").mkdir()
    other = tmp_path / "other" / out.name
    other.write_bytes(out.read_bytes()[:-200])
    broken = cli("enquiries", "verify", "--archive", str(other), config=config, check=False)
    assert broken.returncode == 1
    assert f"ARCHIVE {other}: {other} is not a whole enquiry-log archive" in broken.stderr


async def test_the_retention_job_archives_on_schedule(tmp_path: Path) -> None:
    def old_rows(node_id: str, directory: Path) -> None:
        configure(node_id, directory)
        path = directory / "connector.yaml"
        config = yaml.safe_load(path.read_text())
        config["retention"] = {"archive_after_days": 30, "dir": "old-rows"}
        path.write_text(yaml.safe_dump(config))
        log = EnquiryLog.open(f"sqlite:///{directory / 'enquiries.db'}")
        try:
            for n in range(1, 31):
                log.append_now(entry(n))  # logged in 2026-09, months before now
        finally:
            log.close()

    async with network(tmp_path, ["DE"], old_rows) as net:
        service = net["DE"].service
        assert "retention" in {j.id for j in service.scheduler.jobs()}
        # The job's first run starts with the node, in a worker thread.
        for _ in range(200):
            if service.enquiry_log.base().seq:
                break
            await asyncio.sleep(0.05)
        assert service.enquiry_log.base().seq == 29  # every row but the newest
        (written,) = (tmp_path / "DE" / "old-rows").iterdir()
        assert written.name == "enquiries-DE-0000000001-0000000029.ncbarchive"
        assert service.enquiry_log.verify().ok


def test_checkpoints_of_archived_rows_are_checked_against_the_archive(tmp_path: Path) -> None:
    from support.processes import init

    from connector.enquiries.continuity import KeptLog

    config, _, _ = init(tmp_path, "FR")
    log = EnquiryLog.open(f"sqlite:///{tmp_path / 'FR' / 'enquiries.db'}")
    try:
        for n in range(1, 21):
            log.append_now(entry(n))
        row5 = log.hash_at(5)
        assert row5 is not None
    finally:
        log.close()
    # The node's kept checkpoint, as a running node wrote it at row 5.
    KeptLog(tmp_path / "FR" / "enquiry-log-state.json", node="FR").checkpoint(5, row5, 1.0)
    cli("enquiries", "archive", "--before", "2026-09-21T14:13:31Z", config=config)
    archive = str(tmp_path / "FR" / "archive")

    alone = cli("enquiries", "verify", "--expect", f"5:{row5}", config=config)
    assert "the checkpoint's row 5 is archived, not checked here" in alone.stdout
    assert "the kept checkpoint's row 5 is archived, not checked here" in alone.stdout
    doc = json.loads(cli("enquiries", "verify", "--json", config=config).stdout)
    assert doc["ok"] is True
    assert doc["kept_checkpoint"] == {
        "seq": 5,
        "at": "1970-01-01T00:00:01.000Z",
        "ok": True,
        "problem": None,
        "archived": True,
    }
    # A checkpoint signed by verify names the head, not the count of live rows.
    assert doc["head_seq"] == 20

    whole = cli("enquiries", "verify", "--archive", archive, "--expect", f"5:{row5}", config=config)
    assert "the checkpoint holds: row 5 is there, unchanged" in whole.stdout
    assert "the kept checkpoint holds: row 5 is there, unchanged" in whole.stdout
    wrong = cli(
        "enquiries",
        "verify",
        "--archive",
        archive,
        "--expect",
        f"5:{'0' * 64}",
        config=config,
        check=False,
    )
    assert wrong.returncode == 1
    assert "BROKEN at row 5: the archived row does not match the checkpoint" in wrong.stderr
    # The node starts on its log: the kept row is archived, not lost.
    log = EnquiryLog.open(f"sqlite:///{tmp_path / 'FR' / 'enquiries.db'}")
    try:
        from connector.enquiries.continuity import KeptState, what_is_wrong

        base = log.base()
        kept = KeptState(node="FR", seq=5, hash=row5, at=1.0)
        assert what_is_wrong(kept, log, file_missing=False) is None
        at_base = KeptState(node="FR", seq=base.seq, hash=base.hash, at=1.0)
        assert what_is_wrong(at_base, log, file_missing=False) is None
        other = KeptState(node="FR", seq=base.seq, hash="0" * 64, at=1.0)
        assert "does not hold row 10" in (what_is_wrong(other, log, file_missing=False) or "")
    finally:
        log.close()


def test_what_archived_rows_sealed_is_checked_with_the_archive(tmp_path: Path) -> None:
    """A notice sealed by a row now archived: deleting it goes unseen by the live part alone
    (the row that sealed it is not there), and is named with the archive."""
    import sqlite3

    from support.entries import sealed_notice_log
    from support.processes import init

    config, _, _ = init(tmp_path, "DE")
    db = tmp_path / "DE" / "enquiries.db"
    _, notice = sealed_notice_log(db)
    done = json.loads(
        cli(
            "enquiries", "archive", "--before", "2026-09-21T14:13:22Z", "--json", config=config
        ).stdout
    )
    assert set(done) == {"rows", "files", "first_seq", "last_seq", "head", "base", "resumed"}
    assert done["rows"] == 1
    archive = str(Path(done["files"][0]).parent)
    assert json.loads(cli("enquiries", "verify", "--json", config=config).stdout)["ok"] is True
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM outbox WHERE id = ?", (notice.id,))
    found = cli("enquiries", "verify", "--archive", archive, "--json", config=config, check=False)
    assert found.returncode == 1
    (gone,) = json.loads(found.stdout)["sealed"]
    assert (gone["problem"], gone["key"], gone["seq"]) == ("missing", notice.id, 1)
