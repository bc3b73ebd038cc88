"""Peer health: the node's scheduled check of every peer, and `peers status` reading it."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from support.network import ncb_request
from support.processes import cli, free_port

from connector.crypto.jws import SigningKey
from connector.demo import network
from connector.node.local_app import FANOUT, HEALTH
from connector.peers.health import check_peer
from connector.peers.trust import Peer, PinnedKey, save_trust_store


async def test_health_finds_down_mismatched_and_expiring_peers(tmp_path: Path) -> None:
    async with network(tmp_path, ["FR", "DE", "GB", "NL"]) as net:
        fr = net["FR"]
        trust = fr.node.live.trust
        de, gb = trust.peers["DE"], trust.peers["GB"]
        soon = datetime.now(UTC) + timedelta(days=3)
        trust = trust.with_peer(
            Peer(
                id="DE",
                url=de.url,
                tls_fingerprint=de.tls_fingerprint,
                keys=(PinnedKey(key=de.keys[0].key, not_after=soon),),
            )
        )
        trust = trust.with_peer(
            Peer(
                id="GB",
                url=gb.url,
                tls_fingerprint=gb.tls_fingerprint,
                keys=(PinnedKey(key=SigningKey.generate().public),),
            )
        )
        save_trust_store(fr.node.live.peers_file, trust)
        fr.node.live.reload()
        await net["NL"].service.stop()
        rows = {r.peer: r for r in await fr.service.local_app[HEALTH].run_once()}
        assert rows["DE"].up
        assert rows["DE"].key_ok
        assert rows["DE"].tls_ok
        assert rows["DE"].latency_ms is not None
        assert rows["DE"].latency_ms > 0
        assert rows["DE"].key_expiring
        assert rows["DE"].key_expires_at == soon.timestamp()
        assert not rows["GB"].up
        assert rows["GB"].key_ok is False
        assert "do not pin" in (rows["GB"].error or "")
        assert not rows["NL"].up
        assert rows["NL"].error
        config = fr.node.settings.base_dir / "connector.yaml"
        # `peers status` is another process: it reads what the node wrote.
        done = cli("peers", "status", "--json", config=config)
        status = {p["peer"]: p for p in json.loads(done.stdout)["peers"]}
        assert {p: s["up"] for p, s in status.items()} == {"DE": True, "GB": False, "NL": False}
        table = cli("peers", "status", config=config, check=False)
        assert table.returncode == 1  # some peer is down
        assert "MISMATCH" in table.stdout
        assert "soon" in table.stdout
        # A peer found up again closes its breaker at once.
        breakers = fr.service.local_app[HEALTH].breakers
        for _ in range(3):
            breakers.failure("DE", time.monotonic())
        await fr.service.local_app[HEALTH].run_once()
        assert breakers.state("DE", time.monotonic()) == "closed"


async def _closing_server() -> tuple[asyncio.Server, int]:
    """A TCP server on loopback that accepts and hangs up at once."""

    def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


async def test_peers_down_are_said_in_words(tmp_path: Path) -> None:
    """What failed reads as words an operator can act on — never an object's repr such as
    `ssl:<aiohttp.client_reqrep.Fingerprint object at 0x…>`."""
    async with network(tmp_path, ["FR", "DE"]) as net:
        de = net["FR"].node.live.trust.peers["DE"]
        closing, closing_port = await _closing_server()
        port = free_port()  # nothing listens there
        wrong_pin = "AA:" * 31 + "AA"
        cases = {
            "refused": Peer(
                id="DE",
                url=f"https://127.0.0.1:{port}",
                tls_fingerprint=de.tls_fingerprint,
                keys=de.keys,
            ),
            "pin": Peer(id="DE", url=de.url, tls_fingerprint=wrong_pin, keys=de.keys),
            "closed": Peer(
                id="DE",
                url=f"https://127.0.0.1:{closing_port}",
                tls_fingerprint=de.tls_fingerprint,
                keys=de.keys,
            ),
        }
        found = {}
        async with aiohttp.ClientSession() as session:
            for name, peer in cases.items():
                row = await check_peer(
                    session,
                    peer,
                    now=time.time(),
                    timeout=5.0,
                    warn_days=30,
                    monotonic=time.monotonic,
                )
                assert not row.up
                found[name] = row.error or ""
        closing.close()
        await closing.wait_closed()
    assert found["refused"].startswith("connection refused")
    assert found["pin"] == "the TLS certificate does not match the pin"
    assert found["closed"] in {"the peer closed the connection", "the TLS handshake failed"}
    for text in found.values():
        assert "object at 0x" not in text
        assert "Error" not in text  # no exception class names


async def test_a_peer_found_down_is_shown_up_by_the_next_verified_answer(tmp_path: Path) -> None:
    """`peers status` agrees with reality: a peer down at the last check (here: pinned at
    an address where nothing listened yet) is shown up as soon as a real exchange with it
    is answered, not a health interval later; `--probe` checks every peer now."""
    from connector.vocabulary import Category, Purpose

    async with network(tmp_path, ["FR", "DE"]) as net:
        fr = net["FR"]
        config = fr.node.settings.base_dir / "connector.yaml"
        de = fr.node.live.trust.peers["DE"]
        nowhere = Peer(
            id="DE",
            url=f"https://127.0.0.1:{free_port()}",
            tls_fingerprint=de.tls_fingerprint,
            keys=de.keys,
        )
        save_trust_store(fr.node.live.peers_file, fr.node.live.trust.with_peer(nowhere))
        fr.node.live.reload()
        (row,) = await fr.service.local_app[HEALTH].run_once()
        assert not row.up
        probed = cli("peers", "status", "--probe", "--json", config=config)
        (seen,) = json.loads(probed.stdout)["peers"]
        assert json.loads(probed.stdout)["probed"] is True
        assert (seen["up"], seen["error"]) == (
            False,
            "connection refused (nothing listens at that address and port)",
        )

        save_trust_store(fr.node.live.peers_file, fr.node.live.trust.with_peer(de))
        fr.node.live.reload()  # DE is back where it listens; no health check has run since
        request = ncb_request(
            (Category.TRAVEL_DOCUMENTS, {"number": "X0000000", "country": "DE"}),
            purpose=Purpose.BORDER_CONTROL,
        )
        await fr.service.local_app[FANOUT].ask(
            request,
            "DE",
            policy=fr.node.live.current_policy(),
            trust=fr.node.live.current_trust(),
        )
        shown = cli("peers", "status", "--json", config=config)
        (after,) = json.loads(shown.stdout)["peers"]
        assert after["up"] is True
        assert after["error"] is None
        assert after["tls_ok"] is True
        assert after["last_up_at"] is not None
        # In a thread: DE answers the probe from this test's event loop.
        probed = await asyncio.to_thread(cli, "peers", "status", "--probe", config=config)
        assert "peer health probed" in probed.stdout
        assert "up" in probed.stdout
