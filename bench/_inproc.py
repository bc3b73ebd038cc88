"""A node run in-process (connector.node.service.Service), so its enquiry-log stats can be read."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import signal
from collections.abc import Sequence
from pathlib import Path

import orjson

from connector.logs import configure_logging
from connector.node.node import Node
from connector.node.service import Service
from connector.settings.config import load_settings


async def serve(config: Path, stats_out: Path, profile: cProfile.Profile | None) -> None:
    """As `ncb-connector run` does (connector.node.service.serve), less systemd and SIGHUP."""
    settings = load_settings(config)
    configure_logging(fmt=settings.logging.format, level=settings.logging.level)
    node = Node.from_settings(settings)
    node.load_live()
    service = Service(node)
    await service.start()
    enquiry_log = service.enquiry_log
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if profile is not None:
        profile.enable()
    try:
        await stop.wait()
    finally:
        if profile is not None:
            profile.disable()
        await service.stop()
        stats = enquiry_log.stats
        _write(
            stats_out,
            orjson.dumps(
                {"flushes": stats.flushes, "rows": stats.rows, "batch_sizes": stats.batch_sizes}
            ),
        )


def _write(path: Path, data: bytes) -> None:
    """After the node has stopped: nothing is left to block."""
    path.write_bytes(data)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._inproc", description=__doc__)
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--stats-out", type=Path, required=True)
    p.add_argument("--profile-out", type=Path, help="write a cProfile dump of the serving time")
    a = p.parse_args(argv)
    profile = cProfile.Profile() if a.profile_out else None
    asyncio.run(serve(a.config, a.stats_out, profile))
    if profile is not None:
        profile.dump_stats(a.profile_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
