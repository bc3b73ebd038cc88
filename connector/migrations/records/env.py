"""Alembic environment of the records database."""

from connector.migrations.env_common import run

run()
