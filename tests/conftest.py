"""Fixtures shared by the suite: real Postgres and SQLite databases, clocks, and the example fleet.

Postgres comes from RECON_TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test). When it
cannot be reached the whole run stops with a message saying so: database tests are never skipped.

The runtime tests marked ``on_both_brokers`` run twice: with Redis as message broker (RECON_TEST_REDIS_URL, the
default) and with RabbitMQ (RECON_TEST_RABBITMQ_URL, default amqp://guest:guest@127.0.0.1:5672//, its queues
purged before and after each test). A RabbitMQ that cannot be reached fails those tests, saying so; never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from kombu.connection import Connection
from redis import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cli.demo import seed_books
from models import Base
from models.database import Database, make_engine, normalize_url, upgrade
from models.history import run_record
from reconciliation.errors import ReconError
from reconciliation.plan import RunStatus
from reconciliation.policy import Rules
from workers.books import BooksClient
from workers.celery import create_app
from workers.fleet import AccountConfig, Fleet, load_fleet
from workers.pipeline import run_reconciliation, utc_now
from workers.results import RunResult
from workers.schedule import QUEUES
from workers.service import Service
from workers.settings import Settings

DEFAULT_TEST_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = os.environ.get("RECON_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RABBITMQ_URL = os.environ.get("RECON_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
EXAMPLES = Path(__file__).resolve().parent.parent / "cli" / "examples"


def postgres_base_url() -> str:
    """The Postgres the tests use, as a SQLAlchemy URL for psycopg."""
    return normalize_url(os.environ.get("RECON_TEST_DATABASE_URL", DEFAULT_TEST_URL))


def schema_url(base: str, schema: str) -> str:
    """``base`` with every connection's search_path set to ``schema`` (usable with --db)."""
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def create_schema(base: str) -> str:
    """A new, empty schema with a unique name; returns its name."""
    schema = f"recon_test_{uuid.uuid4().hex[:12]}"
    engine = make_engine(base)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as error:  # any failure to reach or use Postgres stops the run with a clear message
        pytest.exit(
            f"Postgres is not usable at {make_url(base).render_as_string(hide_password=True)}: {error}\n"
            "Start Postgres or set RECON_TEST_DATABASE_URL; the database tests are never skipped.",
            returncode=3,
        )
    finally:
        engine.dispose()
    return schema


def drop_schema(base: str, schema: str) -> None:
    """Drop ``schema`` and everything in it."""
    engine = make_engine(base)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_session_url() -> Iterator[str]:
    """A migrated Postgres schema for the whole session; tests truncate it before use."""
    base = postgres_base_url()
    schema = create_schema(base)
    url = schema_url(base, schema)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    drop_schema(base, schema)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that tests copy instead of migrating again."""
    path = tmp_path_factory.mktemp("template") / "recon.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


def _truncate(url: str) -> None:
    engine = make_engine(url)
    names = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_session_url: str) -> str:
    """A URL to an empty, migrated Postgres schema."""
    _truncate(postgres_session_url)
    return postgres_session_url


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A URL to an empty, migrated SQLite file."""
    path = tmp_path / "recon.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty, migrated database: each test using it runs once on SQLite and once on Postgres."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """An open ``Database`` on an empty, migrated SQLite file or Postgres schema."""
    db = Database(database_url)
    yield db
    db.dispose()


class Clock:
    """A controllable UTC clock for code that takes ``clock``."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> Clock:
    """A clock at 2026-11-20 12:00 UTC, a week after the example fleet's venue fills."""
    return Clock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))


@pytest.fixture
def example_fleet(tmp_path: Path) -> Path:
    """A copy of the shipped example fleet (fleet file, venue states, seed books) in a temporary folder."""
    target = tmp_path / "fleet"
    shutil.copytree(EXAMPLES, target)
    return target / "fleet.toml"


class SimState:
    """A sim venue's state file that a test rewrites."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.set()

    def set(self, positions: list[dict[str, Any]] | None = None, **rest: Any) -> None:
        """Replace the venue's state: these positions, plus any other top-level keys (cash, fills, ...)."""
        self.path.write_text(json.dumps({"positions": positions or [], **rest}))


