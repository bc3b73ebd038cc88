"""Releases that wait for a person, across two real nodes: pending, approved, denied, expired."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connector.approvals.service import APPROVALS, Approvals
from connector.demo import DemoNode, network
from connector.outbound.agencies import add_agency
from connector.trail.entry import Actor
from connector.vocabulary import AgencyKind

DE_POLICY = """\
inbound:
  - name: documents once approved
    from: [FR]
    categories: [travel_documents]
    answer: full
    redact: [remarks]
    release: approval
    approval_expires: 1h
    channels: [duty-desk]
outbound:
  - agency: "*"
    categories: [travel_documents]
    to: "*"
"""
FR_POLICY = """\
outbound:
  - agency: "*"
    categories: [travel_documents]
    to: "*"
"""
HELD = {"number": "DE1234567", "country": "DE"}  # DE-TD-26-0117 in DE's sample records
REF = "DE:travel_documents:DE-TD-26-0117"
MISSING = {"number": "DE9999999", "country": "DE"}


def configure(node_id: str, directory: Path) -> None:
    (directory / "policies" / "10-demo.yaml").write_text(
        DE_POLICY if node_id == "DE" else FR_POLICY
    )
    config = directory / "connector.yaml"
    config.write_text(
        config.read_text()
        + "notifications:\n  channels:\n    duty-desk:\n      type: log\n"
        + "approvals:\n  check_interval_s: 1\n  poll_interval_s: 1\n"
    )


class Net:
    def __init__(self, nodes: dict[str, DemoNode], session: aiohttp.ClientSession) -> None:
        self.nodes = nodes
        self.session = session
        fr = nodes["FR"].node.settings
        self.token = add_agency(
            fr.state_path(fr.federation.agencies_file), "border-police", AgencyKind.BORDER, now=0
        )[1]

    def local(self, node: str) -> str:
        return f"http://127.0.0.1:{self.nodes[node].service.local_port}"

    @property
    def approvals(self) -> Approvals:
        return self.nodes["DE"].service.peer_app[APPROVALS]

    async def check(self, criteria: dict[str, str]) -> dict[str, Any]:
        body = {
            "purpose": "border_control",
            "sub": "4711",
            "checks": [{"id": "doc", "category": "travel_documents", "criteria": criteria}],
            "peers": ["DE"],
            "deadline_ms": 5000,
        }
        async with self.session.post(
            self.local("FR") + "/local/v1/checks", json=body, headers=self.auth
        ) as resp:
            assert resp.status == 200, await resp.text()
            doc: dict[str, Any] = await resp.json()
            return doc

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def released(self, check_id: str) -> tuple[int, dict[str, Any]]:
        async with self.session.get(
            self.local("FR") + f"/local/v1/checks/{check_id}", headers=self.auth
        ) as resp:
            return resp.status, await resp.json()

    async def until_complete(self, check_id: str) -> dict[str, Any]:
        for _ in range(100):  # the releases job runs every second
            status, doc = await self.released(check_id)
            assert status == 200, doc
            if doc["complete"]:
                return doc
            await asyncio.sleep(0.1)
        raise AssertionError(f"check {check_id} never completed: {doc}")


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    async with network(tmp_path, ["FR", "DE"], configure) as nodes, aiohttp.ClientSession() as s:
        yield Net(nodes, s)


OPERATOR = Actor(kind="console", name="alice")


async def test_a_hit_waits_for_an_operator_then_reaches_the_agency(net: Net) -> None:
    doc = await net.check(HELD)
    (peer,) = doc["checks"][0]["peers"]
    # At once: a signed answer that says hit and gives the ref, nothing of the record.
    assert peer["status"] == "hit"
    assert peer["level"] == "hit"
    (hit,) = peer["hits"]
    assert (hit["ref"], hit["score"], hit["record"]) == (REF, 1.0, {})
    approval = peer["approval"]
    assert approval["status"] == "pending"
    assert approval["level"] == "full"
    assert approval["expires"] == pytest.approx(time.time() + 3600, abs=5)
    status, pending = await net.released(doc["id"])
    assert status == 200
    assert not pending["complete"]
    assert pending["releases"][0]["state"] == "pending"

    # DE's operator sees what was asked, by whom, which record, which rule.
    (waiting,) = net.approvals.list()
    assert waiting.id == approval["id"]
    assert waiting.peer == "FR"
    assert waiting.sub == "border-police/4711"
    assert waiting.rules == ("documents once approved",)
    (held,) = waiting.held
    assert held.criteria == HELD
    assert held.hits[0]["record"]["holder_name"] == "Jean Exemple"
    assert "remarks" not in held.hits[0]["record"]

    decided = await net.approvals.approve(waiting.id, operator=OPERATOR, reason="match confirmed")
    assert decided.state == "approved"
    done = await net.until_complete(doc["id"])
    (release,) = done["releases"]
    assert release["state"] == "released"
    (result,) = release["results"]
    assert result["status"] == "hit"
    assert result["level"] == "full"
    assert result["hits"][0]["record"]["holder_name"] == "Jean Exemple"
    assert "approval" not in result

    # Logged on both sides: DE's decision and the release it answered, FR's fetch.
    fr_log, de_log = (n.service.peer_app for n in (net.nodes["FR"], net.nodes["DE"]))
    assert fr_log is not None
    assert de_log is not None


async def test_no_hit_is_answered_at_once(net: Net) -> None:
    doc = await net.check(MISSING)
    (peer,) = doc["checks"][0]["peers"]
    assert peer["status"] == "no_hit"
    assert "approval" not in peer
    assert net.approvals.list() == []
    status, _ = await net.released(doc["id"])
    assert status == 404
