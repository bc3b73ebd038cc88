"""The admin audit trail's file: the chain, what each kind of tampering looks like to
`verify`, the repair of a line a crash cut short, and appends from many writers at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from connector.enquiries.entry import GENESIS, canonical_hash
from connector.errors import AuditTrailError
from connector.trail.entry import Action, Actor, parse_line, verify_trail
from connector.trail.file import read_entries, record, verify_file

ALICE = Actor(kind="os", name="alice", uid=1000, sudo_user="bob")


def _record(path: Path, n: int, *, actor: Actor = ALICE, at: float = 1_800_000_000.0) -> None:
    for i in range(n):
        record(
            path,
            actor=actor,
            action=Action.PEER_ADDED,
            target=f"P{i}",
            details={"url": f"https://p{i}.example"},
            now=at + i,
        )


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_entries_chain_from_genesis_and_verify(tmp_path: Path) -> None:
    path = tmp_path / "admin-audit.jsonl"
    empty = verify_file(path)  # no file: nothing recorded yet
    assert (empty.ok, empty.entries, empty.head) == (True, 0, None)
    _record(path, 3)
    entries = read_entries(path)
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev == GENESIS
    assert [e.prev for e in entries[1:]] == [e.hash for e in entries[:-1]]
    assert entries[0].actor == ALICE
    assert entries[0].at == "2027-01-15T08:00:00.000Z"
    report = verify_file(path)
    assert (report.ok, report.entries, report.head) == (True, 3, entries[-1])
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_console_account_is_an_actor_too(tmp_path: Path) -> None:
    path = tmp_path / "admin-audit.jsonl"
    _record(path, 1, actor=Actor(kind="console", name="duty-officer"))
    doc = orjson.loads(path.read_bytes())
    assert doc["actor"] == {"kind": "console", "name": "duty-officer"}
    assert verify_file(path).ok


def test_an_edited_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "admin-audit.jsonl"
    _record(path, 4)
    lines = _lines(path)
    lines[1] = lines[1].replace(b"p1.example", b"evil.example")
    path.write_bytes(b"".join(lines))
    report = verify_file(path)
    assert (report.finding, report.line, report.seq, report.entries) == ("edited", 2, 2, 1)
    assert "line 2 (seq 2) was edited" in (report.problem or "")


def test_an_edited_line_with_its_hash_recomputed_breaks_the_next_link(tmp_path: Path) -> None:
    path = tmp_path / "admin-audit.jsonl"
    _record(path, 4)
    lines = _lines(path)
    doc = orjson.loads(lines[1])
    doc["target"] = "XX"
    doc["hash"] = canonical_hash({k: v for k, v in doc.items() if k != "hash"})
    lines[1] = orjson.dumps(doc) + b"\n"
    path.write_bytes(b"".join(lines))
    report = verify_file(path)
    assert (report.finding, report.line, report.seq) == ("unchained", 3, 3)


def test_a_deleted_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "admin-audit.jsonl"
    _record(path, 5)
    lines = _lines(path)
    del lines[2]
    path.write_bytes(b"".join(lines))
    report = verify_file(path)
    assert (report.finding, report.line, report.seq) == ("deleted", 3, 4)
    assert "1 entry (seq 3) deleted" in (report.problem or "")


def test_the_first_line_deleted_is_named(tmp_path: Path) -> None:
    path = tmp_path / "admin-audit.jsonl"
    _record(path, 2)
    path.write_bytes(b"".join(_lines(path)[1:]))
    report = verify_file(path)
    assert (report.finding, report.line, report.seq) == ("deleted", 1, 2)


def test_reordered_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "admin-audit.jsonl"
    _record(path, 4)
    lines = _lines(path)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_bytes(b"".join(lines))
    report = verify_file(path)
    assert (report.finding, report.line, report.seq) == ("reordered", 2, 3)
    assert "seq 2 comes later" in (report.problem or "")


def test_a_line_that_is_no_entry_is_named(tmp_path: Path) -> None:
    path = tmp_path / "admin-audit.jsonl"
    _record(path, 2)
    lines = _lines(path)
    lines.insert(1, b"hello\n")
    path.write_bytes(b"".join(lines))
    report = verify_file(path)
    assert (report.finding, report.line, report.seq) == ("malformed", 2, None)
    # A time that does not read is no entry either, whatever its hash says.
    doc = orjson.loads(lines[0])
    doc["at"] = "yesterday"
    doc["hash"] = canonical_hash({k: v for k, v in doc.items() if k != "hash"})
    path.write_bytes(orjson.dumps(doc) + b"\n")
    assert verify_file(path).finding == "malformed"


def test_a_truncated_last_line_is_named_then_cut_by_the_next_append_which_says_so(
    tmp_path: Path,
) -> None:
    path = tmp_path / "admin-audit.jsonl"
    _record(path, 3)
    whole = path.read_bytes()
    cut = whole[: len(whole) - 40]  # a crash in the middle of writing entry 3
    path.write_bytes(cut)
    report = verify_file(path)
    assert (report.finding, report.line, report.entries) == ("partial", 3, 2)
    assert "line 3 is partial" in (report.problem or "")

    record(path, actor=ALICE, action=Action.AGENCY_ADDED, target="border", details={}, now=2e9)
    entries = read_entries(path)
    assert [(e.seq, e.action) for e in entries] == [
        (1, "peer.added"),
        (2, "peer.added"),
        (3, "trail.repaired"),
        (4, "agency.added"),
    ]
    repair = entries[2].details
    partial = cut[len(b"".join(_lines(path)[:2])) :]
    assert repair["after_seq"] == 2
    assert repair["bytes"] == len(partial)
    assert repair["text"] == partial[:200].decode()  # what a reader needs to know it again
    assert len(partial) > 200
    assert verify_file(path).ok


def test_a_last_entry_that_lost_only_its_newline_is_finished_not_cut(tmp_path: Path) -> None:
    path = tmp_path / "admin-audit.jsonl"
    _record(path, 3)
    whole = path.read_bytes()
    path.write_bytes(whole[:-1])
    assert verify_file(path).finding == "partial"
    _record(path, 1)
    assert [(e.seq, e.action) for e in read_entries(path)][2:] == [
        (3, "peer.added"),
        (4, "peer.added"),
    ]
    assert path.read_bytes().startswith(whole)
    assert verify_file(path).ok


def test_nothing_is_chained_onto_a_last_line_that_is_no_entry(tmp_path: Path) -> None:
    path = tmp_path / "admin-audit.jsonl"
    _record(path, 2)
    with path.open("ab") as fh:
        fh.write(b'{"seq": 3, "garbage": true}\n')
    before = path.read_bytes()
    with pytest.raises(AuditTrailError, match=r"last line of .* is not an audit entry"):
        _record(path, 1)
    assert path.read_bytes() == before


def test_entries_cut_from_the_end_are_caught_only_against_a_head_kept_earlier(
    tmp_path: Path,
) -> None:
    path = tmp_path / "admin-audit.jsonl"
    _record(path, 4)
    kept = read_entries(path)[-1]
    path.write_bytes(b"".join(_lines(path)[:2]))
    assert verify_file(path).ok  # a shorter trail is a whole chain
    report = verify_file(path, expect=(kept.seq, kept.hash))
    assert (report.finding, report.seq) == ("cut", 4)
    assert "ends at seq 2" in (report.problem or "")
    _record(path, 2)  # a rewritten end: seq 4 is back, but not the same entry
    report = verify_file(path, expect=(kept.seq, kept.hash))
    assert (report.finding, report.line, report.seq) == ("cut", 4, 4)
    _record(tmp_path / "b.jsonl", 4)
    good = read_entries(tmp_path / "b.jsonl")[1]
    held = verify_file(tmp_path / "b.jsonl", expect=(good.seq, good.hash))
    assert (held.ok, held.expect_held) == (True, True)


def test_details_never_hold_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "admin-audit.jsonl"
    for key in ("token", "api_token", "Password", "private_key", "client_secret"):
        with pytest.raises(ValueError, match="never holds a secret"):
            record(
                path,
                actor=ALICE,
                action=Action.AGENCY_ADDED,
                target="a",
                details={key: "x"},
                now=1.0,
            )
    with pytest.raises(ValueError, match="at most"):
        record(
            path,
            actor=ALICE,
            action=Action.AGENCY_ADDED,
            target="a",
            details={"x": "y" * 5000},
            now=1.0,
        )
    assert read_entries(path) == []


def test_a_line_hashes_as_written_not_as_this_version_would_write_it() -> None:
    # A newer version's field, or keys in another order: the hash is over what the line holds.
    body = {
        "prev": GENESIS,
        "seq": 1,
        "at": "2027-01-01T00:00:00.000Z",
        "actor": {"kind": "console", "name": "x", "session": "later-field"},
        "action": "console.approved",
        "target": "t",
        "details": {},
        "extra": 1,
    }
    line = orjson.dumps({**body, "hash": canonical_hash(body)})
    entry, whole = parse_line(line)
    assert (whole, entry.action) == (True, "console.approved")
    assert verify_trail(line + b"\n").ok


def test_threads_appending_at_once_all_land_in_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "admin-audit.jsonl"
    threads = [threading.Thread(target=_record, args=(path, 25)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    report = verify_file(path)
    assert (report.ok, report.entries) == (True, 200)


APPENDER = """
import sys, time
from pathlib import Path
from connector.trail.entry import Action, Actor
from connector.trail.file import record
for i in range(int(sys.argv[2])):
    record(Path(sys.argv[1]), actor=Actor(kind="os", name=sys.argv[3]), action=Action.PEER_ADDED,
           target=str(i), details={}, now=time.time())
"""


def test_processes_appending_at_once_all_land_in_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "admin-audit.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(path), "40", f"admin{n}"], env=env)
        for n in range(3)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    report = verify_file(path)
    assert (report.ok, report.entries) == (True, 120)
    names = [e.actor.name for e in read_entries(path)]
    assert sorted(set(names)) == ["admin0", "admin1", "admin2"]
