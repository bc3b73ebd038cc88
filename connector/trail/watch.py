"""The running node's look at the admin audit trail: what was recorded since, and whether the
part it had already seen is still as it was."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from connector.trail.entry import TrailEntry, TrailReport, parse_line, split_lines, verify_trail
from connector.trail.file import read_trail


@dataclass(frozen=True, slots=True, kw_only=True)
class Seen:
    """One look: the entries recorded since the last (oldest first; none at the first
    look, which only finds the head), and the check of the whole trail against the head
    seen last time (a finding, or `cut`: that head is gone or changed)."""

    first: bool
    new: tuple[TrailEntry, ...]
    report: TrailReport


class TrailWatch:
    """Reads the trail only when its size, time or inode changed since the last look (a
    stat otherwise). Each look verifies the whole chain and that the head it saw before is
    still there unchanged, so an entry edited, a line cut or the file rewritten whole
    while the node runs is found at the next look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._head: TrailEntry | None = None  # the last head that verified
        self._looked = False

    def look(self) -> Seen | None:
        """None: the file is as at the last look (or still absent)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            stamp = None
        else:
            stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        if self._looked and stamp == self._stamp:
            return None
        self._stamp = stamp
        first, self._looked = not self._looked, True
        data = read_trail(self.path)
        before = self._head
        report = verify_trail(data, expect=None if before is None else (before.seq, before.hash))
        if not report.ok:
            # The head seen last stays the one to hold the trail to: a rewrite is said at
            # every change until the trail holds it again.
            return Seen(first=first, new=(), report=report)
        self._head = report.head
        if first:
            return Seen(first=True, new=(), report=report)
        lines, _ = split_lines(data)
        # An intact chain numbers its lines: entry n is line n.
        new = tuple(parse_line(line)[0] for line in lines[0 if before is None else before.seq :])
        return Seen(first=False, new=new, report=report)
