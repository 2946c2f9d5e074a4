"""Database engines, sessions and schema upgrades for SQLite (the embedded default) and Postgres."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Engine, Insert, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from reconciliation.errors import DatabaseRefused, DatabaseUnavailable, FixConfiguration

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "alembic"
DEFAULT_URL = "sqlite:///recon.db"
#: The newest migration's revision: a process checks the schema against it without loading Alembic (a test
#: keeps it equal to Alembic's head).
SCHEMA_HEAD = "0005"


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` / ``postgres://`` and point them at psycopg 3; reject what is not a URL."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url.removeprefix(prefix)
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a port that is not a number raises only when read
    except (ArgumentError, ValueError):
        raise FixConfiguration(f"not a database URL: {without_password(url)!r} (try sqlite:///recon.db)") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise FixConfiguration(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")
    return url


def without_password(url: str) -> str:
    """``url`` with any password replaced by ``***``, even when it does not parse."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", url)


def make_engine(url: str, *, pre_ping: bool = True, **options: Any) -> Engine:
    """An engine for ``url``. SQLite transactions begin IMMEDIATE so concurrent writers queue, not fail.

    ``pre_ping`` checks a pooled Postgres connection before each use (a round trip per checkout): right for a
    bot or a person, who should not see one failure after a database restart; a worker, which retries a task on
    ``DatabaseUnavailable``, goes without it.
    """
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **options)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=pre_ping, **options)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # let the "begin" hook issue BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (reports are read after the write)."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configuration pointing at the project's migrations, optionally bound to ``connection``."""
    from alembic.config import Config  # noqa: PLC0415 - Alembic only when migrating (it costs start-up time)

    if not (MIGRATIONS / "env.py").exists():
        raise FixConfiguration(f"migrations not found at {MIGRATIONS}: run from a checkout of the project")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``."""
    from alembic import command  # noqa: PLC0415

    with _translated_connect_errors(engine), engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Take the schema back to ``revision``."""
    from alembic import command  # noqa: PLC0415

    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), revision)


def schema_is_current(engine: Engine) -> bool:
    """True when the database is at the newest migration (``SCHEMA_HEAD``)."""
    with _translated_connect_errors(engine), engine.connect() as connection:
        if not engine.dialect.has_table(connection, "alembic_version"):
            return False
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_HEAD


def alembic_head() -> str | None:
    """The newest revision among the migrations, as Alembic reads it."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def ensure_schema(engine: Engine) -> None:
    """Upgrade SQLite automatically; on Postgres, refuse to run on an old schema and say what to do."""
    if schema_is_current(engine):
        return
    if engine.dialect.name == "sqlite":
        upgrade(engine)
        return
    raise FixConfiguration("the database schema is not current: run `recon db upgrade`")


@contextmanager
def _translated_connect_errors(engine: Engine) -> Iterator[None]:
    with translated_errors(engine.url.render_as_string(hide_password=True)):
        yield


@contextmanager
def translated_errors(where: str) -> Iterator[None]:
    """Database errors raised inside become the project's: unavailable (retry later) or refused (stop)."""
    try:
        yield
    except (OperationalError, InterfaceError) as error:
        raise DatabaseUnavailable(f"database unavailable at {where}: {_first_line(error)}") from error
    except (IntegrityError, DataError) as error:
        raise DatabaseRefused(f"the database at {where} refused a statement: {_first_line(error)}") from error
    except DBAPIError as error:  # e.g. SQLite's "file is not a database"
        raise DatabaseRefused(f"database unusable at {where}: {_first_line(error)}") from error


def _first_line(error: DBAPIError) -> str:
    text = str(error.orig).strip()
    return text.splitlines()[0][:300] if text else type(error.orig).__name__


def insert_ignoring_duplicates(session: Session, table: Any) -> Insert:
    """An INSERT that skips rows violating a unique constraint, on Postgres and SQLite alike."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(Insert, postgresql.insert(table).on_conflict_do_nothing())
    return cast(Insert, sqlite.insert(table).on_conflict_do_nothing())


class Database:
    """An engine and its session factory for one database URL."""

    def __init__(self, url: str, **options: Any) -> None:
        self.engine = make_engine(url, **options)
        self.sessions = session_factory(self.engine)

    @property
    def url(self) -> str:
        """The URL without password, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction, committed on leaving (rolled back on an error); database errors become
        ``DatabaseUnavailable`` or ``DatabaseRefused``."""
        with translated_errors(self.url), self.sessions.begin() as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reading (nothing is committed); database errors become the project's."""
        with translated_errors(self.url), self.sessions() as session:
            yield session

    def ping(self) -> None:
        """Ask the database to answer one trivial query; errors are the project's (``DatabaseUnavailable``)."""
        with self.reading() as session:
            session.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def open_database(url: str, **options: Any) -> Database:
    """Connect to ``url`` and make sure its schema is current (SQLite is upgraded automatically)."""
    database = Database(url, **options)
    ensure_schema(database.engine)
    return database
