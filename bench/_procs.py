"""Child processes for benchmarks: started on loopback, watched, and always ended on exit."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

_CHILDREN: list[subprocess.Popen[bytes]] = []
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A loopback port free right now (the kernel picks it; the race is harmless here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc), 0.0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and of every process below it still running
    (a node with `workers:` is a main process and its workers), 0.0 elsewhere than Linux."""
    total = cpu_seconds_of(pid)
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return total
    for task in tasks:
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                total += tree_cpu_seconds(int(child))
    return total


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine have used since boot (Linux /proc/stat), else 0.0."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def python_env(root: Path) -> dict[str, str]:
    """The environment with `root` first on PYTHONPATH, so `python -m bench.…` works anywhere."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    return env


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, be killed when the benchmark dies, even by SIGKILL."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(slots=True)
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds_of(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGTERM) -> int:
        """`sig` (SIGTERM), wait, then SIGKILL; returns the exit code."""
        stop_process(self.proc, timeout, sig)
        with contextlib.suppress(ValueError):
            _CHILDREN.remove(self.proc)
        return self.proc.returncode


def stop_process(proc: subprocess.Popen[bytes], timeout: float, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(5)


def stop_all() -> None:
    while _CHILDREN:
        stop_process(_CHILDREN.pop(), 10.0)


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    stop_all()
    raise SystemExit(128 + signum)


_installed = False


def install_cleanup() -> None:
    """End every child at exit, on an exception, and on SIGTERM/SIGINT/SIGHUP."""
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(stop_all)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def start(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdout: int | IO[bytes] | None = None,
) -> Child:
    """Start a child with stderr (and stdout unless given) appended to `log_path`."""
    install_cleanup()
    log_fh = log_path.open("ab")
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_fh if stdout is None else stdout,
            stderr=log_fh,
            cwd=cwd,
            env=env,
            preexec_fn=_die_with_parent,
        )
    finally:
        log_fh.close()
    _CHILDREN.append(proc)
    return Child(name=name, proc=proc, log_path=log_path)


def wait_http(child: Child, url: str, *, timeout: float = 30.0, insecure: bool = False) -> None:
    """Poll `url` until it answers 200; fail early with the child's log when it dies.
    `insecure`: a self-signed certificate of the bench's own, not checked."""
    context = None
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(
                f"{child.name} exited with {child.proc.returncode} before it was "
                f"ready:\n{child.tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.05)
    raise RuntimeError(
        f"{child.name} was not ready at {url} within {timeout:.0f} s ({last}):\n{child.tail()}"
    )


def run(
    argv: Sequence[str], *, timeout: float, what: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A short command to completion, output captured; a timeout or failure is an error."""
    install_cleanup()
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
            preexec_fn=_die_with_parent,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{what} took longer than {timeout:.0f} s") from exc
    return done


@contextlib.contextmanager
def workdir(keep: Path | None, *, prefix: str = "ncb-bench-") -> Iterator[Path]:
    """Where a benchmark run works: `keep` (new, kept afterwards), else a temporary
    directory removed at the end."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=False)
        yield keep.resolve()
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)
