"""Helpers for tests that drive the connector as separate processes, as an admin would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

CLI = [sys.executable, "-m", "connector"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(
    *args: str, config: Path | None = None, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    if config is not None:
        env["NCB_CONNECTOR_CONFIG"] = str(config)
    proc = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env, input=input, timeout=60, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def init(tmp: Path, node: str) -> tuple[Path, int, int]:
    peer, local = free_port(), free_port()
    cli(
        "init",
        "--node",
        node,
        "--dir",
        str(tmp / node),
        "--peer-port",
        str(peer),
        "--local-port",
        str(local),
    )
    config = tmp / node / "connector.yaml"
    text = config.read_text().replace("policy_reload_interval: 5", "policy_reload_interval: 0.2")
    config.write_text(text)
    return config, peer, local


POLICY = """\
inbound:
  - name: documents for FR
    from: [FR]
    categories: [travel_documents]
    answer: full
outbound:
  - agency: ncb
    categories: [travel_documents]
    to: "*"
"""


def readyz(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def wait_ready(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stderr = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"node exited {proc.returncode}: {stderr}")
        try:
            readyz(port)
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("node did not become ready")


def wait_for(predicate: Callable[[], object], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")
