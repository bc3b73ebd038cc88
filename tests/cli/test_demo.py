"""`ncb-connector demo` as a newcomer runs it: every scenario shown, and it says it passed."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest
from rich.cells import cell_len
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
        "FR sends DE a suspect's DNA profile, one allele off a stain (near match)",
        "DE:dna_profiles:DE-DNA-26-0007",
        "near match at FGA, 12 loci compared",
        "FR sends DE a suspect's right index print (a candidate for an examiner)",
        "DE:fingerprints:DE-FP-26-0031",
        "candidate for an examiner: right index, bozorth3 score",
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
    assert re.search(
        r"DE operator console +http://127\.0\.0\.1:\d+/ +login demo password \S{16}", out
    )
    assert "expected" not in out
    assert "failed" not in out
    assert (tmp_path / "net" / "FR" / "connector.yaml").exists()


def _on_a_terminal(args: list[str], *, columns: int, timeout: float) -> str:
    """What a command shows on a terminal `columns` wide (a pseudo-terminal of that size)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed: the command ended
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.wait(timeout=10) == 0
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r", "")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # colours and cursor codes


@pytest.mark.parametrize("columns", [80, 120])
def test_the_demo_fits_the_terminal_it_runs_on(columns: int) -> None:
    """Every table, the enquiry logs' too, folds to the terminal's width."""
    shown = _on_a_terminal([*CLI, "demo"], columns=columns, timeout=120)
    assert "demo complete" in shown
    assert "FR: enquiry log" in shown
    widest = max(cell_len(line) for line in shown.split("\n"))
    assert widest <= columns, widest


def test_the_demo_serves_des_console_until_ctrl_c(tmp_path: Path) -> None:
    """With --serve the nodes stay up after the checks: the console it printed logs in."""
    import signal
    import urllib.parse
    import urllib.request
    from http.cookiejar import CookieJar

    proc = subprocess.Popen(
        [*CLI, "demo", "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert proc.stdout is not None
        seen = ""
        deadline = time.monotonic() + 120
        while "serving:" not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, seen
            seen += line
        found = re.search(r"(http://127\.0\.0\.1:\d+/) +login (\S+) password (\S+)", seen)
        assert found is not None, seen
        url, account, password = found.groups()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        page = opener.open(f"{url}login", timeout=10).read().decode()
        token = re.search(r'name="login_token" value="([^"]+)"', page)
        assert token is not None
        form = {"login_token": token.group(1), "name": account, "password": password}
        with opener.open(
            f"{url}login", data=urllib.parse.urlencode(form).encode(), timeout=30
        ) as resp:
            overview = resp.read().decode()
        assert "<h1>Overview</h1>" in overview
        assert "Enquiries as they arrive" in overview
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
