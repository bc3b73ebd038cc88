"""Alembic environment of the records database."""

from connector.storage.migrations.env_common import run

run()
