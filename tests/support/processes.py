"""Helpers for tests that drive the connector as separate processes, as an admin would."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connector.crypto.jws import Signer, SigningKey
from connector.protocol import Check, Query, make_query
from connector.vocabulary import AgencyKind, Category, Purpose

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


def pin_fresh_peer(config: Path, peer: str = "FR", url: str = "http://127.0.0.1:9") -> Signer:
    """A new key for `peer`, pinned (plain HTTP, as tests do) in the node's peers.yaml through
    the CLI; the signer, to sign that peer's queries."""
    signer = Signer(SigningKey.generate())
    cli(
        "peers",
        "add",
        peer,
        "--url",
        url,
        "--insecure",
        "--key",
        json.dumps(signer.public.jwk()),
        config=config,
    )
    return signer


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


_PROBE_TOKENS: dict[Path, str] = {}


def probe_token(config: Path) -> str:
    """A token of an agency `probe` on the node of `config`, added once per node."""
    if config not in _PROBE_TOKENS:
        added = cli("agencies", "add", "probe", "--kind", "ncb", config=config)
        _PROBE_TOKENS[config] = added.stdout.strip()
    return _PROBE_TOKENS[config]


def readyz(port: int, config: Path | None = None) -> dict[str, object]:
    """/readyz: the status alone, or with `config` (the node's) every detail, which only a
    caller with an agency's token is shown."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/readyz")
    if config is not None:
        request.add_header("Authorization", f"Bearer {probe_token(config)}")
    with urllib.request.urlopen(request, timeout=5) as resp:
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


def fr_query(number: str) -> Query:
    """FR's travel-document check of `number`, to DE: what the peer `pin_fresh_peer` pins
    asks in these tests (sign it with the signer that returned)."""
    return make_query(
        iss="FR",
        aud="DE",
        sub="x/1",
        agency_kind=AgencyKind.NCB,
        purpose=Purpose.BORDER_CONTROL,
        checks=(Check(id="1", category=Category.TRAVEL_DOCUMENTS, criteria={"number": number}),),
    )


# A node's own self-signed certificate: the tests that post to it check its answer, not it.
_UNCHECKED_TLS = ssl.create_default_context()
_UNCHECKED_TLS.check_hostname = False
_UNCHECKED_TLS.verify_mode = ssl.CERT_NONE


def post_query(port: int, token: bytes) -> tuple[int, bytes]:
    """A query token POSTed to a node's peer port: the status and the body, a refusal's
    too."""
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}/v1/query",
        data=token,
        headers={"Content-Type": "application/jose"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=_UNCHECKED_TLS) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def audit_entries(config: Path) -> list[dict[str, Any]]:
    """The node's admin audit trail, as `audit list --json` gives it."""
    entries: list[dict[str, Any]] = json.loads(cli("audit", "list", "--json", config=config).stdout)
    return entries
