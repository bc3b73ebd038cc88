"""The systemd unit, its sysusers/tmpfiles snippets, and the sd_notify client."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from connector.node.sdnotify import SystemdNotifier, clock_monotonic_usec
from connector.server.connections import (
    LOCAL_BACKLOG,
    LOCAL_MAX_CONNECTIONS,
    PEER_BACKLOG,
    PEER_MAX_CONNECTIONS,
)

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "systemd"
UNIT = SYSTEMD_DIR / "ncb-connector.service"
SYSUSERS = SYSTEMD_DIR / "ncb-connector.sysusers"
TMPFILES = SYSTEMD_DIR / "ncb-connector.tmpfiles"
INSTALLED_BINARY = "/usr/bin/ncb-connector"

# Measured with systemd 252 (Debian 12): 1.1. The margin absorbs newer systemd
# versions that score extra settings; a real loosening of the sandbox exceeds it.
MAX_EXPOSURE = 2.0


# ---------------------------------------------------------------------------
# The unit file itself


def _unit_settings(text: str) -> dict[tuple[str, str], list[str]]:
    """Section/key → values in order (systemd keys may repeat; configparser can't say so)."""
    settings: dict[tuple[str, str], list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        settings.setdefault((section, key.strip()), []).append(value.strip())
    return settings


def test_unit_declares_the_contract() -> None:
    s = _unit_settings(UNIT.read_text())

    def one(key: str) -> str:
        values = s[("Service", key)]
        assert len(values) == 1, (key, values)
        return values[0]

    config = "--config /etc/ncb-connector/connector.yaml"
    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert one("ExecStartPre") == f"{INSTALLED_BINARY} config check {config}"
    assert one("ExecStart") == f"{INSTALLED_BINARY} run {config}"
    # Order matters: the check must fail the reload before any signal is sent.
    assert s[("Service", "ExecReload")] == [
        f"{INSTALLED_BINARY} config check {config}",
        "/bin/kill -HUP $MAINPID",
    ]
    assert one("KillSignal") == "SIGTERM"
    assert one("TimeoutStopSec") == "30"
    assert one("Restart") == "on-failure"
    assert one("RestartPreventExitStatus") == "2"  # a refused config or log: act, not retry
    assert one("WatchdogSec") == "30s"  # the node pings it from its event loop
    assert one("User") == one("Group") == "ncb-connector"
    assert ("Service", "DynamicUser") not in s
    assert one("StateDirectory") == one("ConfigurationDirectory") == "ncb-connector"
    assert one("Environment") == "NCB_CONNECTOR_CONFIG=/etc/ncb-connector/connector.yaml"
    assert one("CapabilityBoundingSet") == ""
    assert one("UMask") == "0077"
    # Above what the listeners' caps need with their defaults (connector/server/connections.py).
    assert int(one("LimitNOFILE")) >= 2 * (
        PEER_MAX_CONNECTIONS + PEER_BACKLOG + LOCAL_MAX_CONNECTIONS + LOCAL_BACKLOG
    )
    assert one("ProtectSystem") == "strict"
    assert one("RestrictAddressFamilies").split() == ["AF_INET", "AF_INET6", "AF_UNIX"]
    assert s[("Service", "SystemCallFilter")] == ["@system-service", "~@privileged @resources"]
    for key in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
        "RestrictNamespaces",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "LockPersonality",
        "MemoryDenyWriteExecute",
    ):
        assert one(key) == "yes", key
    assert one("SystemCallArchitectures") == "native"


def _verifiable_unit(tmp_path: Path) -> Path:
    """A copy of the unit whose Exec paths exist on this machine.

    `systemd-analyze verify` checks that every Exec binary is executable;
    /usr/bin/ncb-connector only exists once the package is installed.
    """
    text = UNIT.read_text()
    assert text.count(INSTALLED_BINARY) == 3  # ExecStartPre, ExecStart, ExecReload
    replacement = shutil.which("ncb-connector") or "/bin/true"
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(INSTALLED_BINARY, replacement))
    return copy


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    return tool


