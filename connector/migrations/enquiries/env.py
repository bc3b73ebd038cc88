"""Alembic environment of the enquiries database."""

from connector.migrations.env_common import run

run()
