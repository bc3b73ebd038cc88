"""LAN discovery over mDNS on loopback: a known peer's address is followed, others only listed."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import orjson
from support.processes import cli

from connector.demo import network
from connector.node.local_app import DISCOVERED
from connector.outbound.agencies import add_agency
from connector.peers.discovery import standing
from connector.peers.trust import Peer, save_trust_store
from connector.vocabulary import AgencyKind

MDNS = """\
discovery:
  mdns: true
  interfaces: ["127.0.0.1"]
"""


def _mdns(node_id: str, directory: Path) -> None:
    config = directory / "connector.yaml"
    config.write_text(config.read_text() + MDNS)


async def test_discovery_updates_a_known_peer_and_lists_an_unknown_one(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    async with network(tmp_path, ["FR", "DE", "CH"], _mdns) as net:
        fr = net["FR"]
        trust = fr.node.live.trust
        de = trust.peers["DE"]
        # FR knows DE at an address it no longer has, and does not know CH at all.
        stale = Peer(
            id="DE", url="https://127.0.0.1:9", keys=de.keys, tls_fingerprint=de.tls_fingerprint
        )
        save_trust_store(fr.node.live.peers_file, trust.with_peer(stale).without("CH"))
        fr.node.live.reload()
        discovered = fr.service.local_app[DISCOVERED]
        for _ in range(150):  # up to 15 s; mDNS announces within about a second
            if {"DE", "CH"} <= set(discovered.seen):
                break
            await asyncio.sleep(0.1)
        assert {"DE", "CH"} <= set(discovered.seen)
        now_trust = fr.node.live.trust
        assert standing(now_trust, "DE", discovered.seen["DE"].kid) == "known"
        assert standing(now_trust, "CH", discovered.seen["CH"].kid) == "unknown"
        assert discovered.seen["DE"].port == net["DE"].service.peer_port
        # peers.yaml is untouched; the fan-out follows the discovered address.
        assert fr.node.live.trust.peers["DE"].url == "https://127.0.0.1:9"
        s = fr.node.settings
        _, token = add_agency(
            s.state_path(s.federation.agencies_file), "ncb", AgencyKind.NCB, now=time.time()
        )
        body = {
            "purpose": "border_control",
            "sub": "1",
            "peers": ["DE"],
            "checks": [
                {
                    "id": "d",
                    "category": "travel_documents",
                    "criteria": {"number": "DE1234567", "country": "DE"},
                }
            ],
        }
        async with session.post(
            f"http://127.0.0.1:{fr.service.local_port}/local/v1/checks",
            data=orjson.dumps(body),
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            doc = await resp.json()
        assert doc["checks"][0]["peers"][0]["status"] == "hit"
        # CH is listed for an admin, and trusted by nothing: FR cannot ask it.
        listed = json.loads(
            cli("peers", "discovered", "--json", config=s.base_dir / "connector.yaml").stdout
        )
        by_node = {d["node"]: d["standing"] for d in listed}
        assert by_node == {"DE": "known", "CH": "unknown"}
        assert "CH" not in fr.node.live.trust.peers
