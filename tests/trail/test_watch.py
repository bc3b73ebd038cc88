"""The running node's look at the trail: new entries once each, and a trail changed under it
named at the next look."""

from __future__ import annotations

from pathlib import Path

from connector.trail.entry import Action, Actor
from connector.trail.file import record
from connector.trail.watch import TrailWatch

ADMIN = Actor(kind="os", name="alice", uid=1000)


def _record(path: Path, target: str) -> None:
    record(path, actor=ADMIN, action=Action.PEER_ADDED, target=target, details={}, now=1.0)


def test_each_entry_is_seen_once_and_an_unchanged_file_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "admin-audit.jsonl"
    watch = TrailWatch(path)
    first = watch.look()
    assert first is not None
    assert (first.first, first.new, first.report.ok, first.report.head) == (True, (), True, None)
    assert watch.look() is None  # still no file
    _record(path, "DE")
    _record(path, "IT")
    seen = watch.look()
    assert seen is not None
    assert [e.target for e in seen.new] == ["DE", "IT"]
    assert watch.look() is None
    _record(path, "ES")
    seen = watch.look()
    assert seen is not None
    assert [(e.seq, e.target) for e in seen.new] == [(3, "ES")]


def test_a_trail_present_at_start_gives_its_head_not_its_entries(tmp_path: Path) -> None:
    path = tmp_path / "admin-audit.jsonl"
    for target in ("DE", "IT"):
        _record(path, target)
    seen = TrailWatch(path).look()
    assert seen is not None
    assert seen.first
    assert seen.new == ()
    assert seen.report.head is not None
    assert seen.report.head.seq == 2


def test_a_trail_rewritten_whole_under_the_node_is_named_until_it_holds_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "admin-audit.jsonl"
    for target in ("DE", "IT", "ES"):
        _record(path, target)
    watch = TrailWatch(path)
    assert watch.look() is not None
    original = path.read_bytes()
    # A new chain, whole in itself, in place of the one the node saw: only the head it
    # saw tells.
    path.unlink()
    for target in ("DE", "XX", "ES"):
        _record(path, target)
    seen = watch.look()
    assert seen is not None
    assert (seen.report.finding, seen.report.seq) == ("cut", 3)
    assert seen.new == ()
    _record(path, "FR")
    again = watch.look()
    assert again is not None
    assert again.report.finding == "cut"
    # Recorded onto a broken trail, it still reaches the journal, once.
    assert [(e.seq, e.target) for e in again.new] == [(4, "FR")]
    path.write_bytes(original)  # put back
    back = watch.look()
    assert back is not None
    assert back.report.ok
    assert back.new == ()
    # Whole again, but without the entry the journal was told of: said, once.
    assert (back.whole_again, back.missing) == (True, (4, 4))
    _record(path, "PT")
    later = watch.look()
    assert later is not None
    assert (later.whole_again, later.missing) == (False, None)
    assert [(e.seq, e.target) for e in later.new] == [(4, "PT")]
