"""/readyz means it: a disk under the floor makes the node unready (503) and says why."""

from __future__ import annotations

import asyncio
import json
import urllib.error
from pathlib import Path

import yaml
from structlog.testing import capture_logs
from support.processes import readyz

from connector.demo import DemoNode, network
from connector.node.readiness import MIB, space_problems


def _floor(mb: int) -> object:
    def configure(node_id: str, directory: Path) -> None:
        path = directory / "connector.yaml"
        config = yaml.safe_load(path.read_text())
        config["readiness"] = {"min_free_mb": mb, "interval_s": 3600}
        path.write_text(yaml.safe_dump(config))

    return configure


async def _readyz(n: DemoNode, *, details: bool) -> tuple[int, dict[str, object]]:
    config = n.node.settings.base_dir / "connector.yaml"

    def get() -> tuple[int, dict[str, object]]:
        try:
            return 200, readyz(n.service.local_port, config if details else None)
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    return await asyncio.to_thread(get)


def test_space_under_the_floor_is_said_per_directory() -> None:
    found = space_problems({Path("/var/lib/x"): 50 * MIB, Path("/srv"): 500 * MIB}, floor_mb=100)
    assert found == {
        "disk": "50 MiB free under /var/lib/x, below the floor of 100 MiB (readiness.min_free_mb)"
    }
    assert space_problems({Path("/srv"): 500 * MIB}, floor_mb=100) == {}


async def test_a_disk_under_the_floor_makes_the_node_unready(tmp_path: Path) -> None:
    # No machine has ten terabytes free under a test's directory.
    configure = _floor(10_000_000)
    async with network(tmp_path, ["DE"], configure) as net:  # type: ignore[arg-type]
        de = net["DE"]
        assert await _readyz(de, details=False) == (503, {"status": "unready"})
        status, body = await _readyz(de, details=True)
        assert status == 503
        unready = body["unready"]
        assert isinstance(unready, dict)
        assert f"free under {de.node.settings.base_dir.resolve()}" in unready["disk"]
        assert "below the floor of 10000000 MiB" in unready["disk"]
        checks = de.node.live.checks
        assert checks is not None
        with capture_logs() as events:
            checks.floor_mb = 0  # the admin freed space: the next round says so
            await checks.run()
            assert checks.problems == {}
            assert await _readyz(de, details=False) == (200, {"status": "ready"})
            checks.floor_mb = 10_000_000
            await checks.run()
    # (node_ready_again is at info, below what the test network logs.)
    said = [(e["event"], e.get("check"), e["log_level"]) for e in events]
    assert said == [("node_unready", "disk", "error")]
