"""The maintenance switch: a running node stops answering peers (503, Retry-After) and says
so on /readyz, loses nothing, and answers again when it is switched off."""

from __future__ import annotations

import asyncio
import json
import urllib.error
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from support.processes import cli, readyz

from connector.demo import DemoNode, network
from connector.errors import PeerRejected
from connector.peers.client import PeerClient, peer_session
from connector.protocol import Check, make_query
from connector.vocabulary import AgencyKind, Category, Purpose


def _config(n: DemoNode) -> Path:
    return n.node.settings.base_dir / "connector.yaml"


async def _readyz(n: DemoNode, *, details: bool) -> tuple[int, dict[str, object]]:
    def get() -> tuple[int, dict[str, object]]:
        try:
            return 200, readyz(n.service.local_port, _config(n) if details else None)
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    return await asyncio.to_thread(get)


async def test_maintenance_turns_peers_away_and_loses_nothing(tmp_path: Path) -> None:
    async with network(tmp_path, ["FR", "DE"]) as net:
        fr, de = net["FR"], net["DE"]
        assert cli("maintenance", "status", config=_config(de)).stdout.strip() == (
            "maintenance is off"
        )
        on = cli("maintenance", "on", "--reason", "records re-import", config=_config(de))
        assert "peers get 503, Retry-After 60 s, within 5 s" in on.stdout
        with capture_logs() as events:
            de.node.live.reload_if_changed()  # the policy watch's round
        (started,) = [e for e in events if e["event"] == "maintenance_started"]
        assert started["reason"] == "records re-import"
        assert started["log_level"] == "warning"

        query = make_query(
            iss="FR",
            aud="DE",
            sub="ncb/1",
            agency_kind=AgencyKind.NCB,
            purpose=Purpose.BORDER_CONTROL,
            checks=(
                Check(
                    id="1",
                    category=Category.TRAVEL_DOCUMENTS,
                    criteria={"number": "DE1234567", "country": "DE"},
                ),
            ),
        )
        peer = fr.node.live.trust.peers["DE"]
        rows = de.service.enquiry_log.head()
        async with peer_session() as session:
            client = PeerClient(
                session=session, signer=fr.node.signer, node="FR", clock=fr.node.clock
            )
            token = client.sign(query)
            with pytest.raises(PeerRejected) as refused:
                await client.send(peer, query, token)
            problem = refused.value.extra["peer_problem"]
            assert refused.value.extra["peer_status"] == 503
            assert (problem["code"], problem["retry_after"]) == ("maintenance", 60.0)
            assert "records re-import" not in json.dumps(problem)  # the NCB's business
            assert de.service.enquiry_log.head() == rows  # nothing read, nothing logged

            status, body = await _readyz(de, details=False)
            assert (status, body) == (503, {"status": "maintenance"})
            status, body = await _readyz(de, details=True)
            assert status == 503
            assert "records re-import" in str(body["maintenance"])
            shown = cli("maintenance", "status", config=_config(de), check=False)
            assert shown.returncode == 1
            assert "maintenance is on since" in shown.stdout
            assert "records re-import" in shown.stdout

            off = cli("maintenance", "off", config=_config(de))
            assert "the node answers peers again within 5 s" in off.stdout
            de.node.live.reload_if_changed()
            # The same signed query, refused before: its jti was not consumed.
            answered = await client.send(peer, query, token)
        assert answered.answer.results[0].status == "hit"
        assert de.service.enquiry_log.head()[0] == rows[0] + 1
        status, body = await _readyz(de, details=False)
        assert (status, body) == (200, {"status": "ready"})
        assert cli("maintenance", "off", config=_config(de)).stdout.strip() == (
            "maintenance was off"
        )
