"""Connection limits and deadlines of the listeners (connector/server/connections.py), and
the budgets every repeated log line is under (rejectlog, liblog)."""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
import ssl
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from connector.demo import DemoNode, network
from connector.logs import configure_logging
from connector.server import connections
from connector.server.connections import address_key, listener_limits
from connector.server.liblog import route_library_errors
from connector.server.rejectlog import RateLimitedLog, RejectionLog
from connector.settings.config import Listener, Timeouts

IDENTITY = b"GET /v1/identity HTTP/1.1\r\nHost: node\r\n\r\n"


@asynccontextmanager
async def node(
    tmp_path: Path, timeouts: dict[str, float] | None = None, **peer: int
) -> AsyncIterator[DemoNode]:
    """DE alone, its peer listener under these limits."""

    def configure(_node_id: str, directory: Path) -> None:
        path = directory / "connector.yaml"
        config = yaml.safe_load(path.read_text())
        config["listen"]["peer"].update(peer)
        config["listen"]["timeouts"] = timeouts or {}
        path.write_text(yaml.safe_dump(config))

    async with network(tmp_path, ["DE"], configure) as net:
        yield net["DE"]


@functools.cache
def _tls() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def connect(
    de: DemoNode, source: str = "127.0.0.1", *, tls: bool = True
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1",
        de.service.peer_port,
        local_addr=(source, 0),
        ssl=_tls() if tls else None,
        server_hostname="node" if tls else None,
    )


async def closed_after(reader: asyncio.StreamReader, limit: float = 5.0) -> float:
    """Seconds until the server closes the connection (reading whatever it sends)."""
    started = time.monotonic()
    async with asyncio.timeout(limit):
        while True:
            try:
                if not await reader.read(65536):
                    break
            except (ConnectionResetError, ssl.SSLError):
                break
    return time.monotonic() - started


async def response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


