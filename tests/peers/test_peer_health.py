"""Peer health: the node's scheduled check of every peer, and `peers status` reading it."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.processes import cli

from connector.crypto.jws import SigningKey
from connector.demo import network
from connector.node.local_app import HEALTH
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
