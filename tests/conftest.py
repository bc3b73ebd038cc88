"""Shared fixtures: real nodes on loopback with real keys, TLS, SQLite files and policies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from connector.demo import DemoNode, network
from connector.logs import configure_logging


@pytest.fixture(autouse=True)
def _quiet_logs() -> None:
    configure_logging(fmt="json", level="warning")


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[dict[str, DemoNode]]:
    """FR and DE, trusting each other, with the demo's sample records and policies."""
    async with network(tmp_path, ["FR", "DE"]) as net:
        yield net


@pytest.fixture
async def trio(tmp_path: Path) -> AsyncIterator[dict[str, DemoNode]]:
    """FR, DE and GB (GB is outside the Schengen group of the demo policy)."""
    async with network(tmp_path, ["FR", "DE", "GB"]) as net:
        yield net


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s
