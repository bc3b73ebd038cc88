"""What a peer can learn by varying its criteria: only fields its level shows are searched, and
one peer asking about one subject with ever different criteria is noticed (issue 13)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from support.network import import_rows, load, ncb_request

from connector.demo import DemoNode, network
from connector.inbound.probing import ProbingDetector
from connector.notify.outbox import Outbox
from connector.records.kinds.registry import KINDS
from connector.vocabulary import Category

POLICY = """\
inbound:
  - name: everything for FR
    from: [FR]
    answer: full
  - name: persons at hit for IT
    from: [IT]
    categories: [wanted_persons]
    answer: hit
  - name: persons and artworks at summary for GB
    from: [GB]
    categories: [wanted_persons, artworks]
    answer: summary
  - name: persons by their main name only for ES
    from: [ES]
    categories: [wanted_persons]
    answer: summary
    search: [first_name, last_name, birth_date]
outbound:
  - agency: ncb
    to: "*"
"""

ALIASED = {
    "id": "DE-2025-000777",
    "last_name": "Keller",
    "first_name": "Anna",
    "aliases": ["Nora Blauberg"],
    "birth_date": "1975-05-05",
    "warrant_country": "DE",
}


def configure(policy: str, notifications: str = "") -> Callable[[str, Path], None]:
    """DE answers under `policy`; the others may ask it anything."""

    def configure_with(node_id: str, directory: Path) -> None:
        asking = 'outbound:\n  - agency: ncb\n    to: "*"\n'
        (directory / "policies" / "10-demo.yaml").write_text(policy if node_id == "DE" else asking)
        if node_id == "DE" and notifications:
            config = directory / "connector.yaml"
            config.write_text(config.read_text() + notifications)

    return configure_with


def load_all(net: dict[str, DemoNode]) -> None:
    load(net)
    import_rows(net, Category.WANTED_PERSONS, [ALIASED])


async def ask(
    net: dict[str, DemoNode], src: str, category: Category, criteria: dict[str, Any]
) -> Any:
    """One check, asked of DE by `src`: its result, with the answer's enquiry id."""
    request = ncb_request((category, criteria))
    async with net[src].node.desk() as desk:
        ex = await desk.ask(request, "DE")
    (result,) = ex.answer.results
    return result, ex.answer.enquiry


async def test_only_fields_the_level_shows_are_searched(tmp_path: Path) -> None:
    async with network(tmp_path, ["FR", "DE", "GB", "IT", "ES"], configure(POLICY)) as net:
        load_all(net)
        person = {"last_name": "Shcherbakov"}

        # (a) At `hit` the birth date is hidden: varying it no longer flips hit to no_hit,
        # and the answer says it was not used.
        for year in ("1980", "1950", "2001-12-24"):
            result, _ = await ask(
                net, "IT", Category.WANTED_PERSONS, {**person, "birth_date": year}
            )
            assert result.status == "hit", year
            assert result.unused_criteria == ["birth_date"]
            assert result.hits[0].record == {}
        # The same for every criterion compared with hidden fields only, in the order sent.
        result, _ = await ask(
            net,
            "IT",
            Category.WANTED_PERSONS,
            {"sex": "female", **person, "nationality": "FR", "birth_date": "1950"},
        )
        assert result.status == "hit"
        assert result.unused_criteria == ["sex", "nationality", "birth_date"]
        # At `summary` the birth date is shown, so it is searched by: a contradiction counts.
        result, _ = await ask(net, "GB", Category.WANTED_PERSONS, {**person, "birth_date": "1950"})
        assert result.status == "no_hit"
        assert result.unused_criteria == []
        result, _ = await ask(net, "FR", Category.WANTED_PERSONS, {**person, "birth_date": "1950"})
        assert result.status == "no_hit"

        # (b) At `summary` an artwork's description is hidden: a word found only there does
        # not confirm the record; the title's words still find it.
        result, _ = await ask(net, "GB", Category.ARTWORKS, {"text": "canvas"})
        assert result.status == "no_hit"
        assert result.unused_criteria == []  # text is still searched, in title and artist
        result, _ = await ask(net, "GB", Category.ARTWORKS, {"text": "argenteuil"})
        assert result.status == "hit"
        result, _ = await ask(net, "FR", Category.ARTWORKS, {"text": "canvas"})
        assert result.status == "hit"

        # (c) A rule's own `search:` decides: ES does not search aliases (a full-only field),
        # where the default for persons, like INTERPOL's, searches every form of the name.
        alias = {"first_name": "Nora", "last_name": "Blauberg"}
        result, _ = await ask(net, "ES", Category.WANTED_PERSONS, alias)
        assert result.status == "no_hit"
        for src in ("GB", "FR"):
            result, _ = await ask(net, src, Category.WANTED_PERSONS, alias)
            assert result.status == "hit", src
        result, _ = await ask(net, "ES", Category.WANTED_PERSONS, {"last_name": "Keller"})
        assert result.status == "hit"
        # ES searches no document numbers: that criterion is named, not silently dropped.
        result, _ = await ask(net, "ES", Category.WANTED_PERSONS, {"document_number": "751234567"})
        assert result.status == "no_hit"
        assert result.unused_criteria == ["document_number"]


PROBING_POLICY = """\
defaults:
  channels: [duty]
inbound:
  - name: persons at summary for GB and IT
    from: [GB, IT]
    categories: [wanted_persons]
    answer: summary
probing:
  window: 1h
  distinct_criteria: 3
  then: {action}
outbound:
  - agency: ncb
    to: "*"
"""