@pytest.fixture
def venue(tmp_path: Path) -> SimState:
    """A sim venue holding nothing."""
    return SimState(tmp_path / "venue.json")


# --- runs as the tests make them ----------------------------------------------------------------------------------


def reconcile(database: Database, config: AccountConfig, **options: Any) -> RunResult:
    """One run through the pipeline, as ``workers.pipeline.run_reconciliation``; a failure it raises once the run is
    recorded (a transient or configuration one) comes back as that failed run, with the reason it recorded."""
    try:
        return run_reconciliation(database, config, **options)
    except ReconError as error:
        return _recorded_failure(database, config, error)


def _recorded_failure(database: Database, config: AccountConfig, error: ReconError) -> RunResult:
    """The failed run a raised error was recorded as (the error itself when none was)."""
    if error.run_id is None:
        raise error
    with database.reading() as session:
        recorded = run_record(session, error.run_id).run.error
    return RunResult(error.run_id, config.bot, config.account, RunStatus.FAILED, error=recorded)


def serve_in_process(database: Database, config: AccountConfig, **options: Any) -> RunResult:
    """One request served in-process as ``recon reconcile`` serves it without Redis: the run, then its follow-ups
    (orders sent, alerts delivered, backfill); a recorded failure comes back as the failed run."""
    service = Service(database, Settings(), clock=options.pop("clock", utc_now))
    try:
        return service.reconcile(config, options.pop("reason", "manual"), **options).results[-1]
    except ReconError as error:
        return _recorded_failure(database, config, error)


# --- the books client bots use ------------------------------------------------------------------------------------


def books_for(database: Database, clock: Callable[[], datetime] | None = None) -> BooksClient:
    """The books client bots use, for lxalgo's paper and live accounts on a venue taking any category (a sim
    venue with no state file), so that a test's own venue decides what the books are compared with."""
    fleet = Fleet.of(*(AccountConfig("lxalgo", name, "sim", Rules(), 300) for name in ("paper", "live")))
    return BooksClient(database, clock, fleet=fleet) if clock else BooksClient(database, fleet=fleet)


# --- a venue whose fetch blocks until the test lets it go ----------------------------------------------------------


@pytest.fixture
def blocking_fleet(example_fleet: Path, postgres_url: str) -> Iterator[Path]:
    """The example fleet with lxalgo/paper's state file replaced by a named pipe: its fetch blocks until fed."""
    state = example_fleet.parent / "venues" / "lxalgo_paper.json"
    content = state.read_text()
    state.unlink()
    os.mkfifo(state)
    database = Database(postgres_url)
    fleet = load_fleet(example_fleet)
    seed_books(BooksClient(database, fleet=fleet), fleet.account("lxalgo", "paper"),
               example_fleet.parent / "books" / "lxalgo_paper.json")  # fmt: skip
    database.dispose()
    yield example_fleet
    state.unlink()
    state.write_text(content)


def feed(pipe: Path, content: str) -> threading.Thread:
    """Write ``content`` into the pipe as soon as a reader opens it (in the background)."""

    def write() -> None:
        with pipe.open("w") as handle:  # blocks until the worker opens the pipe for reading
            handle.write(content)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


# --- the distributed runtime: Redis, settings for the example fleet, a Celery app and a real worker ----------------


@pytest.fixture
def redis() -> Iterator[Redis]:
    """The tests' Redis database, emptied before and after."""
    client = Redis.from_url(REDIS_URL, socket_timeout=5)
    client.flushdb()
    yield client
    client.flushdb()


