"""Idle and slow-header connections against a listener on loopback, as a separate process.

    python tests/support/slowloris.py --port 8443 --tls --seconds 25 \\
        --group 127.0.0.1:1000:idle --group 127.0.0.1:1000:slow ...

Each group opens COUNT connections from SOURCE (a loopback address: 127.0.0.0/8 may be
bound as a client's source address on Linux). `idle` connects and sends nothing; `slow`
does the TLS handshake (with --tls) and then sends a request head one byte a second; `body`
sends a whole head announcing a body and then the body one byte a second. A connection the
server closes is opened again after a second, as an attacker would, until the time is up.
Only loopback addresses are accepted. Prints one JSON object of counts at the end."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import resource
import ssl
import sys
import time
from dataclasses import dataclass, field

HEAD = (
    b"POST /v1/query HTTP/1.1\r\nHost: node\r\nContent-Type: application/jose\r\n"
    + b"X-Padding: "
    + b"a" * 4000
    + b"\r\n\r\n"
)
BODY_HEAD = b"POST /v1/query HTTP/1.1\r\nHost: node\r\nContent-Type: application/jose\r\n"


@dataclass
class Stats:
    attempts: int = 0
    connected: int = 0
    refused: int = 0  # closed before or during the handshake, or failed to connect
    closed_by_server: int = 0
    open_now: int = 0
    open_max: int = 0
    errors: dict[str, int] = field(default_factory=dict)


async def worker(
    host: str,
    port: int,
    source: str,
    mode: str,
    tls: ssl.SSLContext | None,
    end: float,
    stats: Stats,
    start_delay: float,
) -> None:
    await asyncio.sleep(start_delay)
    while time.monotonic() < end:
        stats.attempts += 1
        writer = None
        try:
            use_tls = tls if mode != "idle" else None
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host,
                    port,
                    local_addr=(source, 0),
                    ssl=use_tls,
                    server_hostname="node" if use_tls else None,
                ),
                timeout=15,
            )
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            stats.refused += 1
            name = type(exc).__name__
            stats.errors[name] = stats.errors.get(name, 0) + 1
            await asyncio.sleep(1.0)
            continue
        stats.connected += 1
        stats.open_now += 1
        stats.open_max = max(stats.open_max, stats.open_now)
        try:
            if mode == "idle":
                await asyncio.wait_for(reader.read(1), timeout=max(0.01, end - time.monotonic()))
            else:
                data = HEAD if mode == "slow" else BODY_HEAD + b"Content-Length: 60000\r\n\r\n"
                start = 0 if mode == "slow" else len(data)
                if start:
                    writer.write(data)
                i = 0
                while time.monotonic() < end:
                    writer.write(b"x" if start else data[i : i + 1])
                    i += 1
                    await writer.drain()
                    # One byte a second; a read that ends means the server closed.
                    with contextlib.suppress(asyncio.TimeoutError):
                        got = await asyncio.wait_for(reader.read(1024), timeout=1.0)
                        if not got:
                            raise ConnectionResetError("closed")
        except TimeoutError:
            pass  # our own time is up
        except (OSError, ssl.SSLError):
            pass
        finally:
            stats.open_now -= 1
            if writer is not None:
                writer.transport.abort()
        if time.monotonic() < end:
            stats.closed_by_server += 1
            await asyncio.sleep(1.0)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--ramp", type=float, default=2.0)
    parser.add_argument("--group", action="append", required=True, help="SOURCE:COUNT:MODE")
    args = parser.parse_args()
    if not ipaddress.ip_address(args.host).is_loopback:
        sys.exit("loopback only")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = None
    if args.tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    end = time.monotonic() + args.seconds
    stats = Stats()
    tasks = []
    groups = [g.split(":") for g in args.group]
    total = sum(int(count) for _, count, _ in groups)
    n = 0
    for source, count, mode in groups:
        if not ipaddress.ip_address(source).is_loopback or mode not in ("idle", "slow", "body"):
            sys.exit(f"bad group {source}:{count}:{mode}")
        for _ in range(int(count)):
            delay = args.ramp * n / total
            n += 1
            tasks.append(
                asyncio.create_task(
                    worker(args.host, args.port, source, mode, ctx, end, stats, delay)
                )
            )
    print(json.dumps({"started": total}), flush=True)
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(stats.__dict__), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
