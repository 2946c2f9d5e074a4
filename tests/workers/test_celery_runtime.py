"""The distributed runtime with a real Celery worker (threads pool), real Redis and real Postgres."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from redis import Redis
from sqlalchemy import func, select

import tasks.reconcile  # noqa: F401 - registers the tasks on the test app
from models import Fill, Run, history
from models.database import Database
from reconciliation.values import Snapshot
from venues.sim import SimVenue
from workers.books import BooksClient
from workers.bot_client import BotClient
from workers.celery import create_app
from workers.demo import seed_books
from workers.fleet import load_fleet
from workers.runner import account_key, run_exclusively
from workers.schedule import QUEUES, RECONCILE_TASK
from workers.settings import Settings

REDIS_URL = os.environ.get("RECON_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TIMEOUT = 60


@pytest.fixture
def redis() -> Iterator[Redis]:
    """The tests' Redis database, emptied before and after."""
    client = Redis.from_url(REDIS_URL, socket_timeout=5)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def settings(postgres_url: str, example_fleet: Path, redis: Redis) -> Settings:
    """Settings for the example fleet on the test Postgres and Redis, its bots' books written."""
    database = Database(postgres_url)
    client = BooksClient(database)
    for config in load_fleet(example_fleet).accounts:
        seed_books(client, config, example_fleet.parent / "books" / f"{config.bot}_{config.account}.json")
    database.dispose()
    return Settings(database_url=postgres_url, fleet=str(example_fleet), redis_url=REDIS_URL, coalesce_seconds=30)


@pytest.fixture
def app(settings: Settings) -> Celery:
    return create_app(settings)


@pytest.fixture
def worker(app: Celery) -> Iterator[Any]:
    """A real worker in this process (threads pool) consuming every queue."""
    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False, queues=list(QUEUES),
                      loglevel="WARNING", shutdown_timeout=30) as running:  # fmt: skip
        yield running


def runs_of(settings: Settings, bot: str, account: str) -> list[history.RunLine]:
    database = Database(settings.database_url)
    with database.sessions() as session:
        lines = history.list_runs(session, bot, account)
    database.dispose()
    return lines


def test_beat_has_one_entry_per_bot_and_account_of_the_example_fleet(app: Celery) -> None:
    schedule = app.conf.beat_schedule

    assert sorted(schedule) == sorted(
        f"reconcile:{bot}:{account}" for bot in ("lxalgo", "momentum", "shortseller") for account in ("paper", "live")
    )
    entry = schedule["reconcile:momentum:live"]
    assert (entry["schedule"], entry["options"]["queue"], entry["options"]["expires"]) == (120.0, "recon.sim", 108.0)


def test_a_queued_run_completes_and_its_report_is_in_postgres(app: Celery, worker: Any, settings: Settings) -> None:
    outcome = app.send_task(RECONCILE_TASK, args=["lxalgo", "paper", "manual"], queue="recon.sim").get(timeout=TIMEOUT)

    [run] = outcome["runs"]
    assert run["status"] == "resolved"
    [stored] = runs_of(settings, "lxalgo", "paper")
    assert (stored.run_id, stored.status, stored.reason) == (run["run_id"], "resolved", "manual")


def test_an_unknown_account_is_refused_and_nothing_runs(app: Celery, worker: Any, settings: Settings) -> None:
    pending = app.send_task(RECONCILE_TASK, args=["nobody", "paper", "manual"], queue="recon.sim")

    with pytest.raises(Exception, match="no account nobody/paper"):
        pending.get(timeout=TIMEOUT)
    assert runs_of(settings, "nobody", "paper") == []


def test_fifty_concurrent_triggers_queue_one_run_and_write_no_duplicates(
    app: Celery, worker: Any, settings: Settings, redis: Redis
) -> None:
    client = BotClient(settings, app)
    queued: list[bool] = []
    threads = [threading.Thread(target=lambda: queued.append(client.request_reconciliation("lxalgo", "live")))
               for _ in range(50)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)

    # one queued run, plus at most one follow-up (a second task or a second round of the holder)
    assert 1 <= queued.count(True) <= 2
    _wait_until_idle(redis, settings, "lxalgo", "live")
    database = Database(settings.database_url)
    with database.sessions() as session:
        fills = session.scalar(select(func.count()).select_from(Fill))
        distinct = session.scalar(select(func.count(func.distinct(Fill.fill_id))))
        runs = sorted((r.started_at, r.finished_at) for r in session.scalars(select(Run)))
    database.dispose()
    assert fills == distinct
    assert 1 <= len(runs) <= 2
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(runs))  # one at a time


def test_after_a_committed_run_the_positions_are_cached_and_an_event_appended(
    app: Celery, worker: Any, settings: Settings, redis: Redis
) -> None:
    app.send_task(RECONCILE_TASK, args=["lxalgo", "paper", "startup"], queue="recon.sim").get(timeout=TIMEOUT)

    positions = BotClient(settings, app).last_positions("lxalgo", "paper")
    [(_, event)] = redis.xrange("recon:events")

    assert positions == {"linear:BTCUSDT:0": {"qty": "30", "avg_entry": "51000"}}
    assert (event[b"bot"], event[b"account"], event[b"status"]) == (b"lxalgo", b"paper", b"resolved")


def test_a_run_finding_the_account_busy_leaves_it_to_the_holder_which_runs_once_more(
    settings: Settings, redis: Redis
) -> None:
    config = load_fleet(Path(str(settings.fleet))).account("lxalgo", "paper")
    database = Database(settings.database_url)

    class TriggeredMeanwhile:
        """A fetch during which another trigger finds the account busy."""

        name = "sim"
        calls = 0

        def fetch_snapshot(self, now: Any) -> Snapshot:
            type(self).calls += 1
            if type(self).calls == 1:
                busy = run_exclusively(redis, database, config, settings, "large_fill")
                assert busy.deferred_to_holder and busy.runs == ()
            assert config.state_file is not None
            return SimVenue(config.state_file).fetch_snapshot(now)

        def lookup_order(self, order: Any) -> Any:
            return SimVenue(config.state_file).lookup_order(order)  # type: ignore[arg-type]

    holder = run_exclusively(redis, database, config, settings, "schedule", venue=TriggeredMeanwhile())  # type: ignore[arg-type]
    database.dispose()

    assert [r.status for r in holder.runs] == ["resolved", "in_sync"]
    assert not redis.exists(f"{account_key('lxalgo', 'paper')}:dirty")
    assert not redis.exists(f"{account_key('lxalgo', 'paper')}:lock")


def _wait_until_idle(redis: Redis, settings: Settings, bot: str, account: str) -> None:
    """Until nothing is queued, the account is unlocked and no run is unfinished, for half a second in a row."""
    deadline = time.monotonic() + TIMEOUT
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        lines = runs_of(settings, bot, account)
        idle = (
            bool(lines)
            and all(line.status != "running" for line in lines)
            and not redis.llen("recon.sim")
            and not redis.exists(f"{account_key(bot, account)}:lock")
        )
        quiet_since = (quiet_since or time.monotonic()) if idle else None
        if quiet_since is not None and time.monotonic() - quiet_since > 0.5:
            return
        time.sleep(0.1)
    raise AssertionError(f"{bot}/{account}: the worker was still busy after {TIMEOUT} s")
