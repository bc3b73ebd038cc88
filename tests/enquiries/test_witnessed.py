"""What a witness keeps of a peer's checkpoints: bounded for years, every conflict kept."""

from __future__ import annotations

from pathlib import Path

from connector.enquiries.witnessed import DAY_S, Held, Thinning, WitnessStore, to_forget
from connector.protocol import Checkpoint


def _checkpoint(seq: int, digit: str = "a", *, iat: int = 1_800_000_000) -> Checkpoint:
    return Checkpoint(node="FR", seq=seq, hash=digit * 64, iat=iat, token=f"token-{seq}-{digit}")


def test_five_years_of_checkpoints_thin_to_a_bounded_set_that_keeps_the_newest() -> None:
    thinning = Thinning()
    held: list[Held] = []
    start, step = 1_800_000_000, 6 * 3600
    for i in range(5 * 365 * 4):  # one every six hours for five years
        held.append(Held(seq=i + 1, hash="a" * 64, iat=start + i * step))
        gone = to_forget(held, thinning)
        held = [h for h in held if (h.seq, h.hash) not in gone]
    seqs = sorted(h.seq for h in held)
    newest = 5 * 365 * 4
    assert seqs[-48:] == list(range(newest - 47, newest + 1))  # the newest, every one
    # Then one a day for 400 days, then one a month: about 48 + 400 + 48.
    assert len(held) <= 48 + 400 + 5 * 13
    days = {h.iat // DAY_S for h in held if (held[-1].iat - h.iat) // DAY_S < 400}
    assert len(days) >= 400


def test_two_hashes_for_one_row_are_both_kept_whatever_their_age() -> None:
    held = [Held(seq=s, hash="a" * 64, iat=1_800_000_000 + s) for s in range(1, 200)]
    held.append(Held(seq=5, hash="b" * 64, iat=1_800_000_000 + 500))
    gone = to_forget(held, Thinning(recent=10, conflicts=4))
    assert (5, "a" * 64) not in gone
    assert (5, "b" * 64) not in gone
    assert (6, "a" * 64) in gone  # an old, ordinary checkpoint of the same day


def test_the_store_keeps_reports_conflicts_and_returns_oldest_first(tmp_path: Path) -> None:
    store = WitnessStore.open(f"sqlite:///{tmp_path / 'enquiries.db'}")
    try:
        first = store.keep(_checkpoint(3), received_at=1.0)
        assert first.new
        assert not first.conflict
        assert first.latest.seq == 3
        again = store.keep(_checkpoint(3), received_at=2.0)  # a retry: nothing new
        assert not again.new
        assert not again.conflict
        later = store.keep(_checkpoint(7), received_at=3.0)
        assert later.latest.seq == 7
        behind = store.keep(_checkpoint(5), received_at=4.0)
        assert behind.latest.seq == 7  # the node went back: the receipt says so
        forked = store.keep(_checkpoint(7, "b"), received_at=5.0)
        assert forked.conflict
        assert [(c.seq, c.hash[0]) for c in store.held("FR")] == [
            (3, "a"),
            (5, "a"),
            (7, "a"),
            (7, "b"),
        ]
        assert store.held("DE") == []
    finally:
        store.close()
