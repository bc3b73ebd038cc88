"""Shared fixtures: real nodes on loopback with real keys, TLS, databases and policies."""

# hypothesis is imported here, before any test runs: imported late (by its plugin's summary
# at the end of a run), its assertion rewriting hit CPython 3.11.7's "AST constructor
# recursion depth mismatch" after the name-matching tests.

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import hypothesis  # noqa: F401
import pytest
from support.databases import DatabaseUrl

from connector.demo import DemoNode, network
from connector.logs import configure_logging
from connector.storage import pgtemp

_numbers = itertools.count()


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


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pgtemp.Server]:
    """A PostgreSQL server of the test run's own, on loopback. Without PostgreSQL on the
    machine its tests are skipped, unless NCB_TEST_POSTGRES=required (as CI sets it)."""
    try:
        with pgtemp.running() as server:
            yield server
    except pgtemp.NoPostgres as exc:
        if os.environ.get("NCB_TEST_POSTGRES") == "required":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseUrl]:
    """Record and enquiry-log tests run on both backends."""
    if request.param == "sqlite":
        yield lambda name: f"sqlite:///{tmp_path / name}.db"
        return
    server: pgtemp.Server = request.getfixturevalue("pg_server")
    made: list[str] = []

    def make(name: str) -> str:
        made.append(f"t{os.getpid()}_{next(_numbers)}_{name}"[:60])
        return server.create_database(made[-1])

    yield make
    for database in made:
        server.drop_database(database)
