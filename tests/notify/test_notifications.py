"""Notices reach the NCB: rules and watches, a flaky receiver, e-mail, and nothing lost."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from support.webhooks import Receiver

from connector.demo import DemoNode, network
from connector.node.peer_app import DISPATCHER
from connector.notify.outbox import Outbox
from connector.outbound.request import Request
from connector.protocol import Check
from connector.vocabulary import AgencyKind, Category, Purpose

POLICY = """\
groups:
  schengen: [FR, DE]
inbound:
  - name: documents for Schengen
    from: [group:schengen]
    categories: [travel_documents]
    answer: full
    notify: {notify}
    channels: [duty]
watch:
  - name: the stolen passport
    record: travel_documents/DE-TD-26-0117
    notify: [duty]
outbound:
  - agency: ncb
    categories: [travel_documents]
    to: "*"
"""


def configure_de(channels: str, notify: str = "never") -> Callable[[str, Path], None]:
    def configure(node_id: str, directory: Path) -> None:
        if node_id != "DE":
            return
        config = directory / "connector.yaml"
        config.write_text(
            config.read_text() + "notifications:\n"
            "  retry_initial_s: 0.05\n  retry_max_s: 0.2\n"
            "  poll_interval_s: 0.1\n  channels:\n" + channels
        )
        (directory / "policies" / "10-demo.yaml").write_text(POLICY.format(notify=notify))

    return configure


def request(number: str, purpose: Purpose = Purpose.BORDER_CONTROL) -> Request:
    return Request(
        agency="ncb",
        agency_kind=AgencyKind.NCB,
        sub="ncb/1",
        purpose=purpose,
        case="CASE-9",
        checks=(
            Check(
                id="1",
                category=Category.TRAVEL_DOCUMENTS,
                criteria={"number": number, "country": "DE"},
            ),
        ),
    )


async def ask(net: dict[str, DemoNode], src: str, number: str) -> str:
    async with net[src].node.desk() as desk:
        ex = await desk.ask(request(number), "DE")
    return ex.answer.results[0].status


async def wait_for(predicate: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - the state lives in other processes and files
            await asyncio.sleep(0.02)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(fail_first=3)
    await r.start()
    yield r
    await r.stop()


def webhook(port: int) -> str:
    return (
        f"    duty:\n      type: webhook\n      url: http://127.0.0.1:{port}/hook\n"
        "      insecure: true\n      timeout: 2\n"
    )


def outbox_rows(node: DemoNode) -> list[Any]:
    box = Outbox.open(node.node.settings.enquiries_url)
    try:
        return box.list()
    finally:
        box.close()


async def test_a_flaky_receiver_gets_the_notice_after_three_failures(
    tmp_path: Path, receiver: Receiver
) -> None:
    async with network(
        tmp_path, ["FR", "DE"], configure_de(webhook(receiver.port), notify="always")
    ) as net:
        assert await ask(net, "FR", "DE9999999") == "no_hit"
        await wait_for(lambda: len(receiver.posts) == 4)
        await wait_for(lambda: outbox_rows(net["DE"])[0].state == "delivered")
        (row,) = outbox_rows(net["DE"])
        assert row.attempts == 4
        assert row.last_error is None
        claims = receiver.verified(net["DE"].node.signer.public.jwk())
        assert len({c["jti"] for c in claims}) == 1  # one notice, retried: same idempotency key
        notice = claims[-1]["notice"]
        assert notice["asked_by"] == {
            "node": "FR",
            "agency_kind": "ncb",
            "sub": "ncb/1",
            "purpose": "border_control",
            "case": "CASE-9",
        }
        assert notice["checks"][0]["status"] == "no_hit"
        assert notice["checks"][0]["criteria"] == {"number": "DE9999999", "country": "DE"}
        assert notice["why_notified"] == ["rule: documents for Schengen"]
        log = net["DE"].node.open_enquiry_log()
        try:
            (enquiry,) = log.list()
        finally:
            log.close()
        assert notice["enquiry"] == enquiry.entry.id == row.notice.enquiry


async def test_a_watch_fires_even_when_the_rule_says_never_and_when_denied(tmp_path: Path) -> None:
    r = Receiver()
    await r.start()
    try:
        async with network(tmp_path, ["FR", "DE", "GB"], configure_de(webhook(r.port))) as net:
            assert await ask(net, "FR", "DE1234567") == "hit"
            assert await ask(net, "FR", "DE0000042") == "hit"  # not watched: rule says never
            assert await ask(net, "GB", "DE1234567") == "denied"  # GB is not in Schengen
            assert await ask(net, "GB", "DE7654321") == "denied"  # denied, not watched
            await wait_for(lambda: len(r.posts) == 2)
            await asyncio.sleep(0.3)
            claims = r.verified(net["DE"].node.signer.public.jwk())
            assert len(claims) == 2
            by_peer = {c["notice"]["asked_by"]["node"]: c["notice"] for c in claims}
            assert by_peer["FR"]["why_notified"] == ["watch: the stolen passport"]
            assert by_peer["FR"]["checks"][0]["matched"] == ["DE:travel_documents:DE-TD-26-0117"]
            # The denied enquiry is notified, with the record it touched, though GB saw nothing.
            assert by_peer["GB"]["checks"][0]["status"] == "denied"
            assert by_peer["GB"]["checks"][0]["matched"] == ["DE:travel_documents:DE-TD-26-0117"]
    finally:
        await r.stop()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


async def test_email_channel_delivers_text_and_json(tmp_path: Path) -> None:
    mailbox = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        channel = (
            f"    duty:\n      type: email\n      host: 127.0.0.1\n      port: {port}\n"
            "      security: none\n      sender: connector@ncb.example\n"
            "      to: [duty@ncb.example]\n"
        )
        async with network(tmp_path, ["FR", "DE"], configure_de(channel, "always")) as net:
            assert await ask(net, "FR", "DE1234567") == "hit"
            await wait_for(lambda: len(mailbox.messages) >= 1)
            await wait_for(lambda: all(r.state == "delivered" for r in outbox_rows(net["DE"])))
        message = mailbox.messages[0]
        assert message.rcpt_tos == ["duty@ncb.example"]
        text = message.content.decode()
        assert "DE:travel_documents:DE-TD-26-0117" in text
        assert "notice.json" in text
    finally:
        controller.stop()


async def test_an_enquiry_and_its_notice_commit_together(tmp_path: Path) -> None:
    """Every enquiry that should notify has its notices in the same database, even while
    the receiver is down and nothing was delivered."""
    async with network(tmp_path, ["FR", "DE"], configure_de(webhook(9), "always")) as net:
        statuses = await asyncio.gather(*(ask(net, "FR", f"DE{i:07d}") for i in range(20)))
        assert len(statuses) == 20
        rows = outbox_rows(net["DE"])
        log = net["DE"].node.open_enquiry_log()
        try:
            enquiry_ids = {e.entry.id for e in log.list()}
        finally:
            log.close()
        assert {r.notice.enquiry for r in rows} == enquiry_ids
        assert len(rows) == 20
        assert all(r.state == "pending" for r in rows)
        report = await net["DE"].service.peer_app[DISPATCHER].run_once()
        assert report.delivered == 0


async def test_a_policy_naming_an_undefined_channel_is_refused(tmp_path: Path) -> None:
    from connector.errors import ConfigError

    with pytest.raises(ConfigError, match="duty"):
        async with network(tmp_path, ["FR", "DE"], configure_de("    other:\n      type: log\n")):
            pass


async def test_notices_pending_at_sigkill_are_delivered_after_restart(tmp_path: Path) -> None:
    import json
    import os
    import signal
    import subprocess

    import aiohttp
    from support.processes import CLI, cli, fr_query, free_port, init, pin_fresh_peer, readyz

    from connector.crypto.keyfiles import certificate_fingerprint
    from connector.peers.trust import fingerprint_bytes
    from connector.protocol import sign_query

    config, peer_port, local = init(tmp_path, "DE")
    hook_port = free_port()
    config.write_text(
        config.read_text() + "notifications:\n  retry_initial_s: 0.05\n"
        "  retry_max_s: 0.2\n  poll_interval_s: 0.1\n  channels:\n" + webhook(hook_port)
    )
    (config.parent / "policies" / "10-test.yaml").write_text(POLICY.format(notify="always"))
    fr = pin_fresh_peer(config)
    fp = aiohttp.Fingerprint(
        fingerprint_bytes(
            certificate_fingerprint((config.parent / "tls" / "cert.pem").read_bytes())
        )
    )
    env = {**os.environ, "NCB_CONNECTOR_CONFIG": str(config)}

    async def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            [*CLI, "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        async with asyncio.timeout(20):
            while True:
                try:
                    await asyncio.to_thread(readyz, local)
                    return proc
                except OSError:
                    await asyncio.sleep(0.05)

    node = await start()
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(10):
                query = fr_query(f"Q{i}")
                async with session.post(
                    f"https://127.0.0.1:{peer_port}/v1/query",
                    ssl=fp,
                    data=sign_query(query, fr),
                    headers={"Content-Type": "application/jose"},
                ) as resp:
                    assert resp.status == 200
        node.send_signal(signal.SIGKILL)
        node.wait(timeout=10)
        box = Outbox.open(f"sqlite:///{config.parent / 'enquiries.db'}")
        try:
            pending = box.list()
        finally:
            box.close()
        assert len(pending) == 10
        assert all(r.state == "pending" for r in pending)
        assert any(r.attempts >= 1 for r in pending)  # tried, failed, kept
        receiver = Receiver()
        receiver.port = hook_port
        await receiver.start()
        try:
            node = await start()
            await wait_for(lambda: len({h["Idempotency-Key"] for h, _ in receiver.posts}) == 10)

            def states() -> set[str]:
                box = Outbox.open(f"sqlite:///{config.parent / 'enquiries.db'}")
                try:
                    return {r.state for r in box.list()}
                finally:
                    box.close()

            await wait_for(lambda: states() == {"delivered"})
        finally:
            await receiver.stop()
        listed = json.loads(cli("notifications", "list", "--json", config=config).stdout)
        assert len(listed) == 10
        assert all(n["state"] == "delivered" for n in listed)
        assert sum(n["attempts"] for n in listed) > 10  # the failed attempts are counted
    finally:
        if node.poll() is None:
            node.kill()
        node.wait(timeout=10)


async def test_a_digest_only_channel_gets_no_notice_per_enquiry(tmp_path: Path) -> None:
    channel = "    duty:\n      type: log\n      digest: hourly\n      digest_only: true\n"
    async with network(tmp_path, ["FR", "DE"], configure_de(channel, "always")) as net:
        assert await ask(net, "FR", "DE1234567") == "hit"
        assert outbox_rows(net["DE"]) == []
