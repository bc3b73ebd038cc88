"""The console's pages on a real node: what each shows after real exchanges, the live feed's
events, the filters, the languages, and what admins change, recorded under their account."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from support.console import add_accounts, browser, console_url, csrf, login, with_console
from support.entries import sealed_notice_log
from support.network import ask, load
from support.network import configure as demo_configure
from support.processes import audit_entries

from connector.demo import DemoNode, network
from connector.node.maintenance import MAINTENANCE_FILE, read_maintenance
from connector.notify.outbox import Outbox
from connector.outbound.agencies import add_agency, load_agencies, token_hash
from connector.storage.urls import sqlite_file
from connector.vocabulary import AgencyKind, Category

Net = dict[str, DemoNode]
IVAN = {"last_name": "Shcherbakov", "first_name": "Ivan", "birth_date": "1980-02"}


def _configure(node_id: str, directory: Path) -> None:
    demo_configure(node_id, directory)
    if node_id == "DE":
        with_console(directory)


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    async with network(tmp_path, ["FR", "DE"], configure=_configure) as n:
        load(n)
        add_accounts(n["DE"])
        yield n


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_every_page_shows_what_the_node_holds(net: Net) -> None:
    base = console_url(net["DE"])
    await ask(
        net,
        "FR",
        [(Category.WANTED_PERSONS, IVAN), (Category.VEHICLES, {"vin": "WVWZZZ1JZXW000001"})],
    )
    async with browser() as vic:
        await login(vic, base, "vic")
        overview = _text(await (await vic.get(f"{base}/")).text())
        assert "Checks 2" in overview
        assert "Hits 1" in overview
        assert "FR in wanted_persons 1 0.02" in overview  # peer, direction, category, rate
        enquiries = await (await vic.get(f"{base}/enquiries")).text()
        enquiry = re.search(r'href="/enquiries/([0-9A-Z]{26})"', enquiries)
        assert enquiry is not None
        shown = _text(await (await vic.get(f"{base}/enquiries/{enquiry.group(1)}")).text())
        assert "everything for FR" in shown  # the deciding rule
        assert net["DE"].node.live.policy.digest in shown
        assert '"typ": "ncb-query+jwt"' in shown or "ncb-query" in shown
        peers = _text(await (await vic.get(f"{base}/peers")).text())
        assert "FR" in peers
        policy = _text(await (await vic.get(f"{base}/policy")).text())
        assert net["DE"].node.live.policy.digest in policy
        assert "No problems" in policy
        explained = _text(
            await (
                await vic.get(
                    f"{base}/policy",
                    params={
                        "from": "FR",
                        "agency_kind": "police",
                        "purpose": "criminal_investigation",
                        "category": "wanted_persons",
                    },
                )
            ).text()
        )
        assert "Deciding rule everything for FR" in explained
        assert "Level full" in explained
        for path in ("/notifications", "/agencies", "/approvals"):
            assert (await vic.get(f"{base}{path}")).status == 200, path
        verified = _text(
            await (
                await vic.post(f"{base}/enquiries/verify", data={"csrf": await csrf(vic, base)})
            ).text()
        )
        assert "The chain holds: 1 rows" in verified


async def test_enquiries_filter_by_category_outcome_direction_and_rule(net: Net) -> None:
    base = console_url(net["DE"])
    await ask(net, "FR", [(Category.WANTED_PERSONS, IVAN)])
    await ask(net, "FR", [(Category.VEHICLES, {"vin": "WVWZZZ1JZXW000001"})])
    async with browser() as vic:
        await login(vic, base, "vic")

        async def rows(**query: str) -> int:
            html = await (await vic.get(f"{base}/enquiries", params=query)).text()
            return len(re.findall(r'<tr><td><a href="/enquiries/', html))

        assert await rows() == 2
        assert await rows(category="wanted_persons") == 1
        assert await rows(outcome="hit") == 1
        assert await rows(outcome="no_hit", category="vehicles") == 1
        assert await rows(direction="out") == 0
        assert await rows(direction="in", peer="fr", period="1h") == 2
        assert await rows(rule="no such rule") == 0
        assert await rows(rule="everything for FR") == 2


async def test_the_feed_sends_each_enquiry_as_it_is_logged(net: Net) -> None:
    base = console_url(net["DE"])
    async with browser() as vic:
        await login(vic, base, "vic")
        stream = await vic.get(f"{base}/events")
        assert stream.headers["Content-Type"] == "text/event-stream"
        # The first line comes once the feed knows the log's head: what follows is news.
        assert (await stream.content.readline()).startswith(b"retry:")
        await ask(net, "FR", [(Category.WANTED_PERSONS, IVAN)])
        event = None
        for _ in range(20):  # the event, after at most a few blank and keep-alive lines
            line = await asyncio.wait_for(stream.content.readline(), 10)
            if line == b"event: enquiry\n":
                data = await stream.content.readline()
                event = orjson.loads(data.removeprefix(b"data: "))
                break
        stream.close()
    assert event is not None
    assert event["peer"] == "FR"
    assert event["direction"] == "in"
    assert event["categories"] == ["wanted_persons"]
    assert event["hits"] == 1


async def test_languages_english_and_french(net: Net) -> None:
    base = console_url(net["DE"])
    async with browser() as vic:
        page = await vic.get(f"{base}/login", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
        assert 'lang="fr"' in await page.text()
        assert "Se connecter" in await page.text()
        await login(vic, base, "vic")
        assert "Vue d’ensemble" not in await (await vic.get(f"{base}/")).text()
        await vic.get(f"{base}/language", params={"lang": "fr", "next": "/peers"})
        html = await (await vic.get(f"{base}/")).text()
        assert "Vue d’ensemble" in html
        assert "Demandes à leur arrivée" in html
        await vic.get(f"{base}/language", params={"lang": "en", "next": "/"})
        assert "Enquiries as they arrive" in await (await vic.get(f"{base}/")).text()


async def test_admin_actions_take_effect_and_are_recorded_by_account(net: Net) -> None:
    de = net["DE"]
    s = de.node.settings
    base = console_url(de)
    config = s.base_dir / "connector.yaml"
    agencies = s.state_path(s.federation.agencies_file)
    add_agency(agencies, "border-1", AgencyKind.BORDER, now=0.0)
    db = sqlite_file(s.enquiries_url)
    assert db is not None
    _, notice = sealed_notice_log(db)
    box = Outbox.open(s.enquiries_url)
    try:
        box.failed(
            notice.id, now=1.0, attempts=5, error="<b>550</b> mailbox unavailable", retry_at=None
        )
    finally:
        box.close()
    async with browser() as ada:
        await login(ada, base, "ada")
        html = await (await ada.get(f"{base}/notifications?state=dead")).text()
        assert "&lt;b&gt;550&lt;/b&gt; mailbox unavailable" in html
        token = await csrf(ada, base)
        resp = await ada.post(f"{base}/notifications/retry", data={"csrf": token})
        assert resp.status == 200
        resp = await ada.post(f"{base}/agencies/border-1/rotate", data={"csrf": token})
        new_token = re.search(r"ncb\.border-1\.[A-Za-z0-9_-]{43}", await resp.text())
        assert new_token is not None
        assert load_agencies(agencies)["border-1"].token_sha256 == token_hash(new_token.group(0))
        await ada.post(f"{base}/agencies/border-1/disable", data={"csrf": token})
        assert not load_agencies(agencies)["border-1"].enabled
        await ada.post(
            f"{base}/maintenance", data={"csrf": token, "switch": "on", "reason": "disk swap"}
        )
        switched = read_maintenance(s.state_path(MAINTENANCE_FILE))
        assert switched is not None
        assert switched.login == "console:ada"
        assert switched.reason == "disk swap"
        await ada.post(f"{base}/maintenance", data={"csrf": token, "switch": "off"})
        assert read_maintenance(s.state_path(MAINTENANCE_FILE)) is None
        resp = await ada.post(f"{base}/logout", data={"csrf": token})
        assert str(resp.url).endswith("/login")
        assert (await ada.get(f"{base}/", allow_redirects=False)).status == 303
    entries = [(e["action"], e["target"], e["actor"]) for e in audit_entries(config)]
    ada_actor = {"kind": "console", "name": "ada"}
    assert entries == [
        ("console.login", "ada", ada_actor),
        ("notices.retried", "dead", ada_actor),
        ("agency.rotated", "border-1", ada_actor),
        ("agency.disabled", "border-1", ada_actor),
        ("maintenance.on", "DE", ada_actor),
        ("maintenance.off", "DE", ada_actor),
        ("console.logout", "ada", ada_actor),
    ]


async def test_an_admin_pins_a_peer_again_after_confirming_what_it_presents(net: Net) -> None:
    de = net["DE"]
    s = de.node.settings
    base = console_url(de)
    config = s.base_dir / "connector.yaml"
    async with browser() as vic:
        await login(vic, base, "vic")
        assert "/peers/FR/repin" not in await (await vic.get(f"{base}/peers")).text()
    async with browser() as ada:
        await login(ada, base, "ada")
        token = await csrf(ada, base, "/peers")
        shown = await ada.post(f"{base}/peers/FR/repin", data={"csrf": token})
        html = await shown.text()
        assert shown.status == 200
        assert f"key thumbprint   {net['FR'].node.signer.kid} (pinned already)" in html
        digest = re.search(r'name="confirm" value="([0-9a-f]{64})"', html)
        assert digest is not None
        # A confirmation of another summary (the peer changed meanwhile) pins nothing.
        stale = await ada.post(f"{base}/peers/FR/repin", data={"csrf": token, "confirm": "0" * 64})
        assert "nothing was pinned" in await stale.text()
        assert "peer.updated" not in [e["action"] for e in audit_entries(config)]
        pinned = await ada.post(
            f"{base}/peers/FR/repin",
            data={"csrf": token, "confirm": digest.group(1), "compared": "on"},
        )
        assert pinned.status == 200
        assert str(pinned.url).endswith("/peers")
    (entry,) = [e for e in audit_entries(config) if e["action"] == "peer.updated"]
    assert entry["actor"] == {"kind": "console", "name": "ada"}
    assert entry["details"]["keys"] == [net["FR"].node.signer.kid]
    assert entry["details"]["tls_fingerprint"] == net["FR"].node.tls_fingerprint
