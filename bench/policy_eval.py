"""Policy evaluation: decisions per second for a 200-rule policy with a 196-country group."""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pycountry

from connector.demo import network
from connector.logs import configure_logging
from connector.policy import Policy, load_policy
from connector.protocol import Check, make_query, sign_query
from connector.server.peer_api import ANSWERER
from connector.vocabulary import AgencyKind, Category, Purpose

COUNTRIES = sorted(c.alpha_2 for c in pycountry.countries)[:196]
CATEGORIES = list(Category)
PURPOSES = list(Purpose)
KINDS = list(AgencyKind)


def big_policy(rules: int = 200) -> str:
    """`rules` inbound rules, each narrow, then one broad rule for a 196-country group, so
    a query from most peers walks the whole list before it is decided."""
    lines = ["groups:", f"  world: [{', '.join(COUNTRIES)}]", "inbound:"]
    for i in range(rules - 1):
        peers = ", ".join(COUNTRIES[(i * 7 + k) % 40] for k in range(3))
        lines += [
            f"  - name: rule {i}",
            f"    from: [{peers}]",
            f"    purposes: [{PURPOSES[i % len(PURPOSES)].value}]",
            f"    agency_kinds: [{KINDS[i % len(KINDS)].value}]",
            f"    categories: [{CATEGORIES[i % len(CATEGORIES)].value}]",
            f"    answer: {['hit', 'summary', 'full'][i % 3]}",
        ]
    lines += [
        "  - name: the world, documents only",
        "    from: [group:world]",
        "    categories: [travel_documents]",
        "    answer: summary",
        "outbound:",
        "  - agency: ncb",
        '    to: "*"',
        "    categories: [travel_documents]",
    ]
    return "\n".join(lines) + "\n"


def time_decisions(policy_dir: Path) -> tuple[float, float, int, float]:
    """µs per decision uncached (every query distinct, fresh policy) and cached, the number
    of distinct queries, and the load time in ms."""
    started = time.perf_counter()
    policy = load_policy(policy_dir)
    load_ms = (time.perf_counter() - started) * 1000
    queries = list(itertools.product(COUNTRIES, KINDS, PURPOSES, CATEGORIES))[:60_000]
    started = time.perf_counter()
    for peer, kind, purpose, category in queries:
        policy.decide_inbound(
            peer=peer, agency_kind=kind, purpose=purpose, category=category, has_case=False
        )
    uncached = (time.perf_counter() - started) / len(queries) * 1e6
    hot = queries[:5_000]
    started = time.perf_counter()
    for _ in range(10):
        for peer, kind, purpose, category in hot:
            policy.decide_inbound(
                peer=peer, agency_kind=kind, purpose=purpose, category=category, has_case=False
            )
    cached = (time.perf_counter() - started) / (10 * len(hot)) * 1e6
    return uncached, cached, len(queries), load_ms


async def time_answers(policy_text: str, n: int) -> tuple[float, int]:
    """µs of one answered query in process (verify → decide → search → log → sign), with
    the big policy in force; the asking peer changes every query to defeat the memo."""
    with tempfile.TemporaryDirectory(prefix="ncb-bench-policy-") as tmp:
        async with network(Path(tmp), ["FR", "DE"]) as net:
            de = net["DE"].node
            (de.live.policy_dir / "10-demo.yaml").write_text(policy_text)
            de.live.reload()
            assert not de.live.problems, de.live.problems
            answerer = net["DE"].service.peer_app[ANSWERER]
            signer = net["FR"].node.signer
            tokens = [
                sign_query(
                    make_query(
                        iss="FR",
                        aud="DE",
                        sub="bench/1",
                        agency_kind=KINDS[i % len(KINDS)],
                        purpose=PURPOSES[i % len(PURPOSES)],
                        checks=(
                            Check(
                                id="1",
                                category=Category.TRAVEL_DOCUMENTS,
                                criteria={"number": f"DE{i:07d}", "country": "DE"},
                            ),
                        ),
                    ),
                    signer,
                )
                for i in range(n)
            ]
            sem = asyncio.Semaphore(64)

            async def one(token: bytes) -> None:
                async with sem:
                    await answerer.answer(token)

            gc.collect()
            started = time.perf_counter()
            await asyncio.gather(*(one(t) for t in tokens))
            return (time.perf_counter() - started) / n * 1e6, n


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.policy_eval", description=__doc__)
    parser.add_argument("--answers", type=int, default=3000)
    args, _ = parser.parse_known_args(argv)
    configure_logging(fmt="json", level="error")
    text = big_policy()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="ncb-bench-policy-") as tmp:
        (Path(tmp) / "10-big.yaml").write_text(text)
        for _ in range(3):
            rounds.append(time_decisions(Path(tmp)))
    uncached = statistics.median(r[0] for r in rounds)
    cached = statistics.median(r[1] for r in rounds)
    load_ms = statistics.median(r[3] for r in rounds)
    answer_us, n = asyncio.run(time_answers(text, args.answers))
    rules = len(load_policy_from_text(text).inbound)
    print(
        f"policy: {rules} inbound rules, a group of {len(COUNTRIES)} countries; "
        f"load + check {load_ms:.0f} ms"
    )
    print(
        f"decision, uncached (every query distinct): {uncached:.1f} µs "
        f"= {1e6 / uncached:,.0f} decisions/s"
    )
    print(
        f"decision, cached (repeated queries):      {cached:.2f} µs "
        f"= {1e6 / cached:,.0f} decisions/s"
    )
    print(f"one answered query in process with this policy: {answer_us:.0f} µs ({n} queries)")
    print(
        f"an uncached decision is {uncached / answer_us:.1%} of a query's cost, "
        f"a cached one {cached / answer_us:.2%}"
    )
    return 0 if uncached / answer_us < 0.05 else 1


def load_policy_from_text(text: str) -> Policy:
    with tempfile.TemporaryDirectory(prefix="ncb-bench-policy-") as tmp:
        (Path(tmp) / "10-big.yaml").write_text(text)
        return load_policy(Path(tmp))


if __name__ == "__main__":
    raise SystemExit(main())
