"""Two real nodes where DE's policy makes FR's checks wait for an operator: the agency's
view of them through FR's local API, and DE's approvals (tests/approvals)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import aiohttp

from connector.approvals.awaiting import Awaited, awaited_releases
from connector.approvals.service import APPROVALS, Approvals
from connector.demo import DemoNode, network
from connector.enquiries.log import EnquiryLog
from connector.notify.outbox import Outbox
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
    approval_expires: {expires}
    channels: [duty-desk]
outbound:
  - agency: "*"
    categories: [travel_documents]
    to: "*"
"""
OTHERS_POLICY = """\
outbound:
  - agency: "*"
    categories: [travel_documents]
    to: "*"
"""
HELD = {"number": "DE1234567", "country": "DE"}  # DE-TD-26-0117 in DE's sample records
REF = "DE:travel_documents:DE-TD-26-0117"
MISSING = {"number": "DE9999999", "country": "DE"}
OPERATOR = Actor(kind="console", name="alice")


def configure(expires: str, approvals: str = "") -> Callable[[str, Path], None]:
    """`approvals`: more lines of connector.yaml's `approvals` section, indented."""

    def configure_node(node_id: str, directory: Path) -> None:
        policy = DE_POLICY.format(expires=expires) if node_id == "DE" else OTHERS_POLICY
        (directory / "policies" / "10-demo.yaml").write_text(policy)
        config = directory / "connector.yaml"
        config.write_text(
            config.read_text()
            + "notifications:\n  channels:\n    duty-desk:\n      type: log\n"
            + "approvals:\n  check_interval_s: 1\n  poll_interval_s: 1\n"
            # The border police are told through the duty desk's channel when a release
            # their check waited for has come.
            + "  agency_channels:\n    border-police: duty-desk\n"
            + approvals
        )

    return configure_node


class Net:
    def __init__(
        self, root: Path, nodes: dict[str, DemoNode], session: aiohttp.ClientSession
    ) -> None:
        self.root = root
        self.nodes = nodes
        self.session = session
        fr = nodes["FR"].node.settings
        self.token = add_agency(
            fr.state_path(fr.federation.agencies_file), "border-police", AgencyKind.BORDER, now=0
        )[1]

    def config(self, node: str) -> Path:
        return self.root / node / "connector.yaml"

    def local(self, node: str) -> str:
        return f"http://127.0.0.1:{self.nodes[node].service.local_port}"

    @property
    def approvals(self) -> Approvals:
        return self.nodes["DE"].service.peer_app[APPROVALS]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def check(self, criteria: dict[str, str]) -> dict[str, Any]:
        """The border police's check at DE through FR's local API."""
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

    async def released(self, check_id: str) -> tuple[int, dict[str, Any]]:
        async with self.session.get(
            self.local("FR") + f"/local/v1/checks/{check_id}", headers=self.auth
        ) as resp:
            return resp.status, await resp.json()

    async def until_complete(self, check_id: str, seconds: float = 15) -> dict[str, Any]:
        """The check once every release is in; FR's releases job asks every second."""
        for _ in range(int(seconds * 10)):
            status, doc = await self.released(check_id)
            assert status == 200, doc
            if doc["complete"]:
                return doc
            await asyncio.sleep(0.1)
        raise AssertionError(f"check {check_id} never completed: {doc}")

    def rows(self, node: str) -> list[Any]:
        with closing(EnquiryLog.open(self.nodes[node].node.settings.enquiries_url)) as log:
            return [r.entry for r in log.list()]

    def approvals_awaited(self, node: str, state: str) -> list[Awaited]:
        """The releases `node` waits for, or had, from its peers."""
        with closing(EnquiryLog.open(self.nodes[node].node.settings.enquiries_url)) as log:
            return awaited_releases(log, state=state, limit=100)

    def outbox(self, node: str) -> list[Any]:
        with closing(Outbox.open(self.nodes[node].node.settings.enquiries_url)) as box:
            return box.list()


def two_nodes(expires: str, approvals: str = "") -> Callable[[Path], AsyncIterator[Net]]:
    """A fixture's body: FR, DE and GB as `configure(expires, approvals)` makes them."""

    async def fixture(tmp_path: Path) -> AsyncIterator[Net]:
        async with (
            network(tmp_path, ["FR", "DE", "GB"], configure(expires, approvals)) as nodes,
            aiohttp.ClientSession() as session,
        ):
            yield Net(tmp_path, nodes, session)

    return fixture
