"""The node's keyring over a rotation: published, in force, retired, and the files tidied."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import orjson
import pytest
import structlog
from support.processes import cli

from connector.demo import network
from connector.errors import ConfigError
from connector.node.init import init_node
from connector.node.keyring import KeyPaths, in_force
from connector.node.rotation import renew_tls, rotate_key, tidy
from connector.settings.config import load_settings


def test_a_rotation_is_published_then_in_force_then_retired_and_tidied(tmp_path: Path) -> None:
    paths = init_node(tmp_path / "DE", node="DE", peer_port=0, local_port=0)
    settings = load_settings(paths.config)
    keys = KeyPaths.of(settings)
    before = in_force(keys, 1_000.0)
    now = 1_790_000_000.0
    key = rotate_key(settings, now=now).rotation
    cert = renew_tls(settings, now=now).rotation
    activate = now + settings.keys.activate_after_s
    retire = activate + settings.keys.overlap_s

    published = in_force(keys, now)
    assert published.signing == before.signing
    assert [(p.name, p.state) for p in published.keys] == [(key.old, "current"), (key.new, "next")]
    assert published.certificate.fingerprint == cert.old
    assert [p.state for p in published.certificates] == ["current", "next"]
    assert len(published.identity().rotations) == 2

    active = in_force(keys, activate)
    assert active.signing.public.kid == key.new
    assert active.certificate.fingerprint == cert.new
    assert [(p.name, p.state) for p in active.keys] == [(key.new, "current"), (key.old, "retiring")]

    retired = in_force(keys, retire + 1)
    assert [p.name for p in retired.keys] == [key.new]
    assert [p.name for p in retired.certificates] == [cert.new]
    assert retired.identity().rotations == ()

    assert tidy(keys, retire + 1) == ("key", "tls")
    assert not keys.next_key.exists()
    assert not keys.next_cert.exists()
    assert oct(keys.key.stat().st_mode & 0o777) == "0o600"
    tidied = in_force(keys, retire + 1)
    assert tidied.signing.public.kid == key.new
    assert tidied.certificate.fingerprint == cert.new
    assert tidied.rotations.key is None


def test_keys_rotate_refuses_a_second_rotation_and_activates_the_waiting_one(
    tmp_path: Path,
) -> None:
    paths = init_node(tmp_path / "DE", node="DE", peer_port=0, local_port=0)
    started = orjson.loads(cli("keys", "rotate", "--json", config=paths.config).stdout)
    again = cli("keys", "rotate", config=paths.config, check=False)
    assert again.returncode == 2
    assert "a key rotation is under way" in again.stderr
    assert "--activate" in again.stderr
    activated = orjson.loads(
        cli("keys", "rotate", "--activate", "--json", config=paths.config).stdout
    )
    assert activated["new"] == started["new"]
    assert activated["activated"] is True
    shown = orjson.loads(cli("keys", "show", "--json", config=paths.config).stdout)
    assert shown["thumbprint"] == started["new"]
    assert [(k["kid"], k["state"]) for k in shown["keys"]] == [
        (started["new"], "current"),
        (started["old"], "retiring"),
    ]
    assert shown["keys"][1]["not_after"] == activated["not_after"]
    none_waiting = cli("keys", "renew-tls", "--activate", config=paths.config, check=False)
    assert none_waiting.returncode == 2
    assert "no certificate rotation waits" in none_waiting.stderr


def short_certificate(node_id: str, directory: Path) -> None:
    """A node whose certificate in force ends in three days: renewed so, and activated."""
    settings = load_settings(directory / "connector.yaml")
    renew_tls(settings, now=time.time(), days=3)
    renew_tls(settings, now=time.time(), activate=True)


async def test_an_expiring_certificate_is_warned_of_logged_and_shown(tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as events:
        async with network(tmp_path, ["DE"], short_certificate) as net:
            node = net["DE"].node
            expires = node.own_expiries()["certificate_expires"]
            assert expires is not None
            assert 2 * 86_400 < expires - time.time() < 3 * 86_400
            for _ in range(100):  # the keyring job runs every second
                if any(e["event"] == "own_certificate_expiring" for e in events):
                    break
                await asyncio.sleep(0.05)
    (warning,) = [e for e in events if e["event"] == "own_certificate_expiring"]
    assert warning["log_level"] == "warning"
    assert warning["fingerprint"] == node.tls_fingerprint
    assert warning["hint"] == "ncb-connector keys renew-tls"
    shown = await asyncio.to_thread(
        cli, "peers", "status", "--json", config=tmp_path / "DE" / "connector.yaml"
    )
    assert orjson.loads(shown.stdout)["own"]["certificate_expiring"] is True


def test_commands_sign_with_the_key_in_force_and_accept_every_published_one(
    tmp_path: Path,
) -> None:
    """After `keys rotate --activate`, `enquiries verify` and `backup create` sign with the
    new key (not the one connector.yaml's key_file still holds until the tidy), and what the
    old key signed before stays good while it is published."""
    paths = init_node(tmp_path / "DE", node="DE", peer_port=0, local_port=0)
    config = paths.config
    before = orjson.loads(cli("enquiries", "verify", "--json", config=config).stdout)
    old_backup = orjson.loads(
        cli("backup", "create", str(tmp_path / "b"), "--json", config=config).stdout
    )
    cli("keys", "rotate", config=config)
    rotated = orjson.loads(cli("keys", "rotate", "--activate", "--json", config=config).stdout)

    def kid(token: str) -> str:
        header = token.split(".")[0]
        return str(orjson.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])

    after = orjson.loads(cli("enquiries", "verify", "--json", config=config).stdout)
    assert (kid(before["checkpoint"]), kid(after["checkpoint"])) == (rotated["old"], rotated["new"])
    for token in (before["checkpoint"], after["checkpoint"]):  # old key still published
        held = cli("enquiries", "verify", "--expect", token, config=config, check=False)
        assert held.returncode == 0, held.stderr
    new_backup = orjson.loads(
        cli("backup", "create", str(tmp_path / "b"), "--json", config=config).stdout
    )
    assert (old_backup["kid"], new_backup["kid"]) == (rotated["old"], rotated["new"])
    for made in (old_backup, new_backup):
        checked = orjson.loads(
            cli("backup", "verify", made["archive"], "--json", config=config).stdout
        )
        assert (checked["ok"], checked["node_key"]) == (True, True), checked
    # Restored mid-rotation, the node signs with what it signed with, and publishes both.
    target = tmp_path / "restored"
    cli("backup", "restore", new_backup["archive"], "--to", str(target))
    shown = orjson.loads(cli("keys", "show", "--json", config=target / "connector.yaml").stdout)
    assert [(k["kid"], k["state"]) for k in shown["keys"]] == [
        (rotated["new"], "current"),
        (rotated["old"], "retiring"),
    ]


def test_the_next_rotation_says_it_tidied_and_a_refused_one_deletes_nothing(
    tmp_path: Path,
) -> None:
    paths = init_node(tmp_path / "DE", node="DE", peer_port=0, local_port=0)
    settings = load_settings(paths.config)
    keys = KeyPaths.of(settings)
    now = 1_790_000_000.0
    first = rotate_key(settings, now=now).rotation
    cert = renew_tls(settings, now=now).rotation
    over = first.not_after + 1
    # Refused (the certificate's rotation is over, but nothing waits to be activated): the
    # retired key and certificate stay where they are.
    with pytest.raises(ConfigError, match="no certificate rotation waits"):
        renew_tls(settings, now=over, activate=True)
    assert keys.next_key.exists()
    assert keys.next_cert.exists()
    second = rotate_key(settings, now=over)
    assert second.tidied == ("key", "tls")  # both were over: said, and in the audit trail
    assert second.rotation.old == first.new
    assert in_force(keys, over).certificate.fingerprint == cert.new
