"""The trail's file: entries appended one line each under a lock, synced; read and verified."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from connector.enquiries.entry import GENESIS
from connector.errors import AuditTrailError
from connector.storage.files import locked_append, read_locked
from connector.trail.entry import (
    Action,
    Actor,
    Detail,
    TrailEntry,
    TrailReport,
    line_of,
    new_entry,
    parse_line,
    split_lines,
    verify_trail,
)

_CHUNK = 65536
_KEPT_OF_PARTIAL = 200  # characters of a cut-off line kept in the entry that says so


@dataclass(frozen=True, slots=True, kw_only=True)
class _Tail:
    last: bytes | None  # the last whole line; None: there is none
    partial_at: int  # the offset after the last newline
    partial: bytes  # what follows it: b"" in a trail every write finished


def record(
    path: Path,
    *,
    actor: Actor,
    action: Action,
    target: str,
    details: Mapping[str, Detail],
    now: float,
) -> TrailEntry:
    """THE way a change is recorded: one entry appended to the trail at `path`, chained onto
    its last line, synced before it returns. Call it after the change took effect, once.

    A last line a crash left without its newline is finished when it is the whole entry
    that follows (only the newline was lost); otherwise it is cut off, and a
    `trail.repaired` entry, recorded before this one, keeps its length, SHA-256 and first
    characters. A last whole line that is not an entry is not chained onto:
    AuditTrailError names it."""
    try:
        with locked_append(path) as fh:
            tail = _tail(fh)
            after = _last_entry(path, tail.last)
            finished = _finished(tail.partial, after)
            if finished is not None:
                fh.write(b"\n")
                after = finished
            elif tail.partial:
                fh.truncate(tail.partial_at)
                after = _append(
                    fh,
                    new_entry(
                        after=after,
                        at=now,
                        actor=actor,
                        action=Action.TRAIL_REPAIRED,
                        target=path.name,
                        details=_cut_off(tail, after),
                    ),
                )
            return _append(
                fh,
                new_entry(
                    after=after, at=now, actor=actor, action=action, target=target, details=details
                ),
            )
    except OSError as exc:
        raise AuditTrailError(f"cannot append to {path}: {exc.strerror or exc}") from exc


def _append(fh: BinaryIO, entry: TrailEntry) -> TrailEntry:
    fh.write(line_of(entry))
    return entry


def _finished(partial: bytes, after: TrailEntry | None) -> TrailEntry | None:
    """The entry a partial last line holds whole, when it follows `after`: its newline was
    all the crash took."""
    if not partial:
        return None
    try:
        entry, whole = parse_line(partial)
    except ValueError:
        return None
    follows = entry.seq == (1 if after is None else after.seq + 1)
    chained = entry.prev == (GENESIS if after is None else after.hash)
    return entry if whole and follows and chained else None


def _cut_off(tail: _Tail, after: TrailEntry | None) -> dict[str, Detail]:
    return {
        "after_seq": 0 if after is None else after.seq,
        "offset": tail.partial_at,
        "bytes": len(tail.partial),
        "sha256": hashlib.sha256(tail.partial).hexdigest(),
        "text": tail.partial[:_KEPT_OF_PARTIAL].decode("utf-8", "replace"),
    }


def _last_entry(path: Path, last: bytes | None) -> TrailEntry | None:
    if last is None:
        return None
    try:
        return parse_line(last)[0]
    except ValueError as exc:
        raise AuditTrailError(
            f"the last line of {path} is not an audit entry ({exc}), so nothing is chained "
            "onto it: run `ncb-connector audit verify`, and restore the trail from a backup"
        ) from exc


def _tail(fh: BinaryIO) -> _Tail:
    """The last whole line and any partial one after it, read backwards from the end: an
    append costs the same however long the trail is."""
    pos = fh.seek(0, 2)
    buf = b""
    while pos > 0 and buf.count(b"\n") < 2:
        step = min(_CHUNK, pos)
        pos -= step
        fh.seek(pos)
        buf = fh.read(step) + buf
    end = buf.rfind(b"\n")
    if end == -1:
        return _Tail(last=None, partial_at=pos, partial=buf)
    start = buf.rfind(b"\n", 0, end) + 1
    return _Tail(last=buf[start:end], partial_at=pos + end + 1, partial=buf[end + 1 :])


def read_trail(path: Path) -> bytes:
    """The trail's bytes (b"" before anything was recorded), never half an append."""
    try:
        data = read_locked(path)
    except OSError as exc:
        raise AuditTrailError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return b"" if data is None else data


def read_entries(path: Path) -> list[TrailEntry]:
    """Every line that is an entry, in file order (`audit verify` says whether they chain)."""
    lines, _ = split_lines(read_trail(path))
    entries = []
    for line in lines:
        try:
            entries.append(parse_line(line)[0])
        except ValueError:
            continue
    return entries


def verify_file(path: Path, *, expect: tuple[int, str] | None = None) -> TrailReport:
    return verify_trail(read_trail(path), expect=expect)


def trail_head(data: bytes) -> tuple[int, str] | None:
    """(seq, hash) of the last whole entry of a trail's bytes: what a backup's manifest
    vouches for. None: no entry."""
    lines, _ = split_lines(data)
    for line in reversed(lines):
        try:
            entry = parse_line(line)[0]
        except ValueError:
            continue
        return entry.seq, entry.hash
    return None
