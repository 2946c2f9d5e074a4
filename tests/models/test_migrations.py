"""The migrations build exactly the models, on an empty Postgres schema and on SQLite, and unwinds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from models import Base
from models.database import SCHEMA_HEAD, alembic_head, downgrade, make_engine, schema_is_current, upgrade
from tests.conftest import create_schema, drop_schema, postgres_base_url, schema_url


@pytest.fixture(params=["sqlite", "postgres"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database with no tables at all."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine
        engine.dispose()
        return
    base = postgres_base_url()
    schema = create_schema(base)
    engine = make_engine(schema_url(base, schema))
    yield engine
    engine.dispose()
    drop_schema(base, schema)


def differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_upgrade_head_gives_exactly_the_models(empty_engine: Engine) -> None:
    upgrade(empty_engine)

    assert differences(empty_engine) == []
    assert schema_is_current(empty_engine)
    assert set(inspect(empty_engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}


def test_downgrade_base_removes_every_table_and_upgrade_works_again(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    downgrade(empty_engine)

    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}
    assert not schema_is_current(empty_engine)

    upgrade(empty_engine)
    assert differences(empty_engine) == []


def test_autogenerate_comparison_would_notice_a_missing_table(empty_engine: Engine) -> None:
    """Guards the test above: an empty database must differ from the models."""
    assert differences(empty_engine)


def test_the_schema_head_every_process_checks_against_is_alembics_head() -> None:
    assert alembic_head() == SCHEMA_HEAD
