"""A node rotates its key and certificate while a peer keeps asking it: nothing fails."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
import structlog
import yaml
from aiohttp import web
from support.network import configure as demo_configure
from support.network import ncb_request
from support.processes import cli, post_query

from connector.crypto.jws import Signer, parse_compact
from connector.crypto.keyfiles import read_signing_key
from connector.demo import DemoNode, network
from connector.errors import PeerUnreachable
from connector.peers.client import PeerClient, peer_session
from connector.protocol import Check, make_query, sign_query
from connector.vocabulary import AgencyKind, Category, Purpose

# Published, a rotation waits far longer than the test: DE's admin brings it into force with
# `--activate` once FR shows it pinned, as an admin who asked the peers would. DE publishes
# within a second of the command (its keyring job), FR pins at its next check (0.2 s).
ACTIVATE_AFTER_S = 3600.0
OVERLAP_S = 2.5


def fast_rotation(node_id: str, directory: Path) -> None:
    """The demo's policy; rotations that come into force and retire in seconds, peers
    checked five times a second, so a rotation is picked up long before it is in force."""
    demo_configure(node_id, directory)
    path = directory / "connector.yaml"
    config = yaml.safe_load(path.read_text())
    config["keys"] = {"activate_after_s": ACTIVATE_AFTER_S, "overlap_s": OVERLAP_S}
    config["federation"] = {"health_interval_s": 0.2}
    path.write_text(yaml.safe_dump(config))


async def until(predicate: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    """Wait for something the nodes' own jobs bring about, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached: {what}")
        await asyncio.sleep(0.05)


async def keep_asking(
    net: dict[str, DemoNode], stop: asyncio.Event, kids: list[str], failures: list[str]
) -> None:
    """FR asks DE, as fast as it answers, until told to stop; every answer verified (by
    `desk.ask`, with the keys FR pins for DE then) and the key that signed it noted. A new
    desk per round makes a new TLS connection each time, so a swapped certificate is met."""
    for _ in range(10_000):  # bounded: the test's durations need a few hundred rounds
        if stop.is_set():
            return
        try:
            async with net["FR"].node.desk() as desk:
                exchange = await desk.ask(
                    ncb_request((Category.TRAVEL_DOCUMENTS, {"number": "C01X00T47"})), "DE"
                )
            kids.append(parse_compact(exchange.answer_token).kid or "")
        except Exception as exc:  # every failure is what the test counts
            failures.append(f"{type(exc).__name__}: {exc}")


