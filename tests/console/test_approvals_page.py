"""The approvals queue in the console, across two real nodes: an approver approves or denies
a held release with a reason and FR's agency receives the outcome; a viewer sees the queue
but can neither find the buttons nor send their POST."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from support.console import (
    HELD,
    HELD_REF,
    Agency,
    add_accounts,
    browser,
    console_url,
    csrf,
    login,
    with_approvals,
)
from support.processes import audit_entries

from connector.approvals.service import APPROVALS, Approvals
from connector.demo import DemoNode, network

Net = dict[str, DemoNode]


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    async with network(tmp_path, ["FR", "DE"], configure=with_approvals) as n:
        add_accounts(n["DE"])
        yield n


def _approvals(net: Net) -> Approvals:
    return net["DE"].service.peer_app[APPROVALS]


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_an_approver_releases_and_denies_and_the_agency_receives_it(net: Net) -> None:
    base = console_url(net["DE"])
    config = net["DE"].node.settings.base_dir / "connector.yaml"
    async with aiohttp.ClientSession() as http:
        agency = Agency(net["FR"], http)
        first = await agency.check(HELD)
        (peer,) = first["checks"][0]["peers"]
        approval_id = peer["approval"]["id"]
        assert peer["hits"][0]["record"] == {}  # nothing of the record before a person says

        async with browser() as vic:
            await login(vic, base, "vic")
            overview = _text(await (await vic.get(f"{base}/")).text())
            assert "Pending approvals 1" in overview
            page = await (await vic.get(f"{base}/approvals")).text()
            shown = _text(page)
            assert f"FR asks about {HELD_REF}" in shown
            assert "DE1234567" in shown  # what was asked…
            assert "Jean Exemple" in shown  # …beside the record that would leave
            assert "border/4711" in shown
            assert "Approve the release" not in page
            refused = await vic.post(
                f"{base}/approvals/{approval_id}",
                data={"csrf": await csrf(vic, base), "verdict": "approve", "reason": "ok"},
            )
            assert refused.status == 403
            assert _approvals(net).get(approval_id).state == "pending"

        async with browser() as bob:
            await login(bob, base, "bob")
            token = await csrf(bob, base, "/approvals")
            assert "Approve the release" in await (await bob.get(f"{base}/approvals")).text()
            no_reason = await bob.post(
                f"{base}/approvals/{approval_id}",
                data={"csrf": token, "verdict": "approve", "reason": "  "},
            )
            assert no_reason.status == 422
            assert "needs a reason" in await no_reason.text()
            approved = await bob.post(
                f"{base}/approvals/{approval_id}",
                data={"csrf": token, "verdict": "approve", "reason": "the name matches"},
            )
            assert approved.status == 200
            assert str(approved.url).endswith("/approvals")
            decided = _text(await approved.text())
            assert "approved console:bob" in decided
            again = await bob.post(
                f"{base}/approvals/{approval_id}",
                data={"csrf": token, "verdict": "deny", "reason": "second thoughts"},
            )
            assert again.status == 409

            released = await agency.released(first["id"])
            (release,) = released["releases"]
            assert release["state"] == "released"
            assert release["results"][0]["hits"][0]["record"]["holder_name"] == "Jean Exemple"

            second = await agency.check(HELD)
            second_id = second["checks"][0]["peers"][0]["approval"]["id"]
            await bob.post(
                f"{base}/approvals/{second_id}",
                data={"csrf": token, "verdict": "deny", "reason": "not our traveller"},
            )
            assert _approvals(net).get(second_id).state == "denied"
            refused_release = await agency.released(second["id"])
            (result,) = refused_release["releases"][0]["results"]
            assert result["status"] == "denied"
            assert "Jean Exemple" not in str(refused_release)

        async with browser() as vic:
            await login(vic, base, "vic")
            # The decisions are rows of the log, shown by their verdict, and not checks.
            listed = await (await vic.get(f"{base}/enquiries")).text()
            assert '<span class="status approved">approved</span>' in listed
            assert '<span class="status denied">denied</span>' in listed
            overview = _text(await (await vic.get(f"{base}/")).text())
            assert "Pending approvals 0" in overview

    decisions = [
        (e["action"], e["target"], e["actor"], e["details"]["reason"])
        for e in audit_entries(config)
        if e["action"].startswith("approval.")
    ]
    bob_actor = {"kind": "console", "name": "bob"}
    assert decisions == [
        ("approval.approved", approval_id, bob_actor, "the name matches"),
        ("approval.denied", second_id, bob_actor, "not our traveller"),
    ]