def _supports(tool: str, verb: str, option: str) -> bool:
    help_text = subprocess.run(
        [tool, verb, "--help"], capture_output=True, text=True, check=False
    ).stdout
    return option in help_text


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = _analyze()
    unit = _verifiable_unit(tmp_path)
    args = [tool, "verify", "--man=no"]
    if _supports(tool, "verify", "--recursive-errors"):
        args.append("--recursive-errors=no")  # the host's own units are not under test
    proc = subprocess.run(
        [*args, str(unit)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )
    # Filter, consciously: only lines about *our* unit count. Loading
    # network-online.target/multi-user.target can make some hosts print
    # complaints about their own unit files, which say nothing about ours.
    ours = [line for line in proc.stderr.splitlines() if "ncb-connector" in line]
    assert ours == [], proc.stderr
    assert proc.returncode == 0, proc.stderr


def test_unit_security_exposure_is_low(tmp_path: Path) -> None:
    tool = _analyze()
    if not _supports(tool, "security", "--offline"):
        pytest.skip("systemd-analyze security --offline needs systemd >= 250")
    unit = _verifiable_unit(tmp_path)
    proc = subprocess.run(
        [tool, "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_COLORS": "0"},
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, proc.stdout


def test_sysusers_and_tmpfiles_snippets_apply(tmp_path: Path) -> None:
    sysusers = shutil.which("systemd-sysusers")
    tmpfiles = shutil.which("systemd-tmpfiles")
    if sysusers is None or tmpfiles is None:
        pytest.skip("systemd-sysusers/systemd-tmpfiles are not installed")
    if os.geteuid() != 0:
        pytest.skip("applying tmpfiles ownership needs root")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run([sysusers, f"--root={root}", str(SYSUSERS)], check=True, capture_output=True)
    passwd = (root / "etc" / "passwd").read_text().splitlines()
    entry = next(line.split(":") for line in passwd if line.startswith("ncb-connector:"))
    uid, gid, home = int(entry[2]), int(entry[3]), entry[5]
    assert home == "/var/lib/ncb-connector"
    assert uid != 0

    proc = subprocess.run(
        [tmpfiles, f"--root={root}", "--create", str(TMPFILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    etc = (root / "etc" / "ncb-connector").stat()
    assert (oct(etc.st_mode & 0o7777), etc.st_uid, etc.st_gid) == (oct(0o750), uid, gid)
    state = (root / "var" / "lib" / "ncb-connector").stat()
    assert (oct(state.st_mode & 0o7777), state.st_uid, state.st_gid) == (oct(0o700), uid, gid)
    backups = (root / "var" / "backups" / "ncb-connector").stat()  # ncb-connector-backup.service
    assert (oct(backups.st_mode & 0o7777), backups.st_uid, backups.st_gid) == (oct(0o700), uid, gid)


# What MemoryDenyWriteExecute=yes means for Python, checked without systemd: a
# launcher puts the same restriction on itself, execs a fresh interpreter, and that
# one loads the native code the connector depends on. Two ways to impose it:
# - "seccomp": systemd's own filter (what systemd <= 254 always uses): EPERM for
#   mmap with PROT_WRITE|PROT_EXEC, mprotect/pkey_mprotect with PROT_EXEC, shmat
#   with SHM_EXEC. Stricter than the kernel's flag: no mprotect to exec at all.
# - "prctl": the kernel's PR_SET_MDWE (Linux >= 6.3), which newer systemd prefers.
_MDWE_LAUNCH = """
import ctypes, os, platform, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
mode = sys.argv[1]
if mode == "prctl":
    if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        sys.exit(77)
else:
    # AUDIT_ARCH, then syscall numbers of mmap, mprotect, pkey_mprotect, shmat
    arches = {
        "x86_64": (0xC000003E, 9, 10, 329, 30),
        "aarch64": (0xC00000B7, 222, 226, 288, 196),
    }
    if platform.machine() not in arches:
        sys.exit(77)
    arch, mmap_nr, mprotect_nr, pkey_nr, shmat_nr = arches[platform.machine()]
    LD, JEQ, AND, RET = 0x20, 0x15, 0x54, 0x06
    ALLOW, DENY = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO|EPERM
    ARG2 = 16 + 2 * 8  # low 32 bits of seccomp_data.args[2] (little endian)
    # (code, jt, jf, k); jt/jf count instructions to skip
    prog = [
        (LD, 0, 0, 4), (JEQ, 1, 0, arch), (RET, 0, 0, ALLOW),
        (LD, 0, 0, 0),
        (JEQ, 0, 3, mmap_nr),
        (LD, 0, 0, ARG2), (AND, 0, 0, 0x6), (JEQ, 9, 10, 0x6),     # PROT_WRITE|PROT_EXEC
        (JEQ, 1, 0, mprotect_nr), (JEQ, 0, 3, pkey_nr),
        (LD, 0, 0, ARG2), (AND, 0, 0, 0x4), (JEQ, 4, 5, 0x4),      # PROT_EXEC
        (JEQ, 0, 4, shmat_nr),
        (LD, 0, 0, ARG2), (AND, 0, 0, 0o100000), (JEQ, 0, 1, 0o100000),  # SHM_EXEC
        (RET, 0, 0, DENY), (RET, 0, 0, ALLOW),
    ]
    code = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(code)
    fprog = struct.pack("HxxxxxxP", len(prog), ctypes.addressof(buf))
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        sys.exit(77)
    if libc.prctl(22, 2, ctypes.c_char_p(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        sys.exit(77)
os.execv(sys.executable, [sys.executable, "-c", sys.argv[2]])
"""
_MDWE_PROBE = """
import ctypes, importlib, mmap
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except OSError:
    pass
else:
    raise SystemExit("W+X mapping allowed: MDWE is not in force")
# libffi closures (ctypes/cffi callbacks) must not need W+X pages
assert ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)(41) == 42
for name in ("ssl", "sqlite3", "nacl.signing", "cryptography.x509", "pydantic", "orjson",
             "yaml", "aiohttp", "sqlalchemy", "aiosqlite", "structlog", "connector.node.sdnotify"):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        pass
import nacl.signing, sqlite3, ssl
assert len(nacl.signing.SigningKey.generate().sign(b"x")) == 65
sqlite3.connect(":memory:").execute("select 1").fetchall()
ssl.create_default_context()
print("ok")
"""


@pytest.mark.parametrize("mode", ["seccomp", "prctl"])
def test_python_runs_under_memory_deny_write_execute(mode: str) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    proc = subprocess.run(
        [sys.executable, "-c", _MDWE_LAUNCH, mode, _MDWE_PROBE],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    if proc.returncode == 77:
        pytest.skip(f"cannot impose MDWE via {mode} on this kernel/architecture")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


# ---------------------------------------------------------------------------
# SystemdNotifier against real sockets


class _Clock:
    def __init__(self, value: int) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.value


def _receive(sock: socket.socket) -> bytes:
    sock.settimeout(2.0)
    return sock.recv(65536)


@pytest.fixture
def fs_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify.sock"
    spare: str | None = None
    if len(os.fsencode(path)) >= 100:  # pytest's tmp_path can exceed sun_path's 108 bytes
        spare = tempfile.mkdtemp(prefix="sdn-")
        path = Path(spare) / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        try:
            yield sock, str(path)
        finally:
            if spare is not None:
                shutil.rmtree(spare, ignore_errors=True)


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    name = f"ncb-connector-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        yield sock, "@" + name


def test_ready_reloading_stopping_over_a_path_socket(
    fs_socket: tuple[socket.socket, str],
) -> None:
    sock, address = fs_socket
    clock = _Clock(123_456_789)
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": address}, monotonic_usec=clock)
    assert notifier.enabled

    assert notifier.ready() is True
    assert _receive(sock) == b"READY=1"

    assert notifier.reloading() is True
    assert _receive(sock) == b"RELOADING=1\nMONOTONIC_USEC=123456789"
    assert clock.calls == 1

    assert notifier.ready(status="serving 3 peers") is True
    assert _receive(sock) == b"READY=1\nSTATUS=serving 3 peers"

    assert notifier.stopping() is True
    assert _receive(sock) == b"STOPPING=1"

    assert notifier.status("draining 2 requests") is True
    assert _receive(sock) == b"STATUS=draining 2 requests"

    assert notifier.watchdog() is True
    assert _receive(sock) == b"WATCHDOG=1"


def test_abstract_socket(abstract_socket: tuple[socket.socket, str]) -> None:
    sock, address = abstract_socket
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": address}, monotonic_usec=lambda: 42)
    assert notifier.ready("up") is True
    assert _receive(sock) == b"READY=1\nSTATUS=up"
    assert notifier.reloading() is True
    assert _receive(sock) == b"RELOADING=1\nMONOTONIC_USEC=42"


def test_status_is_kept_on_one_line(fs_socket: tuple[socket.socket, str]) -> None:
    sock, address = fs_socket
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": address})
    notifier.status("policy FR.yaml:12 broken\nkeeping the old one\r\nREADY=1")
    assert _receive(sock) == b"STATUS=policy FR.yaml:12 broken keeping the old one  READY=1"


def test_default_clock_is_clock_monotonic_in_microseconds(
    fs_socket: tuple[socket.socket, str],
) -> None:
    sock, address = fs_socket
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": address})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = clock_monotonic_usec()
    lines = _receive(sock).decode().splitlines()
    assert lines[0] == "RELOADING=1"
    key, _, value = lines[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


@pytest.mark.parametrize("env", [{}, {"NOTIFY_SOCKET": ""}])
def test_without_notify_socket_everything_is_a_no_op(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_socket(*_args: object, **_kwargs: object) -> socket.socket:
        raise AssertionError("no socket may be opened without NOTIFY_SOCKET")

    monkeypatch.setattr(socket, "socket", no_socket)
    clock = _Clock(1)
    notifier = SystemdNotifier.from_env(env, monotonic_usec=clock)
    assert not notifier.enabled
    with capture_logs() as logs:
        assert notifier.ready("x") is False
        assert notifier.reloading() is False
        assert notifier.stopping() is False
        assert notifier.status("x") is False
        assert notifier.watchdog() is False
    assert logs == []


def test_send_failure_is_logged_not_raised(tmp_path: Path) -> None:
    missing = str(tmp_path / "gone.sock")
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": missing})
    with capture_logs() as logs:
        assert notifier.stopping() is False
    assert len(logs) == 1
    assert logs[0]["event"] == "sd_notify_failed"
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["socket"] == missing
    assert logs[0]["message"] == "STOPPING=1"
    assert logs[0]["error"]


@pytest.mark.parametrize("address", ["vsock:2:1234", "relative/path.sock", "@", "/" + "x" * 200])
def test_unusable_address_disables_and_logs(address: str) -> None:
    with capture_logs() as logs:
        notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": address})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert [entry["event"] for entry in logs] == ["sd_notify_socket_unsupported"]
    assert logs[0]["socket"] == address


def test_watchdog_interval_only_when_meant_for_this_process() -> None:
    pid = os.getpid()
    env = {"WATCHDOG_USEC": "30000000"}
    assert SystemdNotifier.from_env(env).watchdog_usec == 30_000_000
    assert SystemdNotifier.from_env({**env, "WATCHDOG_PID": str(pid)}).watchdog_usec == 30_000_000
    assert SystemdNotifier.from_env({**env, "WATCHDOG_PID": str(pid + 1)}).watchdog_usec is None
    assert SystemdNotifier.from_env({"WATCHDOG_USEC": "soon"}).watchdog_usec is None
    assert SystemdNotifier.from_env({}).watchdog_usec is None


async def test_a_running_node_pings_the_watchdog_from_its_event_loop(
    tmp_path: Path, fs_socket: tuple[socket.socket, str]
) -> None:
    """With WatchdogSec= (WATCHDOG_USEC), the node sends WATCHDOG=1 twice per interval from
    its event loop: a loop that stops turning stops the pings, and systemd restarts it."""
    from connector.node.init import init_node
    from connector.node.node import Node
    from connector.node.service import Service
    from connector.settings.config import load_settings

    sock, address = fs_socket
    sock.setblocking(False)
    paths = init_node(tmp_path / "DE", node="DE", peer_port=0, local_port=0)
    node = Node.from_settings(load_settings(paths.config))
    node.load_live()
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"})
    service = Service(node, notifier=notifier, shutdown_timeout=1.0)
    await service.start()
    try:
        await asyncio.sleep(1.0)  # 0.2 s between pings: four or five of them
        pings = 0
        while True:
            try:
                pings += sock.recv(4096) == b"WATCHDOG=1"
            except BlockingIOError:
                break
        assert 2 <= pings <= 7, pings
        time.sleep(0.6)  # noqa: ASYNC251 - the loop held on purpose: no ping can go meanwhile
        with pytest.raises(BlockingIOError):
            sock.recv(4096)
    finally:
        await service.stop()
