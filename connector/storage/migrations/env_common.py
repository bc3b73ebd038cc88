"""What both databases' Alembic environments run: migrations on the connection handed in."""

from __future__ import annotations

from alembic import context


def run() -> None:
    config = context.config
    context.configure(
        connection=config.attributes["connection"],
        version_table=config.attributes["version_table"],
        render_as_batch=True,
    )  # SQLite alters tables by copying them
    with context.begin_transaction():
        context.run_migrations()
