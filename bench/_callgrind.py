"""Instructions a check costs a server process under callgrind: the node or the bare loop.

Wall-clock and CPU figures on a shared machine move with whatever else runs; the number of
instructions a process executes for the same requests does not (to within a tenth of a
per cent here). This runs the node (`ncb-connector run`) or the bare loop (`bench/_bare.py`)
under `valgrind --tool=callgrind` with instrumentation off, on a bench bed kept by
`python -m bench.peer_api --keep DIR` (its node, records, client key and tokens' spec), turns
instrumentation on once the server answers, sends `--warmup` + `--requests` checks with the
bench's load generator (64 connections), and prints the user-space instructions of every
thread of the server divided by the checks answered. The kernel's share (fsync, sockets) is
not counted; TLS, SQLite, libsodium and the interpreter are.

    python -m bench.peer_api --quick --keep /tmp/bed      # once, to make a bed
    python -m bench._callgrind --bed /tmp/bed --server node
    python -m bench._callgrind --bed /tmp/bed --server bare
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

from bench import _procs

STARTUP_S = 900.0  # imports under valgrind take minutes on a busy machine
_TIMEOUTS = "  timeouts:\n    tls_handshake_s: 300\n    header_s: 300\n    body_s: 300\n"


def _node_command(work: Path, bed: Path, port: int) -> list[str]:
    node = work / "node"
    shutil.copytree(bed / "node", node)
    config = node / "connector.yaml"
    text = config.read_text()
    text = re.sub(r"(?m)^(  peer:.*\n(?:    .*\n)*?    port: )\d+", rf"\g<1>{port}", text)
    text = re.sub(r"(?m)^(  local:.*\n(?:    .*\n)*?    port: )\d+", r"\g<1>0", text)
    # Some 50 times slower under valgrind: no handshake or request head may time out.
    text = text.replace("\ndatabases:", "\n" + _TIMEOUTS + "databases:", 1)
    config.write_text(text)
    script = "import sys; from connector.cli import main; sys.argv[0] = 'ncb-connector'; main()"
    return [sys.executable, "-c", script, "run", "--config", str(config)]


def _bare_command(work: Path, bed: Path, port: int) -> list[str]:
    client = orjson.loads((bed / "client-FR.jwk").read_bytes())
    tls = bed / "node" / "tls"
    return [
        *(sys.executable, "-m", "bench._bare", "--port", str(port), "--node", "DE"),
        *("--cert", str(tls / "cert.pem"), "--key", str(tls / "key.pem")),
        *("--signing-key", str(bed / "node" / "keys" / "node.jwk")),
        *("--peer-x", client["x"], "--records", str(bed / "records.ndjson")),
        *("--work", str(work / "bare")),
    ]


def _wait_tls(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Until a TLS handshake on the port completes (the server's imports are done)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server ended first (exit code {proc.returncode})")
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
                ctx.wrap_socket(raw),
            ):
                return
        except OSError:
            time.sleep(1.0)
    raise SystemExit(f"the server did not answer within {STARTUP_S:.0f} s")


def _control(args: list[str], pid: int) -> None:
    subprocess.run(
        ["callgrind_control", *args, str(pid)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _instructions(out: Path) -> int:
    """The instructions of the dumps asked for (`out.1`, …), not of the file written at exit."""
    total = 0
    for dump in out.parent.glob(out.name + ".*"):
        found = re.search(rb"^(?:summary|totals): (\d+)", dump.read_bytes(), re.M)
        total += int(found.group(1)) if found else 0
    return total


def measure(bed: Path, server: str, requests: int, warmup: int) -> str:
    with tempfile.TemporaryDirectory(prefix="ncb-callgrind-") as tmp:
        work, port = Path(tmp), _procs.free_port()
        command = (_node_command if server == "node" else _bare_command)(work, bed, port)
        out = work / "callgrind.out"
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        proc = subprocess.Popen(
            [*valgrind, f"--callgrind-out-file={out}", *command],
            stdout=subprocess.DEVNULL,
            stderr=(work / "server.log").open("wb"),
            env=_procs.python_env(Path(__file__).resolve().parent.parent),
        )
        try:
            _wait_tls(port, proc)
            spec = orjson.loads((bed / "spec-1.json").read_bytes())
            spec.update(
                name=server,
                url=f"https://127.0.0.1:{port}/v1/query",
                key_file=str(bed / "client-FR.jwk"),
                server_pid=None,
                requests=requests,
                warmup=warmup,
                time_cap=100.0,
                seed=5,
            )
            (work / "spec.json").write_bytes(orjson.dumps(spec))
            for control in (["-i", "on"], ["-z"]):  # instrument from here, counts from zero
                _control(control, proc.pid)
            subprocess.run(
                [sys.executable, "-m", "bench._loadgen", str(work / "spec.json"), str(work / "r")],
                check=True,
                env=_procs.python_env(Path(__file__).resolve().parent.parent),
            )
            _control(["-d"], proc.pid)  # the counts until now; the shutdown is not counted
            _control(["-i", "off"], proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=STARTUP_S)
        result = orjson.loads((work / "r").read_bytes())
        answered = result["ok"] + result["warmup_ok"]
        ir = _instructions(out)
        return (
            f"{server}: {ir:,} instructions for {answered} checks answered "
            f"({result['ok']}/{requests} timed, {result['warmup_ok']}/{warmup} warm-up): "
            f"{ir // max(answered, 1):,} a check"
        )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._callgrind", description=__doc__)
    p.add_argument("--bed", type=Path, required=True, help="kept by bench.peer_api --keep")
    p.add_argument("--server", choices=("node", "bare"), required=True)
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--warmup", type=int, default=100)
    a = p.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (Debian: apt install valgrind)", file=sys.stderr)
        return 2
    print(measure(a.bed, a.server, a.requests, a.warmup))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
