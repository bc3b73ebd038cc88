"""Idle and slow connections cannot take the node down (issue 13, starvation by idle
connections): a node run as an admin runs it, 3,000 idle and slow-header connections on its
peer listener, and a trusted peer that keeps querying meanwhile."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from support.processes import CLI, POLICY, fr_query, init, pin_fresh_peer, wait_ready

from connector.crypto.jws import Signer
from connector.crypto.keyfiles import certificate_fingerprint
from connector.peers.trust import fingerprint_bytes
from connector.protocol import sign_query

SLOWLORIS = Path(__file__).resolve().parents[1] / "support" / "slowloris.py"
LIMIT_NOFILE = 16384  # as systemd/ncb-connector.service sets it
ATTACK_S = 24.0
LEGIT = "127.0.0.200"  # the trusted peer's address; the attack comes from others

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux loopback")


def _node_limits() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT_NOFILE, LIMIT_NOFILE))


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _legit_peer(
    peer_port: int, local_port: int, fr: Signer, fp: aiohttp.Fingerprint, seconds: float
) -> tuple[list[float], list[str], int]:
    """Queries one after another for `seconds`, and /livez between them: latencies of the
    queries, what failed, how many /livez answered."""
    latencies: list[float] = []
    failures: list[str] = []
    livez = 0
    connector = aiohttp.TCPConnector(local_addr=(LEGIT, 0), limit_per_host=4)
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            i += 1
            query = fr_query(f"Q{i}")
            started = time.perf_counter()
            try:
                async with session.post(
                    f"https://127.0.0.1:{peer_port}/v1/query",
                    ssl=fp,
                    data=sign_query(query, fr),
                    headers={"Content-Type": "application/jose"},
                ) as resp:
                    await resp.read()
                    if resp.status != 200:
                        failures.append(f"status {resp.status}")
                    else:
                        latencies.append(time.perf_counter() - started)
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            if i % 10 == 0:
                try:
                    async with session.get(f"http://127.0.0.1:{local_port}/livez") as resp:
                        livez += resp.status == 200
                except (aiohttp.ClientError, TimeoutError) as exc:
                    failures.append(f"livez {type(exc).__name__}: {exc}")
            await asyncio.sleep(0.02)
    return latencies, failures, livez


async def test_a_peer_is_answered_through_3000_idle_and_slow_connections(tmp_path: Path) -> None:
    config, peer_port, local_port = init(tmp_path, "DE")
    (config.parent / "policies" / "10-test.yaml").write_text(POLICY)
    fr = pin_fresh_peer(config)
    fp = aiohttp.Fingerprint(
        fingerprint_bytes(
            certificate_fingerprint((config.parent / "tls" / "cert.pem").read_bytes())
        )
    )
    log_path = tmp_path / "node.log"
    env = {**os.environ, "NCB_CONNECTOR_CONFIG": str(config)}
    with log_path.open("wb") as log_file:
        node = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            [*CLI, "run"],
            text=True,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            preexec_fn=_node_limits,
        )
    attacker: subprocess.Popen[str] | None = None
    try:
        await asyncio.to_thread(wait_ready, local_port, node)
        before, failed_before, _ = await _legit_peer(peer_port, local_port, fr, fp, 2.0)
        assert failed_before == []

        others = [f"127.0.0.{n}:25:{'idle' if n % 2 else 'slow'}" for n in range(2, 42)]
        attacker = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            [
                sys.executable,
                str(SLOWLORIS),
                "--port",
                str(peer_port),
                "--tls",
                "--seconds",
                str(ATTACK_S),
                "--group",
                "127.0.0.1:1000:idle",
                "--group",
                "127.0.0.1:1000:slow",
                *(arg for group in others for arg in ("--group", group)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        await asyncio.sleep(3.0)  # every attacking connection is open or refused
        during, failed, livez = await _legit_peer(peer_port, local_port, fr, fp, ATTACK_S - 5.0)
        out, _ = await asyncio.to_thread(attacker.communicate, timeout=60)
        stats = json.loads(out.strip().splitlines()[-1])
    finally:
        if attacker is not None and attacker.poll() is None:
            attacker.kill()
        node.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(node.wait, 30)
        except subprocess.TimeoutExpired:
            node.kill()

    p99_before, p99 = _p(before, 0.99), _p(during, 0.99)
    print(
        f"\nlegit peer: {len(during)} queries under attack, p50 {_p(during, 0.5) * 1000:.1f} ms,"
        f" p99 {p99 * 1000:.1f} ms (before: p99 {p99_before * 1000:.1f} ms);"
        f" attacker: {stats}; node log {log_path.stat().st_size} bytes in all"
    )
    assert failed == [], failed[:5]
    assert len(during) > 100
    assert livez > 10
    assert p99 < 1.0, p99
    # The attack was real: most of the address's 2,000 were turned away, over and over.
    assert stats["refused"] > 2000, stats
    text = log_path.read_text()
    assert node.returncode == 0, text[-2000:]
    # What the attack made the node log, beside the legitimate peer's answered enquiries:
    # a few lines per kind and address a minute, and their counts.
    noise = [line for line in text.splitlines() if '"enquiry_answered"' not in line]
    assert sum(len(line) + 1 for line in noise) < 64_000, len(noise)
    assert "Traceback" not in text
    assert "Too many open files" not in text
    events = [json.loads(line)["event"] for line in text.splitlines() if line.startswith("{")]
    assert "connection_refused" in events
    assert "connection_refused_suppressed" in events
