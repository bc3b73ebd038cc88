"""Tables for people fit an 80-column terminal: a row too wide becomes a block of lines, with
every fingerprint, id and reason whole on its line."""

from __future__ import annotations

import os
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
from rich.cells import cell_len
from support.entries import entry
from support.processes import CLI, cli, init, pin_fresh_peer

from connector.enquiries.log import EnquiryLog
from connector.settings.config import load_settings


def _at(columns: int, *args: str, config: Path) -> str:
    env = {**os.environ, "COLUMNS": str(columns), "NCB_CONNECTOR_CONFIG": str(config)}
    proc = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1: peers status with a peer down
    return proc.stdout


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list[str]]:
    tmp = tmp_path_factory.mktemp("tables")
    config, _, _ = init(tmp, "FR")
    signer = pin_fresh_peer(config, "DE", "http://127.0.0.1:9")
    pin_fresh_peer(config, "IT-2", "http://connector.ncb.interno.it.example:8443")
    cli("agencies", "add", "border-cdg", "--kind", "border", config=config)
    entries = [entry(n, iss="DE") for n in range(3)]
    with closing(EnquiryLog.open(load_settings(config).enquiries_url)) as log:
        for logged in entries:
            log.append_now(logged)
    return config, signer.kid, [e.id for e in entries]


@pytest.mark.parametrize(
    "args",
    [
        ("peers", "list"),
        ("peers", "status", "--probe"),
        ("audit", "list"),
        ("agencies", "list"),
        ("enquiries", "list"),
    ],
    ids=" ".join,
)
@pytest.mark.parametrize("columns", [80, 120])
def test_every_table_fits(
    node: tuple[Path, str, list[str]], args: tuple[str, ...], columns: int
) -> None:
    config, _, _ = node
    shown = _at(columns, *args, config=config)
    lines = shown.splitlines()
    assert len(lines) >= 3, shown
    widest = max(cell_len(line.rstrip()) for line in lines)
    assert widest <= columns, (widest, shown)
    # Words for people, not Python: no reprs, lists or booleans as Python writes them.
    for python in ("object at 0x", "['", "True", "False", "None"):
        assert python not in shown, (python, shown)


def test_what_an_admin_compares_stays_whole_at_80(node: tuple[Path, str, list[str]]) -> None:
    config, kid, ids = node
    peers = _at(80, "peers", "list", config=config)
    assert any(kid in line for line in peers.splitlines()), peers  # a thumbprint, whole
    status = _at(80, "peers", "status", "--probe", config=config)
    assert "connection refused (nothing listens at that address and port)" in status
    enquiries = _at(80, "enquiries", "list", config=config)
    assert all(i in enquiries for i in ids), enquiries


def test_piped_output_keeps_a_row_per_line(node: tuple[Path, str, list[str]]) -> None:
    """Without a terminal (no COLUMNS), a script or grep gets one line per peer."""
    config, kid, _ = node
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["NCB_CONNECTOR_CONFIG"] = str(config)
    proc = subprocess.run(
        [*CLI, "peers", "list"], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    (row,) = [line for line in proc.stdout.splitlines() if kid in line]
    assert "DE" in row
    assert "http://127.0.0.1:9" in row
