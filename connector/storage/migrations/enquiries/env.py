"""Alembic environment of the enquiries database."""

from connector.storage.migrations.env_common import run

run()
