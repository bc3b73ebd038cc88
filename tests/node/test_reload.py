"""Reload tells the truth: connector.yaml's reloadable settings apply, the rest is named."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from structlog.testing import capture_logs
from support.processes import CLI, cli, free_port, readyz, wait_ready
from support.processes import POLICY as FR_POLICY
from support.webhooks import Receiver

from connector.demo import DemoNode, network
from connector.inbound.answering import Answerer
from connector.node.peer_app import DISPATCHER
from connector.server.peer_api import ANSWERER
from connector.settings.changes import settings_changes
from connector.settings.config import load_settings
from connector.vocabulary import Category

# The policy names a channel that only the edited connector.yaml defines.
POLICY = FR_POLICY.replace(
    "    answer: full\n", "    answer: full\n    notify: on_hit\n    channels: [duty]\n", 1
)


def _edit(config: Path, **changes: object) -> None:
    data = yaml.safe_load(config.read_text())
    data.update(changes)
    config.write_text(yaml.safe_dump(data))


def _channels(port: int) -> dict[str, object]:
    return {
        "poll_interval_s": 0.1,
        "channels": {
            "duty": {"type": "webhook", "url": f"http://127.0.0.1:{port}/hook", "insecure": True}
        },
    }


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


async def _hit(net: dict[str, DemoNode]) -> str:
    from support.network import ask

    results = await ask(net, "FR", [(Category.TRAVEL_DOCUMENTS, {"number": "DE1234567"})])
    return str(next(iter(results.values())).status)


async def test_a_new_channel_and_the_policy_that_uses_it_load_together(
    tmp_path: Path, receiver: Receiver
) -> None:
    async with network(tmp_path, ["FR", "DE"]) as net:
        de = net["DE"]
        config = de.node.settings.base_dir / "connector.yaml"
        _edit(config, notifications=_channels(receiver.port))
        (de.node.settings.base_dir / "policies" / "10-demo.yaml").write_text(POLICY)
        # What `config check` passes, the running node takes: no "channel not defined".
        checked = await asyncio.to_thread(cli, "config", "check", "--config", str(config))
        assert checked.stdout.startswith("ok: node DE"), checked.stdout

        de.service.reload()

        assert de.node.live.problems == {}
        assert de.node.live.restart_needed == ()
        assert "duty" in de.service.peer_app[DISPATCHER].senders
        assert await _hit(net) == "hit"
        async with asyncio.timeout(10):
            while not receiver.posts:  # noqa: ASYNC110 - delivered by the node's dispatcher
                await asyncio.sleep(0.02)
        (claims,) = receiver.verified(de.node.signer.public.jwk())
        assert claims["iss"] == "DE"


async def test_what_needs_a_restart_is_named_until_there_is_one(tmp_path: Path) -> None:
    async with network(tmp_path, ["FR", "DE"]) as net:
        de = net["DE"]
        config = de.node.settings.base_dir / "connector.yaml"
        original = config.read_text()
        listen = yaml.safe_load(original)["listen"]
        moved = {**listen, "local": {**listen["local"], "port": free_port()}}
        _edit(config, listen=moved, matching={"hit_threshold": {"wanted_persons": 0.95}})
        with capture_logs() as logs:
            de.service.reload()
        (event,) = [e for e in logs if e["event"].startswith("reloaded")]
        assert event["event"] == "reloaded_restart_needed"
        assert event["log_level"] == "warning"
        assert event["restart_needed"] == ["listen.local.port"]
        assert event["settings_applied"] == ["matching.hit_threshold.wanted_persons"]
        answerer: Answerer = de.service.peer_app[ANSWERER]
        assert answerer.hit_threshold(Category.WANTED_PERSONS) == 0.95
        assert de.node.live.problems == {}  # still answering: ready, with a restart pending
        # A second reload of something else still names the listener.
        _edit(config, policy_reload_interval=7)
        de.service.reload()
        assert de.node.live.restart_needed == ("listen.local.port",)
        jobs = {j.id: j for j in de.service.scheduler.jobs()}
        assert jobs["policy-watch"].trigger == "interval[0:00:07]"
        # Put back as it started: nothing waits for a restart any more.
        config.write_text(original)
        de.service.reload()
        assert not de.node.live.restart_needed


async def test_a_broken_connector_yaml_keeps_everything_as_it_was(tmp_path: Path) -> None:
    async with network(tmp_path, ["FR", "DE"]) as net:
        de = net["DE"]
        config = de.node.settings.base_dir / "connector.yaml"
        config.write_text(config.read_text() + "notifcations: {}\n")
        with capture_logs() as logs:
            de.service.reload()
        (failed,) = [e for e in logs if e["event"] == "config_reload_failed"]
        assert failed["log_level"] == "error"
        assert "connector.yaml:" in failed["error"]
        assert "notifcations" in failed["error"]
        assert "did you mean 'notifications'" in failed["error"]
        (done,) = [e for e in logs if e["event"].startswith("reloaded")]
        assert done["event"] == "reloaded_with_problems"
        assert "config" in de.node.live.problems
        assert await _hit(net) == "hit"  # the old settings still answer


async def test_a_channel_that_does_not_build_keeps_the_old_channels(tmp_path: Path) -> None:
    async with network(tmp_path, ["FR", "DE"]) as net:
        de = net["DE"]
        config = de.node.settings.base_dir / "connector.yaml"
        _edit(
            config,
            notifications={
                "channels": {
                    "mail": {
                        "type": "email",
                        "host": "127.0.0.1",
                        "sender": "ncb@example.org",
                        "to": ["duty@example.org"],
                        "username": "ncb",
                        "password_file": str(tmp_path / "missing-password"),
                    }
                }
            },
        )
        with capture_logs() as logs:
            de.service.reload()
        assert [e["event"] for e in logs if e["event"] == "notifications_reload_failed"]
        assert "notifications.channels.mail" in de.node.live.problems["notifications"]
        assert de.service.peer_app[DISPATCHER].senders == {}
        assert de.service.settings.notifications.channels == {}


def test_changes_are_named_setting_by_setting(tmp_path: Path) -> None:
    from support.processes import init

    config, _, _ = init(tmp_path, "DE")
    old = load_settings(config)
    _edit(
        config,
        notifications=_channels(9),
        databases={"enquiries": "sqlite:///other.db"},
        logging={"level": "debug"},
        keys={"activate_after_s": 60},
        retention={"archive_after_days": 400},
    )
    changes = settings_changes(old, load_settings(config))
    assert changes.applied == (
        "logging.level",
        "notifications.channels.duty",
        "notifications.poll_interval_s",
        "keys.activate_after_s",  # read by the next `keys rotate`, not by the node
    )
    assert changes.restart == ("databases.enquiries", "retention.archive_after_days")
    assert changes.touches("notifications")
    assert not changes.touches("matching")
    assert not settings_changes(old, old)


def test_sighup_to_a_running_node_reloads_connector_yaml(tmp_path: Path) -> None:
    """The service as systemd runs it: `systemctl reload` is a SIGHUP."""
    from support.processes import init

    config, _, local = init(tmp_path, "DE")
    log_file = tmp_path / "node.log"
    env = {**os.environ, "NCB_CONNECTOR_CONFIG": str(config)}
    with log_file.open("w") as stderr:
        proc = subprocess.Popen(
            [*CLI, "run"], env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True
        )
    try:
        wait_ready(local, proc)
        data = yaml.safe_load(config.read_text())
        data["notifications"] = _channels(free_port())
        data["logging"] = {"format": "json", "level": "warning"}
        data["listen"]["peer"]["port"] = free_port()
        config.write_text(yaml.safe_dump(data))
        (config.parent / "policies" / "10-notify.yaml").write_text(
            "inbound:\n  - name: FR told\n    from: [FR]\n    categories: [travel_documents]\n"
            "    answer: hit\n    notify: always\n    channels: [duty]\n"
        )
        proc.send_signal(signal.SIGHUP)
        event = _wait_for_event(log_file, "reloaded_restart_needed")
        assert event["restart_needed"] == ["listen.peer.port"]
        assert "notifications.channels.duty" in event["settings_applied"]
        assert event["policy_changed"] is True
        status = readyz(local, config)
        assert status["status"] == "ready", status
        assert status["restart_needed"] == ["listen.peer.port"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _wait_for_event(path: Path, name: str) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                event: dict[str, Any] = orjson.loads(line)
                if event.get("event") == name:
                    return event
        time.sleep(0.05)
    raise AssertionError(f"no {name} in {path.read_text()}")


def test_config_check_reads_what_a_reload_would_build(tmp_path: Path) -> None:
    """`systemctl reload` runs `config check` first: what would fail in the node fails there."""
    from support.processes import init

    config, _, _ = init(tmp_path, "DE")
    mail = {
        "type": "email",
        "host": "127.0.0.1",
        "sender": "ncb@example.org",
        "to": ["duty@example.org"],
        "username": "ncb",
        "password_file": "smtp-password",
    }
    _edit(config, notifications={"channels": {"mail": mail}})
    failed = cli("config", "check", "--json", config=config, check=False)
    assert failed.returncode == 2
    (error,) = orjson.loads(failed.stdout)["errors"]
    assert error.startswith("notifications.channels.mail: "), error
    assert "smtp-password" in error
    (config.parent / "smtp-password").write_text("secret\n")
    (config.parent / "agencies.json").write_text("{not json")
    broken = cli("config", "check", config=config, check=False)
    assert broken.returncode == 2
    assert "agencies.json" in broken.stderr
    (config.parent / "agencies.json").unlink()
    ok = orjson.loads(cli("config", "check", "--json", config=config).stdout)
    assert ok["ok"] is True
    assert ok["agencies"] == 0
