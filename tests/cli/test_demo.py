"""`ncb-connector demo` as a newcomer runs it: every scenario shown, and it says it passed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.processes import CLI


def test_the_demo_runs_its_scenarios_and_shows_them(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*CLI, "demo", "--nodes", "4", "--keep", str(tmp_path / "net")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Starting 4 nodes on loopback (FR, DE, GB, IT)" in out
    assert f"Working directory: {tmp_path / 'net'}" in out
    for seen in (
        "FR asks DE about a stolen German passport (hit)",
        "DE:travel_documents:DE-TD-26-0117",
        "FR's NCB checks a German passport number against all 3 peers at once",
        "second (connections reused): 3 peers answered in",
        "1 hit, 2 no_hit",
        "FR: enquiry log",
        "chain verified",
        "The other 1 nodes' enquiry logs",
        "IT: 2 row(s) each, every chain verified",
        "demo complete",
    ):
        assert seen in out
    assert "expected" not in out
    assert "failed" not in out
    assert (tmp_path / "net" / "FR" / "connector.yaml").exists()