def events(logs: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


FAST = {"tls_handshake_s": 0.5, "header_s": 0.5, "body_s": 0.5, "keepalive_s": 1.5}


# --- deadlines ---------------------------------------------------------------------------


async def test_a_connection_that_never_starts_tls_is_closed(tmp_path: Path) -> None:
    async with node(tmp_path, FAST) as de:
        with structlog.testing.capture_logs() as logs:
            reader, writer = await connect(de, tls=False)
            took = await closed_after(reader)
            writer.close()
    assert 0.4 < took < 1.5
    assert [e["code"] for e in events(logs, "connection_closed")] == ["tls_handshake_timeout"]


async def test_a_head_sent_a_byte_at_a_time_is_cut_off(tmp_path: Path) -> None:
    async with node(tmp_path, FAST) as de:
        with structlog.testing.capture_logs() as logs:
            reader, writer = await connect(de)
            started = time.monotonic()

            async def trickle() -> None:
                for byte in IDENTITY[:-2]:
                    writer.write(bytes([byte]))
                    await asyncio.sleep(0.05)

            sender = asyncio.create_task(trickle())
            await closed_after(reader)
            took = time.monotonic() - started
            sender.cancel()
            writer.close()
    assert 0.4 < took < 1.5
    assert [e["code"] for e in events(logs, "connection_closed")] == ["head_timeout"]


async def test_a_body_sent_a_byte_at_a_time_is_cut_off(tmp_path: Path) -> None:
    async with node(tmp_path, FAST) as de:
        with structlog.testing.capture_logs() as logs:
            reader, writer = await connect(de)
            writer.write(
                b"POST /v1/query HTTP/1.1\r\nHost: node\r\nContent-Type: application/jose\r\n"
                b"Content-Length: 1000\r\n\r\n"
            )
            started = time.monotonic()

            async def trickle() -> None:
                while True:
                    writer.write(b"x")
                    await asyncio.sleep(0.05)

            sender = asyncio.create_task(trickle())
            await closed_after(reader)
            took = time.monotonic() - started
            sender.cancel()
            writer.close()
            await asyncio.sleep(0.1)
    assert 0.4 < took < 1.5
    assert [e["code"] for e in events(logs, "connection_closed")] == ["body_timeout"]
    assert not events(logs, "request_failed")


async def test_keep_alive_outlives_the_header_timeout_and_ends_quietly(tmp_path: Path) -> None:
    """Between requests a connection may idle for keepalive_s, longer than a head may take;
    then it is closed without a log line: that is how keep-alive ends."""
    async with node(tmp_path, FAST) as de:
        with structlog.testing.capture_logs() as logs:
            reader, writer = await connect(de)
            writer.write(IDENTITY)
            assert (await response(reader)).startswith(b"HTTP/1.1 200")
            await asyncio.sleep(1.0)  # longer than header_s
            writer.write(IDENTITY)
            assert (await response(reader)).startswith(b"HTTP/1.1 200")
            took = await closed_after(reader)
            writer.close()
    assert 1.2 < took < 2.5
    assert events(logs, "connection_closed") == []


# --- caps ----------------------------------------------------------------------------------


async def test_one_address_over_its_cap_is_refused_at_once_others_are_not(
    tmp_path: Path,
) -> None:
    async with node(tmp_path, max_connections=100, max_connections_per_address=4) as de:
        with structlog.testing.capture_logs() as logs:
            held = [await connect(de, "127.0.0.5", tls=False) for _ in range(4)]
            reader, writer = await connect(de, "127.0.0.5", tls=False)
            assert await closed_after(reader, 1.0) < 0.5
            writer.close()
            # Another address still gets in, and is answered.
            reader, writer = await connect(de, "127.0.0.6")
            writer.write(IDENTITY)
            assert (await response(reader)).startswith(b"HTTP/1.1 200")
            writer.close()
            for _, w in held:
                w.close()
    refused = events(logs, "connection_refused")
    assert [(e["code"], e["remote"]) for e in refused] == [("per_address", "127.0.0.5")]


async def test_a_full_listener_evicts_the_oldest_connection_without_a_request(
    tmp_path: Path,
) -> None:
    timeouts = {"tls_handshake_s": 30.0, "header_s": 30.0, "body_s": 30.0}
    async with node(tmp_path, timeouts, max_connections=6, max_connections_per_address=6) as de:
        with structlog.testing.capture_logs() as logs:
            idle = [await connect(de, f"127.0.0.{10 + i}", tls=False) for i in range(6)]
            reader, writer = await connect(de, "127.0.0.30")
            writer.write(IDENTITY)
            assert (await response(reader)).startswith(b"HTTP/1.1 200")
            # The oldest idle one made room.
            assert await closed_after(idle[0][0], 1.0) < 1.0
            writer.close()
            for _, w in idle:
                w.close()
    evicted = events(logs, "connection_closed")
    assert [(e["code"], e["remote"]) for e in evicted] == [("evicted", "127.0.0.10")]


async def test_a_full_listener_whose_connections_all_carry_requests_refuses(
    tmp_path: Path,
) -> None:
    timeouts = {"body_s": 30.0}
    async with node(tmp_path, timeouts, max_connections=3, max_connections_per_address=3) as de:
        with structlog.testing.capture_logs() as logs:
            busy = []
            for i in range(3):  # each in the middle of a body: not to be evicted
                r, w = await connect(de, f"127.0.0.{40 + i}")
                w.write(
                    b"POST /v1/query HTTP/1.1\r\nHost: node\r\n"
                    b"Content-Type: application/jose\r\nContent-Length: 100\r\n\r\nx"
                )
                await w.drain()
                busy.append((r, w))
            await asyncio.sleep(0.2)
            reader, writer = await connect(de, "127.0.0.50", tls=False)
            assert await closed_after(reader, 1.0) < 0.5
            writer.close()
            for _, w in busy:
                w.close()
    assert [e["code"] for e in events(logs, "connection_refused")] == ["total"]


async def test_300_clients_gone_mid_body_leave_no_tracebacks(tmp_path: Path) -> None:
    configure_logging(fmt="json", level="info")
    async with node(tmp_path) as de:
        with structlog.testing.capture_logs() as logs:
            for _ in range(6):

                async def one() -> None:
                    _, writer = await connect(de, "127.0.0.7")
                    writer.write(
                        b"POST /v1/query HTTP/1.1\r\nHost: node\r\n"
                        b"Content-Type: application/jose\r\nContent-Length: 1000\r\n\r\nabc"
                    )
                    await writer.drain()
                    await asyncio.sleep(0.05)
                    writer.transport.abort()

                await asyncio.gather(*(one() for _ in range(50)))
            await asyncio.sleep(0.3)
            await de.service.stop()
    assert events(logs, "request_failed") == []
    assert not [e for e in logs if "exc_info" in e or "exception" in e]
    assert len(events(logs, "client_disconnected")) == 5
    summary = events(logs, "client_disconnected_suppressed")
    assert sum(e["disconnected"] for e in summary) == 295


def test_an_ipv6_address_counts_as_its_64() -> None:
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("fe80::1%eth0") == "fe80::/64"


# --- the file limit ------------------------------------------------------------------------


def test_caps_shrink_to_fit_a_low_file_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> None:
        raise OSError(1, "Operation not permitted")  # as under the unit's seccomp filter

    monkeypatch.setattr(resource, "getrlimit", lambda _r: (2048, 2048))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    with structlog.testing.capture_logs() as logs:
        peer, local = listener_limits(Listener(port=0), Listener(port=0), Timeouts())
    used = peer.max_connections + peer.backlog + local.max_connections + local.backlog
    assert used <= 1024
    assert peer.max_per_address <= peer.max_connections
    assert [e["event"] for e in logs] == ["connection_caps_lowered"]


def test_the_soft_limit_is_raised_to_what_the_caps_need(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda _r: (1024, 524288))
    monkeypatch.setattr(resource, "setrlimit", lambda _r, v: calls.append(v))
    with structlog.testing.capture_logs() as logs:
        peer, local = listener_limits(Listener(port=0), Listener(port=0), Timeouts())
    assert (peer.max_connections, peer.max_per_address) == (
        connections.PEER_MAX_CONNECTIONS,
        connections.PEER_MAX_PER_ADDRESS,
    )
    assert local.max_connections == connections.LOCAL_MAX_CONNECTIONS
    assert calls == [(2 * (2048 + 1024 + 512 + 128), 524288)]
    assert logs == []


# --- log budgets ---------------------------------------------------------------------------


def test_many_addresses_share_one_budget_too() -> None:
    now = [0.0]
    limited = RateLimitedLog("thing", clock=lambda: now[0], per_key=2, total=10)
    with structlog.testing.capture_logs() as logs:
        for i in range(1000):
            limited(f"192.0.2.{i % 250}", "code", n=i)
        now[0] = 61.0
        limited.tick()
    assert len(events(logs, "thing")) == 10
    (summary,) = events(logs, "thing_suppressed")
    assert summary["remote"] == "*"
    assert summary["suppressed"] == 990
    assert summary["keys"] == 250
    assert len(summary["top"]) == 5


def test_errors_of_ours_keep_their_traceback_but_not_a_thousand_of_them() -> None:
    rejections = RejectionLog(clock=lambda: 0.0)
    with structlog.testing.capture_logs() as logs:
        for _ in range(1000):
            try:
                raise ValueError("a bug")
            except ValueError:
                rejections.failed(remote="192.0.2.1", path="/v1/query")
        rejections.flush()
    failed = events(logs, "request_failed")
    assert len(failed) == 5
    assert failed[0]["exc_info"] is True
    assert failed[0]["code"] == "ValueError"
    (summary,) = events(logs, "request_failed_suppressed")
    assert summary["failed"] == 995


async def test_a_window_is_summarised_when_it_ends_without_another_event() -> None:
    limited = RateLimitedLog("thing", clock=time.monotonic, per_key=1, window_s=0.2)
    with structlog.testing.capture_logs() as logs:
        for _ in range(10):
            limited("192.0.2.1", "code")
        await asyncio.sleep(0.4)
    assert [(e["event"], e.get("suppressed")) for e in logs] == [
        ("thing", None),
        ("thing_suppressed", 9),
    ]


async def test_the_loops_and_libraries_errors_are_lines_under_a_budget() -> None:
    loop = asyncio.get_running_loop()
    with structlog.testing.capture_logs() as logs:
        undo = route_library_errors(loop)
        try:
            for _ in range(1000):
                loop.call_exception_handler(
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": OSError(24, "Too many open files"),
                    }
                )
                logging.getLogger("asyncio").warning("socket.send() raised exception.")
                logging.getLogger("aiohttp.server").error(
                    "Error handling request from %s", "192.0.2.1", exc_info=ValueError("x")
                )
        finally:
            undo()
    loop_errors = events(logs, "loop_error")
    assert len(loop_errors) == 5
    assert loop_errors[0]["error"] == "OSError: [Errno 24] Too many open files"
    assert "exc_info" not in loop_errors[0]  # an OSError: no traceback
    assert sum(e["errors"] for e in events(logs, "loop_error_suppressed")) == 995
    library = events(logs, "library_log")
    assert len(library) == 10
    assert {e["kind"] for e in library} == {
        "socket.send() raised exception.",
        "Error handling request from %s",
    }
    assert sum(e["lines"] for e in events(logs, "library_log_suppressed")) == 1990
    # Undone: the loop's default handler and the loggers' propagation are back.
    assert loop.get_exception_handler() is None
    assert logging.getLogger("asyncio").propagate
