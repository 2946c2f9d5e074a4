"""Triggers coalesce as ``workers.coalescing`` promises, repeated, with the machine's CPUs kept busy:

    a trigger that arrives before a run has begun reading the venue is served by that run; triggers that arrive
    while it reads, or after it, cause exactly one more run between them.

The account's venue is a named pipe, so a run blocks in the middle of reading it until the test feeds it: the
test knows exactly which triggers came before, during and after each read. A real worker (threads pool, two
threads, so a second task really does meet the held lock) serves them on real Redis and Postgres, with Redis and
with RabbitMQ as message broker.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from redis import Redis
from sqlalchemy import select

from models import Run
from models.database import Database
from tests.conftest import REDIS_URL, feed, in_process_worker, on_both_brokers, queued
from workers.bot_client import BotClient
from workers.celery import create_app
from workers.coalescing import account_key
from workers.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_STATE = (ROOT / "cli" / "examples" / "venues" / "lxalgo_paper.json").read_text()
TIMEOUT = 60
REPEATS = 3


def burn(seconds: float) -> None:
    """Keep one CPU busy."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


@pytest.fixture
def busy_machine() -> Iterator[None]:
    """Two processes spinning for the whole test, one per core of the CI machine."""
    burners = [multiprocessing.Process(target=burn, args=(120,), daemon=True) for _ in range(2)]
    for burner in burners:
        burner.start()
    yield
    for burner in burners:
        burner.terminate()
        burner.join(timeout=10)


def runs_of(database: Database, after_id: int = 0) -> list[tuple[str, str]]:
    """The runs recorded after run ``after_id``: reason and status."""
    with database.reading() as session:
        return [(r.reason, r.status) for r in session.scalars(select(Run).where(Run.id > after_id).order_by(Run.id))]


def last_run_id(database: Database) -> int:
    with database.reading() as session:
        return max(session.scalars(select(Run.id)), default=0)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {TIMEOUT} s: {what}")


def idle(redis: Redis, app: Celery, database: Database) -> bool:
    """Nothing queued or running, the account unlocked."""
    return (
        not queued(app, "recon.sim")
        and not redis.exists(f"{account_key('lxalgo', 'paper')}:lock")
        and all(status != "running" for _, status in runs_of(database))
    )


def one_scenario(fleet: Path, postgres_url: str, broker: str) -> dict[str, Any]:
    """Five triggers before a run, five while it reads the venue, one after: what they caused."""
    pipe = fleet.parent / "venues" / "lxalgo_paper.json"
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    database = Database(postgres_url)
    since = last_run_id(database)
    settings = Settings(database_url=postgres_url, fleet=str(fleet), redis_url=REDIS_URL, broker_url=broker,
                        coalesce_seconds=30)  # fmt: skip
    app = create_app(settings)
    client = BotClient(settings, app)

    def trigger(count: int) -> list[bool]:
        return [client.request_reconciliation("lxalgo", "paper", "large_fill") for _ in range(count)]

    def recorded() -> list[tuple[str, str]]:
        return runs_of(database, since)

    before = trigger(5)
    with in_process_worker(app):
        wait_for(lambda: recorded() == [("large_fill", "running")], "the first run reads the venue")
        during = trigger(5)
        feed(pipe, EXAMPLE_STATE)
        wait_for(lambda: [status for _, status in recorded()][1:] == ["running"], "one more run")
        time.sleep(0.5)  # the task queued during the first read meets the held lock meanwhile
        feed(pipe, EXAMPLE_STATE)
        wait_for(lambda: idle(redis, app, database), "all served")
        after = trigger(1)
        wait_for(lambda: len(recorded()) == 3, "the run the late trigger causes")
        feed(pipe, EXAMPLE_STATE)
        wait_for(lambda: idle(redis, app, database), "all served")
        time.sleep(0.5)  # nothing else may start
        runs = recorded()
    database.dispose()
    counts = redis.hmget(f"{account_key('lxalgo', 'paper')}:triggers", ["requested", "served"])
    redis.flushdb()
    return {"before": before, "during": during, "after": after, "runs": runs, "counts": counts}


@on_both_brokers
def test_triggers_before_during_and_after_a_run_cause_exactly_the_runs_promised(
    blocking_fleet: Path, postgres_url: str, busy_machine: None, broker: str
) -> None:
    for repeat in range(REPEATS):
        seen = one_scenario(blocking_fleet, postgres_url, broker)

        assert seen["before"] == [True, False, False, False, False], repeat
        assert seen["during"] == [True, False, False, False, False], repeat  # its task meets the lock and leaves
        assert seen["after"] == [True], repeat
        assert len(seen["runs"]) == 3, (repeat, seen["runs"])
        assert all(status in ("resolved", "in_sync") for _, status in seen["runs"]), (repeat, seen["runs"])
        assert seen["counts"] == [b"11", b"11"], repeat  # every trigger served


@on_both_brokers
def test_a_scheduled_run_meeting_a_held_lock_asks_the_holder_for_one_more_round(
    blocking_fleet: Path, postgres_url: str, redis: Redis, broker: str
) -> None:
    pipe = blocking_fleet.parent / "venues" / "lxalgo_paper.json"
    database = Database(postgres_url)
    settings = Settings(database_url=postgres_url, fleet=str(blocking_fleet), redis_url=REDIS_URL, broker_url=broker)
    app = create_app(settings)
    with in_process_worker(app):
        first = app.send_task("recon.reconcile", args=["lxalgo", "paper", "schedule"], queue="recon.sim")
        wait_for(lambda: runs_of(database) == [("schedule", "running")], "the first run reads the venue")
        second: Any = app.send_task("recon.reconcile", args=["lxalgo", "paper", "schedule"], queue="recon.sim")
        assert second.get(timeout=TIMEOUT)["deferred_to_holder"] is True
        feed(pipe, EXAMPLE_STATE)
        wait_for(lambda: len(runs_of(database)) == 2, "the holder's one more round")
        feed(pipe, EXAMPLE_STATE)
        outcome = first.get(timeout=TIMEOUT)
    database.dispose()

    assert [r["status"] for r in outcome["runs"]] == ["resolved", "in_sync"]
