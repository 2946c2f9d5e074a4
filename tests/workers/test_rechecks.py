"""A finding deferred by the grace window is decided when the window ends, not an interval later.

Real Celery worker (threads pool), Redis and Postgres; lxalgo/paper follows the venue with a 6 s grace window
and a 300 s interval, so only the recheck can decide within the test's time. The recheck is an ETA task: held by
the worker on Redis, delayed by RabbitMQ itself on RabbitMQ; both are tried.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.result import AsyncResult
from redis import Redis
from sqlalchemy import select

from cli.app import main
from models import Run
from models.database import Database
from tests.conftest import in_process_worker, on_both_brokers
from workers.books import BooksClient
from workers.fleet import load_fleet
from workers.schedule import RECONCILE_TASK
from workers.settings import Settings
from workers.triggers import send_task

GRACE_SECONDS = 6  # the burst of three runs fits inside it on a loaded machine
TIMEOUT = 60


@pytest.fixture
def short_grace(example_fleet: Path) -> Path:
    """lxalgo/paper with a 6 s grace window."""
    text = example_fleet.read_text()
    marker = 'state_file = "venues/lxalgo_paper.json"\n'
    example_fleet.write_text(text.replace(marker, f"{marker}grace_seconds = {GRACE_SECONDS}\n"))
    return example_fleet


def runs(settings: Settings) -> list[Run]:
    database = Database(settings.database_url.get_secret_value())
    with database.reading() as session:
        rows = list(session.scalars(select(Run).order_by(Run.id)))
    database.dispose()
    return rows


def wait_until(condition: Any, seconds: float = TIMEOUT) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s")


def reconcile_now(app: Celery) -> dict[str, Any]:
    result: dict[str, Any] = app.send_task(RECONCILE_TASK, args=["lxalgo", "paper", "manual"],
                                           queue="recon.sim").get(timeout=TIMEOUT)  # fmt: skip
    return result


@on_both_brokers
def test_a_fill_in_flight_is_decided_by_one_run_when_its_grace_window_ends(
    short_grace: Path, settings: Settings, app: Celery, worker: Any, redis: Redis
) -> None:
    books = BooksClient(Database(settings.database_url.get_secret_value()), fleet=load_fleet(short_grace))
    filled_at = datetime.now(UTC)
    books.record_fill("lxalgo", "paper", symbol="ETHUSDT", category="linear", side="buy", qty="1", price="3000",
                      fill_id="eth-in-flight", time=filled_at)  # fmt: skip

    for _ in range(3):  # a burst of runs inside the window: each defers the same finding
        reconcile_now(app)
    wait_until(lambda: [r.status for r in runs(settings) if r.reason == "recheck"] == ["resolved"])
    wait_until(lambda: redis.get("recon:lxalgo:paper:recheck") is None, 10)

    every = runs(settings)
    rechecks = [r for r in every if r.reason == "recheck"]
    assert [r.status for r in every if r.reason == "manual"] == ["warned", "warned", "warned"]  # deferred: ETH
    assert len(rechecks) == 1, "one recheck for the burst, not one per deferring run"
    assert rechecks[0].started_at >= filled_at + timedelta(seconds=GRACE_SECONDS), "not before the window ends"
    assert rechecks[0].started_at < filled_at + timedelta(seconds=GRACE_SECONDS + 30), "nor an interval later"
    positions = {p.key.symbol: p.qty for p in books.positions("lxalgo", "paper")}
    assert "ETHUSDT" not in positions, "the venue never had it: the books followed the venue"


def test_a_dry_run_that_defers_asks_for_no_recheck(
    short_grace: Path, settings: Settings, app: Celery, worker: Any, redis: Redis
) -> None:
    books = BooksClient(Database(settings.database_url.get_secret_value()), fleet=load_fleet(short_grace))
    books.record_fill("lxalgo", "paper", symbol="ETHUSDT", category="linear", side="buy", qty="1", price="3000",
                      fill_id="eth-in-flight", time=datetime.now(UTC))  # fmt: skip

    app.send_task(RECONCILE_TASK, args=["lxalgo", "paper", "manual", True], queue="recon.sim").get(timeout=TIMEOUT)

    assert redis.get("recon:lxalgo:paper:recheck") is None
    assert [r.reason for r in runs(settings)] == ["manual"]


def test_a_run_the_cli_serves_in_process_leaves_its_recheck_to_the_workers(
    short_grace: Path, settings: Settings, app: Celery, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_url = settings.database_url.get_secret_value()
    monkeypatch.setenv("RECON_REDIS_URL", settings.redis_url.get_secret_value())
    monkeypatch.setenv("RECON_FLEET", str(short_grace))
    books = BooksClient(Database(database_url), fleet=load_fleet(short_grace))
    books.record_fill("lxalgo", "paper", symbol="ETHUSDT", category="linear", side="buy", qty="1", price="3000",
                      fill_id="eth-in-flight", time=datetime.now(UTC))  # fmt: skip

    with pytest.raises(SystemExit) as done:
        main(["--config", str(short_grace), "--db", database_url, "reconcile", "lxalgo", "paper", "--json"])
    wait_until(lambda: [r.status for r in runs(settings) if r.reason == "recheck"] == ["resolved"])

    assert done.value.code == 1  # the CLI's run: discrepancies found (ETH deferred)
    reconciliations = [r.reason for r in runs(settings) if r.reason != "backfill"]  # the close was estimated
    assert reconciliations == ["manual", "recheck"]


@on_both_brokers
def test_a_task_due_in_under_a_second_is_sent_and_runs_no_sooner(settings: Settings, app: Celery) -> None:
    """RabbitMQ delays by whole seconds and Celery refuses a delay under one there: the ETA is rounded up."""
    due = datetime.now(UTC) + timedelta(seconds=0.3)
    with in_process_worker(app):
        sent = AsyncResult(send_task(app, "recon.noop", [], "recon.default", eta=due), app=app)
        wait_until(lambda: sent.state == "SUCCESS", 30)
        finished = sent.date_done

    assert finished is not None and finished >= due
