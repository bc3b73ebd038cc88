"""A throwaway PostgreSQL server on loopback, for the test suite, benchmarks and the demo."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg


class NoPostgres(RuntimeError):
    """No PostgreSQL server programs on this machine."""


def server_bindir() -> Path:
    """Where initdb and pg_ctl are: the newest Debian-packaged version, else the PATH."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise NoPostgres(
            "no PostgreSQL server (initdb) on this machine; install Debian's postgresql package"
        )
    return Path(initdb).parent


@dataclass(frozen=True, slots=True, kw_only=True)
class Server:
    port: int
    user: str = "postgres"

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # names are ours, never input
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(*, durable: bool = False) -> Iterator[Server]:
    """initdb into a temporary directory, start on 127.0.0.1 only, stop and delete on exit.
    PostgreSQL refuses to run as root; as root the server runs as the `postgres` user.
    `durable=False` turns fsync off: fine for tests, not for measuring commits."""
    bindir = server_bindir()
    as_user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="ncb-pg-"))
    data = root / "data"
    try:
        if as_user is not None:
            shutil.chown(root, as_user)
        subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=as_user,
        )
        port = _free_port()
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
            f"-c max_connections=200 -c shared_buffers=256MB"
        )
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        subprocess.run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            capture_output=True,
            user=as_user,
        )
        try:
            yield Server(port=port)
        finally:
            subprocess.run(
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                check=False,
                capture_output=True,
                user=as_user,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