BROKERS = ("redis", "rabbitmq")
#: runs a test with Redis, then with RabbitMQ, as message broker (through the ``broker`` fixture)
on_both_brokers = pytest.mark.parametrize("broker", BROKERS, indirect=True)
#: where native delayed delivery keeps delayed messages on RabbitMQ (kombu's names), purged with our queues
DELAY_QUEUES = tuple(f"celery_delayed_{level}" for level in range(28))


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Iterator[str]:
    """The message broker's URL for the test's workers and senders: the test Redis, or RabbitMQ when the test is
    parametrized with ``rabbitmq`` (``on_both_brokers``), its queues empty before and after."""
    if getattr(request, "param", "redis") == "redis":
        yield REDIS_URL
        return
    purge_rabbitmq()
    yield RABBITMQ_URL
    purge_rabbitmq()


def purge_rabbitmq() -> None:
    """Empty our queues and the delayed-delivery ones on the test RabbitMQ (those not declared yet are skipped);
    one that cannot be reached fails the test, saying so."""
    try:
        with Connection(RABBITMQ_URL, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
            for name in (*QUEUES, *DELAY_QUEUES):
                channel = connection.channel()
                try:
                    channel.queue_purge(name)
                except connection.channel_errors:
                    continue  # not declared (the failed purge closed the channel)
                channel.close()
        return
    except Exception as error:  # any failure to reach or use RabbitMQ fails the test with a clear message
        problem = error
    pytest.fail(
        f"RabbitMQ is not usable at RECON_TEST_RABBITMQ_URL={Connection(RABBITMQ_URL).as_uri()}: {problem}\n"
        "Start RabbitMQ or point RECON_TEST_RABBITMQ_URL at one; the broker tests are never skipped.",
        pytrace=False,
    )


def queued(app: Celery, queue: str) -> int:
    """How many messages wait in ``queue`` for a worker (taken but unacknowledged ones not counted), on either
    broker."""
    with app.connection_for_read() as connection:
        try:
            return int(connection.default_channel.queue_declare(queue=queue, passive=True).message_count)
        except connection.channel_errors:
            return 0  # not declared yet (Redis: an empty queue does not exist)


@pytest.fixture
def settings(postgres_url: str, example_fleet: Path, redis: Redis, broker: str) -> Settings:
    """Settings for the example fleet on the test Postgres, Redis and message broker, its bots' books written."""
    seed_example_books(postgres_url, example_fleet)
    return Settings(database_url=postgres_url, fleet=str(example_fleet), redis_url=REDIS_URL,
                    broker_url=broker, coalesce_seconds=30)  # fmt: skip


def seed_example_books(database_url: str, example_fleet: Path) -> None:
    """Write what the example fleet's bots recorded (``cli/examples/books``) into the books at ``database_url``."""
    database = Database(database_url)
    fleet = load_fleet(example_fleet)
    client = BooksClient(database, fleet=fleet)
    for config in fleet.accounts:
        seed_books(client, config, example_fleet.parent / "books" / f"{config.bot}_{config.account}.json")
    database.dispose()


@pytest.fixture
def app(settings: Settings) -> Celery:
    return create_app(settings)


def in_process_worker(app: Celery, **options: Any) -> Any:
    """A real worker in this process (threads pool, two threads, every queue unless told), as a context manager.

    Its heartbeat keeps its event loop waking up: on RabbitMQ a worker without one takes 10 s to stop.
    """
    return start_worker(app, **{"pool": "threads", "concurrency": 2, "perform_ping_check": False,
                                "queues": list(QUEUES), "loglevel": "WARNING", "shutdown_timeout": 30,
                                "without_heartbeat": False, **options})  # fmt: skip


@pytest.fixture
def worker(app: Celery) -> Iterator[Any]:
    """A real worker in this process (threads pool) consuming every queue."""
    with in_process_worker(app) as running:
        yield running


__all__ = [
    "RABBITMQ_URL",
    "REDIS_URL",
    "Clock",
    "SimState",
    "books_for",
    "on_both_brokers",
    "queued",
    "reconcile",
    "seed_example_books",
    "serve_in_process",
]


def stop_process_groups(*processes: subprocess.Popen[bytes] | None) -> None:
    """Stop each process started in its own session, with its children: SIGTERM, then SIGKILL after 15 s."""
    for process in processes:
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)


def free_port() -> int:
    """A loopback TCP port nothing listens on now (for a server a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
