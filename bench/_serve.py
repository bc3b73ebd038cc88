"""Keeps a benchmark's helper server up until the orchestrator sends SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web


async def until_signalled(runner: web.AppRunner) -> None:
    """Wait for SIGTERM/SIGINT, then clean the runner up (its sites already started)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
