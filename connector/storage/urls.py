"""Database URLs as admins write them, turned into the driver each use needs."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url

SCHEMES = ("sqlite", "postgresql")


def backend(url: str) -> str:
    """`sqlite` or `postgresql`; ValueError for anything else."""
    name = make_url(url).get_backend_name()
    if name == "postgres":
        name = "postgresql"
    if name not in SCHEMES:
        raise ValueError(
            f"unsupported database {name!r}: use sqlite:///FILE or postgresql://USER@HOST/DB"
        )
    return name


def sync_url(url: str) -> URL:
    """For command-line tools, imports and migrations: psycopg on PostgreSQL."""
    return _with_driver(url, "psycopg")


def async_url(url: str) -> URL:
    """For the serving node: asyncpg on PostgreSQL."""
    return _with_driver(url, "asyncpg")


def _with_driver(url: str, driver: str) -> URL:
    parsed = make_url(url)
    if backend(url) != "postgresql":
        return parsed
    return parsed.set(drivername=f"postgresql+{driver}")


def redacted(url: str) -> str:
    """For messages and logs: never the password."""
    return make_url(url).render_as_string(hide_password=True)


def sqlite_file(url: str | URL) -> Path | None:
    """The file a SQLite URL names; None for PostgreSQL or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)