NOTIFICATIONS = (
    "notifications:\n  channels:\n    duty:\n      type: webhook\n"
    "      url: http://127.0.0.1:9/hook\n      insecure: true\n      timeout: 2\n"
)


def outbox(node: DemoNode) -> list[Any]:
    box = Outbox.open(node.node.settings.enquiries_url)
    try:
        return box.list()
    finally:
        box.close()


@pytest.mark.parametrize("action", ["deny", "notify"])
async def test_varied_checks_on_one_subject_are_noticed_once(tmp_path: Path, action: str) -> None:
    policy = PROBING_POLICY.format(action=action)
    async with network(tmp_path, ["FR", "DE", "GB", "IT"], configure(policy, NOTIFICATIONS)) as net:
        load_all(net)
        person = {"last_name": "Shcherbakov", "first_name": "Ivan"}
        with capture_logs() as logs:
            statuses, enquiries = [], []
            for birth in ("1980", "1980-02", "1979", "1981", "1980"):
                result, enquiry = await ask(
                    net, "GB", Category.WANTED_PERSONS, {**person, "birth_date": birth}
                )
                statuses.append((result.status, result.reason))
                enquiries.append(enquiry)
            # The same criteria again is no new variation: the first two count once each.
            other, _ = await ask(net, "GB", Category.WANTED_PERSONS, {"last_name": "Petrov"})
            elsewhere, _ = await ask(
                net, "IT", Category.WANTED_PERSONS, {**person, "birth_date": "1980"}
            )
        if action == "deny":
            denied = ("denied", "probing_suspected")
            assert statuses == [("hit", None), ("hit", None), denied, denied, denied]
        else:
            assert [s for s, _ in statuses] == ["hit", "hit", "no_hit", "no_hit", "hit"]
        # Another subject from the same peer, and the same subject from another peer, are
        # answered as before.
        assert other.status == "no_hit"
        assert elsewhere.status == "hit"

        rows = outbox(net["DE"])
        assert len(rows) == 1
        (row,) = rows
        assert row.notice.enquiry == enquiries[2]  # committed with the check that crossed
        assert row.notice.channel == "duty"
        (why,) = row.notice.body["why_notified"]
        assert why.startswith("probing: GB asked about one subject of wanted_persons with 3 ")
        events = [e for e in logs if e["event"] == "probing_suspected"]
        assert len(events) == 1
        assert events[0]["peer"] == "GB"
        assert events[0]["category"] == "wanted_persons"
        assert events[0]["distinct"] == 3
        assert events[0]["action"] == action


def test_the_detector_counts_distinct_criteria_per_peer_and_subject() -> None:
    detector = ProbingDetector()

    def see(peer: str, subject: int, variant: int, now: float) -> str:
        return detector.observe(
            peer=peer, subject=subject, variant=variant, now=now, window=60, distinct=3
        ).verdict

    assert [see("GB", 1, v, 0) for v in (10, 10, 11)] == ["ok", "ok", "ok"]
    assert see("IT", 1, 12, 1) == "ok"  # another peer's variation is its own
    assert see("GB", 2, 12, 1) == "ok"  # another subject too
    assert see("GB", 1, 12, 2) == "suspected"
    assert see("GB", 1, 10, 3) == "flagged"
    assert see("GB", 1, 99, 61) == "flagged"  # a window from the check that crossed
    assert see("GB", 1, 99, 62.5) == "ok"  # and then forgotten
    # Variations older than the window no longer count.
    assert [see("GB", 5, v, t) for v, t in ((1, 0), (2, 10), (3, 80))] == ["ok", "ok", "ok"]


def test_the_detector_stays_bounded_whatever_keys_a_peer_sends() -> None:
    detector = ProbingDetector(max_peers=8, max_subjects=100, max_suspected=10)
    now = 0.0
    for i in range(20_000):
        now += 0.001
        detector.observe(peer=f"P{i % 50}", subject=i, variant=i, now=now, window=3_600, distinct=3)
    peers, subjects, variants = detector.size()
    assert peers == 8
    assert subjects <= 8 * (100 + 10)
    assert variants <= 8 * 100 * 2
    # One peer flagging many subjects keeps at most max_suspected of them.
    for subject in range(1_000):
        for variant in range(3):
            now += 0.001
            detector.observe(
                peer="GB", subject=subject, variant=variant, now=now, window=3_600, distinct=3
            )
    assert detector.size()[1] <= 8 * (100 + 10)
    # Time alone empties a peer's table of subjects asked before the window.
    detector.observe(peer="GB", subject=-1, variant=0, now=now + 7_200, window=3_600, distinct=3)
    assert len(detector._peers["GB"].subjects) == 1
    assert len(detector._peers["GB"].suspected) == 0


def test_criteria_that_search_alike_are_one_variation() -> None:
    documents = KINDS[Category.TRAVEL_DOCUMENTS]
    same = [
        documents.parse_criteria({"number": n, "country": "DE"})
        for n in ("de 123-4567", "DE1234567", "De.123.4567")
    ]
    assert len({documents.variant(c) for c in same}) == 1
    assert {documents.subject(c) for c in same} == {"DE1234567"}
    other = documents.parse_criteria({"number": "DE1234567", "country": "FR"})
    assert documents.variant(other) != documents.variant(same[0])
