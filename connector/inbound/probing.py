"""Probing detection: one peer asking about one subject with ever different criteria, in memory."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Observation", "ProbingDetector"]

Verdict = Literal["ok", "suspected", "flagged"]
"""`suspected`: this check made the subject's criteria `distinct` (tell the NCB, once);
`flagged`: the subject was suspected earlier and that window has not passed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    verdict: Verdict
    distinct: int  # different criteria seen on the subject within the window
    until: float = 0.0  # when a suspected subject is forgotten (and, with deny, answered again)


_OK = Observation(verdict="ok", distinct=1)


@dataclass(slots=True)
class _Subject:
    # Criteria digest → when last asked; never more than the threshold, since the subject is
    # suspected (and leaves this table) as soon as it has that many.
    variants: dict[int, float] = field(default_factory=dict)
    last: float = 0.0


@dataclass(slots=True)
class _Peer:
    subjects: OrderedDict[int, _Subject] = field(default_factory=OrderedDict)  # oldest first
    suspected: OrderedDict[int, float] = field(default_factory=OrderedDict)  # subject → until
    last: float = 0.0


class ProbingDetector:
    """For each peer, the subjects it asked about recently and the different criteria it
    asked each with. Subjects and criteria are kept as 64-bit hashes, never as the text a
    peer sent, and every table is capped, since a peer chooses its keys: at most `max_peers`
    peers, `max_subjects` subjects and `max_suspected` suspected subjects per peer, each
    subject with fewer than its threshold of criteria. What is older than the window goes
    first; when a table is full its least recently asked entry goes. Time is passed in."""

    def __init__(
        self, *, max_peers: int = 256, max_subjects: int = 4_096, max_suspected: int = 256
    ) -> None:
        self.max_peers = max_peers
        self.max_subjects = max_subjects
        self.max_suspected = max_suspected
        self._peers: OrderedDict[str, _Peer] = OrderedDict()  # least recently active first

    def observe(
        self, *, peer: str, subject: int, variant: int, now: float, window: float, distinct: int
    ) -> Observation:
        """Count a check of `peer` about `subject` asked with criteria `variant`."""
        state = self._peer(peer, now)
        while state.suspected and next(iter(state.suspected.values())) <= now:
            state.suspected.popitem(last=False)
        until = state.suspected.get(subject)
        if until is not None:
            if until > now:
                return Observation(verdict="flagged", distinct=distinct, until=until)
            del state.suspected[subject]
        _expire(state.subjects, now - window)
        entry = state.subjects.get(subject)
        if entry is None:
            entry = state.subjects[subject] = _Subject()
            while len(state.subjects) > self.max_subjects:
                state.subjects.popitem(last=False)
        else:
            state.subjects.move_to_end(subject)
            since = now - window
            for old in [v for v, at in entry.variants.items() if at < since]:
                del entry.variants[old]
        entry.last = now
        entry.variants[variant] = now
        count = len(entry.variants)
        if count < distinct:
            return _OK if count == 1 else Observation(verdict="ok", distinct=count)
        del state.subjects[subject]
        until = now + window
        state.suspected[subject] = until
        while len(state.suspected) > self.max_suspected:
            state.suspected.popitem(last=False)
        return Observation(verdict="suspected", distinct=count, until=until)

    def _peer(self, peer: str, now: float) -> _Peer:
        state = self._peers.get(peer)
        if state is None:
            state = self._peers[peer] = _Peer()
            while len(self._peers) > self.max_peers:
                self._peers.popitem(last=False)
        else:
            self._peers.move_to_end(peer)
        state.last = now
        return state

    def size(self) -> tuple[int, int, int]:
        """Peers, subjects and stored criteria digests held (for tests and metrics)."""
        subjects = sum(len(p.subjects) + len(p.suspected) for p in self._peers.values())
        variants = sum(len(s.variants) for p in self._peers.values() for s in p.subjects.values())
        return len(self._peers), subjects, variants


def _expire(subjects: OrderedDict[int, _Subject], before: float) -> None:
    """Drop the subjects last asked before `before`: they are the oldest, so at the front."""
    while subjects:
        first = next(iter(subjects.values()))
        if first.last >= before:
            return
        subjects.popitem(last=False)
