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
    whole_again: bool = False  # it verifies again, after a look that found it broken
    # Entries reported to the journal that the trail no longer holds: (first, last) seq.
    missing: tuple[int, int] | None = None


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
        self._said = 0  # the highest seq reported as new
        self._broken = False

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
        lines, _ = split_lines(data)
        if not report.ok:
            # The head seen last stays the one to hold the trail to: a rewrite is said at
            # every change until the trail holds it again. Entries appended meanwhile still
            # reach the journal, each once, by their seq, as far as their lines read.
            self._broken = True
            return Seen(first=first, new=self._unsaid(lines, verified=False), report=report)
        self._head = report.head
        whole_again, self._broken = self._broken, False
        if first:
            self._said = report.head.seq if report.head is not None else 0
            return Seen(first=True, new=(), report=report)
        held = report.head.seq if report.head is not None else 0
        missing = (held + 1, self._said) if held < self._said else None
        if missing is not None:
            self._said = held  # said once; entries recorded from here on are new again
        return Seen(
            first=False,
            new=self._unsaid(lines, verified=True),
            report=report,
            whole_again=whole_again,
            missing=missing,
        )

    def _unsaid(self, lines: list[bytes], *, verified: bool) -> tuple[TrailEntry, ...]:
        new: list[TrailEntry] = []
        # An intact chain numbers its lines (entry n is line n): only the new ones are read.
        for line in lines[self._said :] if verified else lines:
            try:
                entry, _ = parse_line(line)
            except ValueError:
                continue
            if entry.seq > self._said:
                new.append(entry)
        if new:
            self._said = max(e.seq for e in new)
        return tuple(new)
