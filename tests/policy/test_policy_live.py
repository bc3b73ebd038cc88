"""A running node's policy under edits: valid versions only, no failed request, rate limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connector.demo import DemoNode
from connector.outbound.request import Request
from connector.protocol import Check
from connector.vocabulary import AgencyKind, Category, Purpose

REQUEST = Request(
    agency="ncb",
    agency_kind=AgencyKind.NCB,
    sub="ncb/test",
    purpose=Purpose.BORDER_CONTROL,
    case=None,
    checks=(
        Check(
            id="1",
            category=Category.TRAVEL_DOCUMENTS,
            criteria={"number": "DE1234567", "country": "DE"},
        ),
    ),
)


def policy(answer: str, *, rate: str | None = None) -> str:
    extra = f"    rate: {rate}\n" if rate else ""
    return (
        f"inbound:\n  - name: docs {answer}\n    from: [FR, GB]\n"
        f"    categories: [travel_documents]\n    answer: {answer}\n{extra}"
    )


def demo_file(node: DemoNode) -> Path:
    return node.node.live.policy_dir / "10-demo.yaml"


async def test_edits_under_load_follow_valid_versions_only(pair: dict[str, DemoNode]) -> None:
    de = pair["DE"]
    live = de.node.live
    versions = {}
    demo_file(de).write_text(policy("full"))
    live.reload()
    versions[live.policy.digest] = "full"
    levels: list[str] = []
    failures: list[BaseException] = []
    stop = asyncio.Event()

    async def load() -> None:
        async with pair["FR"].node.desk() as desk:
            while not stop.is_set():
                try:
                    ex = await desk.ask(REQUEST, "DE")
                    levels.append(ex.answer.results[0].level.value)
                except Exception as exc:  # every failure is a test failure
                    failures.append(exc)

    tasks = [asyncio.create_task(load()) for _ in range(4)]
    await asyncio.sleep(0.2)
    for text, valid in [
        (policy("summary"), "summary"),
        ("inbound: [\n", None),
        (policy("hit").replace("answer", "answr"), None),
        (policy("hit"), "hit"),
    ]:
        demo_file(de).write_text(text)
        live.reload()
        if valid:
            assert not live.problems
            versions[live.policy.digest] = valid
        else:
            assert "policy" in live.problems
        await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*tasks)
    assert not failures
    assert set(levels) == {"full", "summary", "hit"}
    # Each answer was decided by exactly one valid version, as the log shows.
    log = de.node.open_enquiry_log()
    try:
        rows = log.list(peer="FR")
    finally:
        log.close()
    assert len(rows) == len(levels)
    for row in rows:
        assert row.entry.policy_digest in versions
        assert row.entry.results[0]["level"] == versions[row.entry.policy_digest]


@pytest.mark.parametrize("budget", [5])
async def test_rate_limit_holds_under_concurrency_and_is_per_peer(
    trio: dict[str, DemoNode], budget: int
) -> None:
    de = trio["DE"]
    demo_file(de).write_text(policy("full", rate=f"{budget}/minute"))
    de.node.live.reload()
    assert not de.node.live.problems

    async def burst(src: str, n: int) -> list[tuple[str, str | None, float | None]]:
        async with trio[src].node.desk() as desk:
            answers = await asyncio.gather(*(desk.ask(REQUEST, "DE") for _ in range(n)))
        return [
            (
                a.answer.results[0].status,
                a.answer.results[0].reason,
                a.answer.results[0].retry_after,
            )
            for a in answers
        ]

    fr, gb = await asyncio.gather(burst("FR", 20), burst("GB", 8))
    for results in (fr, gb):
        answered = [r for r in results if r[0] == "hit"]
        limited = [r for r in results if r[1] == "rate_limited"]
        assert len(answered) == budget
        assert len(limited) == len(results) - budget
        assert all(r[0] == "denied" for r in limited), limited
        # The limiter counts in 1/64-window buckets and errs towards waiting longer.
        assert all(r[2] is not None and 0 < r[2] <= 60 * (1 + 1 / 64) for r in limited)


async def test_renaming_a_policy_file_to_yml_keeps_the_old_policy(
    pair: dict[str, DemoNode],
) -> None:
    de = pair["DE"]
    live = de.node.live
    demo_file(de).write_text(
        policy("none").replace("answer: none", "answer: none\n    reason: suspended")
    )
    live.reload()
    before = live.policy.digest
    demo_file(de).rename(demo_file(de).with_suffix(".yml"))
    assert live.reload_if_changed() is None  # changed: wait one interval for it to settle
    assert live.reload_if_changed() is not None
    assert live.policy.digest == before
    assert "rename it to .yaml" in live.problems["policy"]
    async with pair["FR"].node.desk() as desk:
        ex = await desk.ask(REQUEST, "DE")
    assert ex.answer.results[0].status == "denied"
    assert ex.answer.results[0].reason == "suspended"
