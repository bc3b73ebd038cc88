"""The enquiry log's per-check path on PostgreSQL, alone: replay check and group commit.

Starts a durable PostgreSQL server of its own on loopback (fsync on), opens the log as a
serving node does, and runs `--checks` checks at `--concurrency` at once, each what a check
asks of the log: `seen(iss, jti)`, then `append` of its row, awaited until committed. Prints
checks/s, this process's CPU a check (user + system), and the rows a commit took; then
verifies the chain. Run it on two code versions in turn to compare them:

    PYTHONPATH=. python -m bench.log_pg
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from collections.abc import Sequence

from connector.enquiries.entry import Entry, new_enquiry_id
from connector.enquiries.log import EnquiryLog
from connector.storage import pgtemp

_T0 = 1_790_000_000.0


def _entry(n: int) -> Entry:
    return Entry(
        id=new_enquiry_id(_T0 + n),
        at=_T0 + n,
        direction="in",
        peer="FR",
        iss="FR",
        jti=f"jti-{n:020d}",
        sub="border/1",
        agency_kind="border",
        purpose="border_control",
        case_ref=None,
        decision="answered",
        rules=("r1",),
        policy_digest="sha256:00",
        checks=({"id": "1", "category": "travel_documents", "criteria": {"number": f"X{n}"}},),
        results=({"check": "1", "status": "no_hit"},),
        hit_refs=(),
        answer_digest="d",
        error=None,
        query_token="a.b.c",
    )


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _run(url: str, checks: int, concurrency: int) -> str:
    log = EnquiryLog.open(url, serving=True)
    gate = asyncio.Semaphore(concurrency)

    async def check(n: int) -> None:
        async with gate:
            e = _entry(n)
            if await log.seen(e.iss, e.jti):
                raise AssertionError(f"jti {e.jti} seen before it was used")
            await log.append(e)

    try:
        await asyncio.gather(*(check(-n) for n in range(1, 201)))  # pools and caches warm
        flushes, rows = log.stats.flushes, log.stats.rows
        cpu, started = _cpu(), time.perf_counter()
        await asyncio.gather(*(check(n) for n in range(checks)))
        wall, cpu = time.perf_counter() - started, _cpu() - cpu
        per_commit = (log.stats.rows - rows) / max(1, log.stats.flushes - flushes)
        report = log.verify()
        if not report.ok:
            raise AssertionError(f"the chain does not verify: {report.problem}")
    finally:
        await log.aclose()
    return (
        f"{checks / wall:,.0f} checks/s, {cpu / checks * 1e6:,.0f} µs of CPU a check, "
        f"{per_commit:.1f} rows a commit; chain of {report.rows:,} rows verified"
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.log_pg", description=__doc__)
    ap.add_argument("--checks", type=int, default=3000, help="timed checks")
    ap.add_argument("--concurrency", type=int, default=64, help="checks in flight at once")
    opts = ap.parse_args(argv)
    with pgtemp.running(durable=True) as server:
        url = server.create_database("log_pg")
        print(asyncio.run(_run(url, opts.checks, opts.concurrency)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
