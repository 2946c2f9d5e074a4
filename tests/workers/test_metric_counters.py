"""The counters behind the metrics are right however the work is spread: triggers counted queued or joined in
Redis, and runs and venue requests made by the two children of a real prefork worker adding up to what Postgres
recorded (no ``prometheus_client`` multiprocess mode: nothing is counted in a process's memory)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from celery import Celery
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select

from api.metrics import render_metrics
from models import Run
from models.books import Account
from models.database import Database
from reconciliation.errors import CoordinationUnavailable, RateLimited, VenueUnavailable
from tests.conftest import REDIS_URL, feed, queued, stop_process_groups
from workers.celery import create_app
from workers.counters import OUTCOMES, outcome_of, triggers, venue_counter, venue_requests
from workers.fleet import load_fleet
from workers.schedule import RECONCILE_TASK
from workers.settings import Settings
from workers.triggers import trigger_run

ROOT = Path(__file__).resolve().parent.parent.parent


def test_a_burst_of_triggers_counts_one_queued_and_the_rest_joined(
    settings: Settings, app: Celery, redis: Redis, postgres_url: str
) -> None:
    fleet = load_fleet(Path(settings.fleet or ""))
    burst = [trigger_run(redis, app, fleet.account("lxalgo", "paper"), "large_fill", settings) for _ in range(5)]
    other = trigger_run(redis, app, fleet.account("lxalgo", "live"), "startup", settings)

    assert [t.queued for t in burst] == [True, False, False, False, False] and other.queued
    assert triggers(redis) == {"queued": 2, "joined": 4}
    database = Database(postgres_url)
    body = render_metrics(database, redis, fleet, datetime.now(UTC))[0].decode()
    database.dispose()
    assert 'recon_trigger_total{outcome="queued"} 2.0' in body
    assert 'recon_trigger_total{outcome="joined"} 4.0' in body


def test_venue_outcomes_follow_the_error_tree() -> None:
    assert outcome_of(None) == "ok"
    assert outcome_of(RateLimited("slow down")) == "rate_limited"
    assert outcome_of(VenueUnavailable("502")) == "retry_later"
    assert outcome_of(KeyError("bug")) == "error"


def test_counting_into_a_redis_that_does_not_answer_loses_the_count_not_the_call() -> None:
    nowhere = Redis(host="127.0.0.1", port=9, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))  # refused at once

    venue_counter(nowhere)("sim", "ok")  # no error

    with pytest.raises(CoordinationUnavailable):
        venue_requests(nowhere)


# --- a real prefork worker with two children --------------------------------------------------------------------


def start_prefork_worker(fleet: Path, database_url: str) -> subprocess.Popen[bytes]:
    """``celery worker --pool=prefork --concurrency=2`` on the sim queue, in its own process group."""
    env = {**os.environ, "RECON_DATABASE_URL": database_url, "RECON_FLEET": str(fleet), "RECON_REDIS_URL": REDIS_URL,
           "RECON_BROKER_URL": REDIS_URL, "PYTHONPATH": str(ROOT)}  # fmt: skip
    command = [sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool=prefork", "--concurrency=2",
               "--queues=recon.sim", "--without-gossip", "--without-mingle", "-n", "metrics@%h",
               "--loglevel=WARNING"]  # fmt: skip
    return subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


@pytest.fixture
def prefork_worker(blocking_fleet: Path, postgres_url: str, redis: Redis) -> Iterator[subprocess.Popen[bytes]]:
    """A prefork worker with two children for the example fleet (lxalgo/paper's state file a pipe)."""
    worker = start_prefork_worker(blocking_fleet, postgres_url)
    yield worker
    stop_process_groups(worker)


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {seconds} s")


def run_statuses(database: Database) -> list[tuple[str, str, str]]:
    """(account, reason, status) of every run that is not dry, oldest first."""
    with database.reading() as session:
        query = select(Account.name, Run.reason, Run.status).join(Account, Account.id == Run.account_id)
        return [tuple(row) for row in session.execute(query.where(Run.dry_run.is_(False)).order_by(Run.id))]  # type: ignore[misc]


def settled(database: Database, app: Celery) -> Callable[[], bool]:
    """True once nothing runs or waits and the runs stayed the same for a second (follow-ups included)."""
    last: list[object] = []

    def check() -> bool:
        runs = run_statuses(database)
        idle = all(status != "running" for _, _, status in runs) and queued(app, "recon.sim") == 0
        same = last == [runs]
        last[:] = [runs]
        if same and idle:
            return True
        time.sleep(1)
        return False

    return check


def test_runs_and_venue_requests_of_both_prefork_children_add_up_to_what_postgres_recorded(
    prefork_worker: subprocess.Popen[bytes], blocking_fleet: Path, postgres_url: str, redis: Redis
) -> None:
    settings = Settings(database_url=postgres_url, fleet=str(blocking_fleet), redis_url=REDIS_URL,
                        broker_url=REDIS_URL)  # fmt: skip
    app = create_app(settings)
    fleet = load_fleet(blocking_fleet)
    database = Database(postgres_url)
    pipe = blocking_fleet.parent / "venues" / "lxalgo_paper.json"
    content = (ROOT / "cli" / "examples" / "venues" / "lxalgo_paper.json").read_text()
    try:
        # One child blocks reading lxalgo/paper's pipe; the other must serve everything else meanwhile.
        blocked = app.send_task(RECONCILE_TASK, args=["lxalgo", "paper", "manual"], queue="recon.sim")
        wait_for(lambda: ("paper", "manual", "running") in run_statuses(database), 90, "the blocked run started")
        writer = unblock_later(pipe, content)
        others = [c for c in fleet.accounts if c.label != "lxalgo/paper"]
        sent = [app.send_task(RECONCILE_TASK, args=[c.bot, c.account, "manual"], queue="recon.sim")
                for _ in range(2) for c in others]  # fmt: skip
        for result in sent:
            result.get(timeout=120)
        assert ("paper", "manual", "running") in run_statuses(database)  # served by the other child
        writer()
        blocked.get(timeout=120)
        wait_for(settled(database, app), 120, "the worker settled")

        found = render_metrics(database, redis, fleet, datetime.now(UTC))[0].decode()
    finally:
        database.dispose()
    recorded = run_statuses(database)
    assert len([r for r in recorded if r[1] == "manual"]) == 11
    assert total(found, "recon_runs_total") == len(recorded)
    for status in {s for _, _, s in recorded}:
        assert total(found, "recon_runs_total", f'status="{status}"') == sum(1 for *_, s in recorded if s == status)
    requests = venue_requests(redis)
    assert {venue for venue, _ in requests} == {"sim"} and {o for _, o in requests} <= set(OUTCOMES)
    assert requests.get(("sim", "ok"), 0) >= 11  # each run read the venue once at least
    assert total(found, "recon_venue_requests_total") == sum(requests.values())


def unblock_later(pipe: Path, content: str) -> Callable[[], None]:
    """Put a plain copy of the state file where the pipe was (later reads, e.g. a backfill, do not block) and
    return what feeds the reader already waiting on the pipe."""
    alias = pipe.with_name("blocked.fifo")
    os.link(pipe, alias)
    plain = pipe.with_name("plain.json")
    plain.write_text(content)
    os.replace(plain, pipe)

    def unblock() -> None:
        feed(alias, content).join(timeout=30)
        alias.unlink()

    return unblock


def total(body: str, name: str, having: str = "") -> float:
    """The sum of a metric's samples (those whose labels include ``having``)."""
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name + "{") and having in line
    )
