"""Alembic environment: migrates the connection handed over by ``models.database``, or the database named by
``RECON_DATABASE_URL`` (default ``sqlite:///recon.db``) when run as ``alembic upgrade head``."""

from __future__ import annotations

import os

from alembic import context

from models import Base
from models.database import DEFAULT_URL, make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run migrations on a live connection; SQLite uses batch mode so ALTERs work."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = make_engine(os.environ.get("RECON_DATABASE_URL", DEFAULT_URL))
    with engine.begin() as own_connection:
        _migrate(own_connection)


def _migrate(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