async def test_key_and_certificate_rotate_while_a_peer_keeps_asking(tmp_path: Path) -> None:
    async with network(tmp_path, ["DE", "FR"], fast_rotation) as net:
        de, fr = net["DE"], net["FR"]
        config = tmp_path / "DE" / "connector.yaml"
        old_kid, old_fp = de.node.signer.kid, de.node.tls_fingerprint
        # What the old certificate's holder could still present once it is retired.
        kept = tmp_path / "kept"
        kept.mkdir()
        shutil.copy(tmp_path / "DE" / "tls" / "cert.pem", kept / "cert.pem")
        shutil.copy(tmp_path / "DE" / "tls" / "key.pem", kept / "key.pem")
        old_key = read_signing_key(tmp_path / "DE" / "keys" / "node.jwk")

        stop = asyncio.Event()
        kids: list[str] = []
        failures: list[str] = []
        with structlog.testing.capture_logs() as events:
            asking = asyncio.create_task(keep_asking(net, stop, kids, failures))
            await until(lambda: len(kids) >= 3, "FR's first answers")
            rotated = await asyncio.to_thread(cli, "keys", "rotate", "--json", config=config)
            renewed = await asyncio.to_thread(cli, "keys", "renew-tls", "--json", config=config)
            new_kid = orjson.loads(rotated.stdout)["new"]
            new_fp = orjson.loads(renewed.stdout)["new"]
            renewal = orjson.loads(renewed.stdout)
            assert orjson.loads(rotated.stdout)["old"] == old_kid
            assert renewal["old"] == old_fp

            def fr_pins_de() -> object:
                peer = fr.node.live.trust.get("DE")
                return peer and peer.key_by_kid(new_kid) and peer.tls_fingerprint == new_fp

            await until(fr_pins_de, "FR pins DE's next key and certificate")
            assert de.node.signer.kid == old_kid, "pinned before DE signs with it"
            assert de.node.tls_fingerprint == old_fp
            answered_before = len(kids)
            await until(lambda: len(kids) > answered_before + 3, "answers while both pinned")
            rotated = await asyncio.to_thread(
                cli, "keys", "rotate", "--activate", "--json", config=config
            )
            renewed = await asyncio.to_thread(
                cli, "keys", "renew-tls", "--activate", "--json", config=config
            )
            renewal = orjson.loads(renewed.stdout)
            assert orjson.loads(rotated.stdout)["activated"] is True
            assert renewal["new"] == new_fp
            await until(lambda: de.node.signer.kid == new_kid, "DE signs with the new key")
            await until(lambda: de.node.tls_fingerprint == new_fp, "DE presents the new cert")
            answered_before = len(kids)
            await until(lambda: len(kids) > answered_before + 3, "answers under the new key")
            # The overlap elapses: the old key and certificate retire everywhere.
            retire_at = max(orjson.loads(rotated.stdout)["not_after"], renewal["not_after"])
            await until(
                lambda: (
                    len(de.node.keyring.current.keys) == 1
                    and len(de.node.keyring.current.certificates) == 1
                ),
                f"DE retires the old key and certificate (at {retire_at})",
            )
            stop.set()
            await asyncio.wait_for(asking, 30)

        assert failures == []
        assert old_kid in kids
        assert new_kid in kids
        assert kids.index(new_kid) > kids.index(old_kid)
        assert kids[-1] == new_kid
        # Each rotation was announced once and logged by FR's health job, never refused.
        names = [e["event"] for e in events]
        assert "peer_rotation_refused" not in names
        assert not [e for e in events if e["log_level"] == "error"]

        pinned = fr.node.live.trust.get("DE")
        assert pinned is not None
        assert [k.key.kid for k in pinned.keys] == [new_kid, old_kid]
        assert pinned.keys[1].not_after is not None
        on_file = yaml.safe_load((tmp_path / "FR" / "peers.yaml").read_text())
        (entry,) = on_file["peers"]
        assert entry["tls_fingerprint"] == new_fp
        assert entry["retiring_tls_fingerprints"][0]["fingerprint"] == old_fp
        # What FR's admin reads: which pinned key retires, and when.
        fr_config = tmp_path / "FR" / "connector.yaml"
        listed = await asyncio.to_thread(cli, "peers", "list", "--json", config=fr_config)
        (de_listed,) = orjson.loads(listed.stdout)
        states = {k["kid"]: k["not_after"] for k in de_listed["pinned_keys"]}
        assert states[new_kid] is None
        assert states[old_kid] is not None
        table = await asyncio.to_thread(cli, "peers", "list", config=fr_config)
        assert old_kid in table.stdout
        assert "(retiring" in table.stdout

        # After the overlap, a query signed with DE's old key is refused by FR ...
        query = make_query(
            iss="DE",
            aud="FR",
            sub="x/1",
            agency_kind=AgencyKind.NCB,
            purpose=Purpose.BORDER_CONTROL,
            checks=(Check(id="1", category=Category.TRAVEL_DOCUMENTS, criteria={"number": "X"}),),
        )
        status, body = await asyncio.to_thread(
            post_query, fr.service.peer_port, sign_query(query, Signer(old_key))
        )
        assert status == 401
        assert orjson.loads(body)["code"] == "unknown_key"
        # ... and so is the old certificate, wherever it is presented.
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(kept / "cert.pem", kept / "key.pem")
        runner = web.AppRunner(web.Application())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with peer_session() as session:
                client = PeerClient(
                    session=session, signer=fr.node.signer, node="FR", clock=time.time
                )
                impostor = replace(pinned, url=f"https://127.0.0.1:{port}")
                with pytest.raises(PeerUnreachable, match="does not match the pin"):
                    await client.post(impostor, "/v1/query", b"x")
        finally:
            await runner.cleanup()


async def test_peers_add_update_repins_a_peer_after_a_rotation_a_pinned_key_signed(
    tmp_path: Path,
) -> None:
    async with network(tmp_path, ["DE", "FR"]) as net:
        de = net["DE"]
        fr_config = tmp_path / "FR" / "connector.yaml"
        url = f"https://127.0.0.1:{de.service.peer_port}"
        again = await asyncio.to_thread(
            cli,
            "peers",
            "add",
            "DE",
            "--url",
            url,
            "--fetch",
            "--yes",
            config=fr_config,
            check=False,
        )
        assert again.returncode == 2
        assert "already trusted" in again.stderr
        assert "--update" in again.stderr
        old_kid = de.node.signer.kid
        de_config = tmp_path / "DE" / "connector.yaml"
        await asyncio.to_thread(cli, "keys", "rotate", config=de_config)
        activated = await asyncio.to_thread(
            cli, "keys", "rotate", "--activate", "--json", config=de_config
        )
        assert orjson.loads(activated.stdout)["activated"] is True
        new_kid = orjson.loads(activated.stdout)["new"]
        await until(lambda: de.node.signer.kid == new_kid, "DE signs with the new key")
        updated = await asyncio.to_thread(
            cli,
            "peers",
            "add",
            "DE",
            "--url",
            url,
            "--fetch",
            "--update",
            "--yes",
            config=fr_config,
        )
        assert f"{old_kid} -> {new_kid}" in updated.stdout
        assert "announced by a statement a pinned key signed" in updated.stdout
        assert "peer DE updated" in updated.stdout
        pinned = yaml.safe_load((tmp_path / "FR" / "peers.yaml").read_text())["peers"][0]
        assert [k["jwk"]["kid"] for k in pinned["keys"]] == [new_kid, old_kid]
        assert "not_after" in pinned["keys"][1]
