"""A worker killed with SIGKILL mid-run: the run is failed and the account run again, without a person.

A whole worker killed leaves its message unacked. On Redis a live worker restores it after the visibility timeout;
on RabbitMQ the dead worker's connection closes and the message is given back at once. Before that, and when only
a pool process dies (its message comes back at once and finds the dead holder's lock), beat's sweep
(``recon.recover``) fails the lost run and asks for another within the lock's TTL plus one sweep. Each test runs
with Redis and with RabbitMQ as message broker.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery
from redis import Redis
from sqlalchemy import select

from models import Run
from models.database import Database
from tests.conftest import feed, on_both_brokers, stop_process_groups
from workers.books import BooksClient
from workers.celery import create_app
from workers.schedule import RECONCILE_TASK
from workers.settings import Settings
from workers.triggers import consumers_by_queue

REDIS_URL = os.environ.get("RECON_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[2]
# Short but still nested (soft < hard < lock TTL < visibility timeout), so redelivery comes within seconds.
LIMITS = {"RECON_TASK_SOFT_TIME_LIMIT": "4", "RECON_TASK_TIME_LIMIT": "5", "RECON_LOCK_TTL": "6",
          "RECON_RETRY_BACKOFF_MAX": "2", "RECON_VISIBILITY_TIMEOUT": "8"}  # fmt: skip


def start_worker_process(
    fleet: Path,
    database_url: str,
    name: str,
    limits: dict[str, str] = LIMITS,
    queues: str = "recon.sim",
    concurrency: int = 1,
    broker: str = REDIS_URL,
) -> subprocess.Popen[bytes]:
    """A prefork worker (one pool process unless told), in its own process group, for these settings, queues and
    message broker."""
    env = {**os.environ, **limits, "RECON_DATABASE_URL": database_url, "RECON_FLEET": str(fleet),
           "RECON_REDIS_URL": REDIS_URL, "RECON_BROKER_URL": broker, "PYTHONPATH": str(ROOT)}  # fmt: skip
    command = [sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool=prefork",
               f"--concurrency={concurrency}", f"--queues={queues}", "--without-gossip", "--without-mingle",
               "-n", f"{name}@%h", "--loglevel=WARNING"]  # fmt: skip
    return subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def runs(database_url: str) -> list[tuple[str, str]]:
    database = Database(database_url)
    with database.sessions() as session:
        rows = [(r.reason, r.status) for r in session.scalars(select(Run).order_by(Run.id))]
    database.dispose()
    return rows


def wait_for(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s")


@on_both_brokers
def test_a_worker_killed_mid_run_is_redelivered_and_the_run_completes_once(
    blocking_fleet: Path, postgres_url: str, broker: str
) -> None:
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    settings = Settings(database_url=postgres_url, fleet=str(blocking_fleet), redis_url=REDIS_URL, broker_url=broker,
                        **{k.removeprefix("RECON_").lower(): int(v) for k, v in LIMITS.items()})  # fmt: skip
    app: Celery = create_app(settings)
    pipe = blocking_fleet.parent / "venues" / "lxalgo_paper.json"
    content = (ROOT / "cli" / "examples" / "venues" / "lxalgo_paper.json").read_text()
    first = start_worker_process(blocking_fleet, postgres_url, "first", broker=broker)
    second: subprocess.Popen[bytes] | None = None
    try:
        app.send_task(RECONCILE_TASK, args=["lxalgo", "paper", "manual"], queue="recon.sim")
        wait_for(lambda: runs(postgres_url) == [("manual", "running")], 60)  # blocked reading the pipe
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        redis.delete("recon:lxalgo:paper:lock")  # the killed holder cannot release it; its TTL would, later

        second = start_worker_process(blocking_fleet, postgres_url, "second", broker=broker)
        feed(pipe, content)
        # Redis: a live worker restores unacked messages older than the visibility timeout (8 s), sweeping every 2 s;
        # RabbitMQ gave the message back when the killed worker's connection closed
        wait_for(lambda: ("manual", "resolved") in runs(postgres_url), 60)
    finally:
        stop_process_groups(first, second)
        redis.flushdb()

    assert runs(postgres_url) == [("manual", "failed"), ("manual", "resolved")]  # the killed attempt, then the run
    positions = BooksClient(Database(postgres_url)).positions("lxalgo", "paper")
    assert [(p.key.symbol, p.qty) for p in positions] == [("BTCUSDT", 30)]


RECOVERY_LIMITS = {**LIMITS, "RECON_VISIBILITY_TIMEOUT": "300", "RECON_RECOVER_SECONDS": "1",
                   "RECON_COALESCE_SECONDS": "1"}  # fmt: skip
#: the lock's TTL (6 s) + one sweep (1 s), with room for a loaded machine to start processes and run
WITHIN_SECONDS = 6 + 1 + 45


def start_beat(
    fleet: Path, database_url: str, schedule: Path, broker: str = REDIS_URL, limits: dict[str, str] = RECOVERY_LIMITS
) -> subprocess.Popen[bytes]:
    env = {**os.environ, **limits, "RECON_DATABASE_URL": database_url, "RECON_FLEET": str(fleet),
           "RECON_REDIS_URL": REDIS_URL, "RECON_BROKER_URL": broker, "PYTHONPATH": str(ROOT)}  # fmt: skip
    command = [sys.executable, "-m", "celery", "-A", "workers", "beat", f"--schedule={schedule}", "--loglevel=WARNING"]
    return subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def start_recovering_worker(
    fleet: Path, database_url: str, name: str, broker: str = REDIS_URL, limits: dict[str, str] = RECOVERY_LIMITS
) -> subprocess.Popen[bytes]:
    """A worker as operators run it beside beat, which sends the recovery sweep to recon.default."""
    return start_worker_process(fleet, database_url, name, limits, "recon.sim,recon.default", broker=broker)


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (the prefork pool of a worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def run_rows(database_url: str) -> list[tuple[str, str, str | None]]:
    database = Database(database_url)
    with database.sessions() as session:
        rows = [(r.reason, r.status, r.error) for r in session.scalars(select(Run).order_by(Run.id))]
    database.dispose()
    return rows


@on_both_brokers
@pytest.mark.parametrize("killed", ["pool process", "whole worker"])
def test_a_run_whose_worker_died_is_failed_and_the_account_run_again_within_the_lock_ttl_and_a_sweep(
    blocking_fleet: Path, postgres_url: str, tmp_path: Path, killed: str, broker: str
) -> None:
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    settings = Settings(database_url=postgres_url, fleet=str(blocking_fleet), redis_url=REDIS_URL, broker_url=broker,
                        **{k.removeprefix("RECON_").lower(): int(v) for k, v in RECOVERY_LIMITS.items()})  # fmt: skip
    pipe = blocking_fleet.parent / "venues" / "lxalgo_paper.json"
    content = (ROOT / "cli" / "examples" / "venues" / "lxalgo_paper.json").read_text()
    worker = start_recovering_worker(blocking_fleet, postgres_url, "first", broker)
    beat = start_beat(blocking_fleet, postgres_url, tmp_path / "beat-schedule", broker)
    second: subprocess.Popen[bytes] | None = None
    try:
        create_app(settings).send_task(RECONCILE_TASK, args=["lxalgo", "paper", "manual"], queue="recon.sim")
        wait_for(lambda: [r[:2] for r in run_rows(postgres_url)] == [("manual", "running")], 60)
        if killed == "pool process":
            for child in children_of(worker.pid):
                os.kill(child, signal.SIGKILL)
        else:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
            second = start_recovering_worker(blocking_fleet, postgres_url, "second", broker)
        killed_at = time.monotonic()
        feed(pipe, content)  # the next run to read the venue gets its state

        wait_for(lambda: ("recovery", "resolved") in [r[:2] for r in run_rows(postgres_url)], WITHIN_SECONDS)
        recovered_after = time.monotonic() - killed_at
    finally:
        stop_process_groups(worker, second, beat)
        redis.flushdb()

    rows = run_rows(postgres_url)
    assert rows[0][:2] == ("manual", "failed") and "worker was lost" in str(rows[0][2])
    assert ("recovery", "resolved") in [r[:2] for r in rows]
    assert recovered_after < WITHIN_SECONDS
    positions = BooksClient(Database(postgres_url)).positions("lxalgo", "paper")
    assert [(p.key.symbol, p.qty) for p in positions] == [("BTCUSDT", 30)]


def unacked_task_ids(redis: Redis) -> set[str]:
    """The tasks whose messages Redis holds unacknowledged for a worker (kombu's ``unacked`` hash)."""
    held = set()
    for raw in redis.hvals("unacked"):
        message = json.loads(raw)[0]
        held.add(str(message["headers"]["id"]))
    return held


#: the recovery settings, but a visibility timeout of an hour: Redis gives a dead worker's message back only then
HOUR_LIMITS = {**RECOVERY_LIMITS, "RECON_VISIBILITY_TIMEOUT": "3600"}
GIVEN_BACK_WITHIN = 10  # seconds after the kill; RabbitMQ needs well under one on an idle machine


@on_both_brokers
def test_a_killed_worker_gives_its_message_back_at_once_on_rabbitmq_and_after_the_visibility_timeout_on_redis(
    blocking_fleet: Path, postgres_url: str, tmp_path: Path, broker: str
) -> None:
    """Two workers on the run's queue; the one running it (main process and pool, the whole process group) is
    SIGKILLed. RabbitMQ sees its connection close and hands the unacknowledged message to the other worker at once:
    it finds the dead holder's lock and leaves the work to it. Redis keeps the message unacknowledged for the
    visibility timeout (an hour here). Either way beat's sweep fails the lost run and the account runs once more."""
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    settings = Settings(database_url=postgres_url, fleet=str(blocking_fleet), redis_url=REDIS_URL, broker_url=broker,
                        **{k.removeprefix("RECON_").lower(): int(v) for k, v in HOUR_LIMITS.items()})  # fmt: skip
    app = create_app(settings)
    pipe = blocking_fleet.parent / "venues" / "lxalgo_paper.json"
    content = (ROOT / "cli" / "examples" / "venues" / "lxalgo_paper.json").read_text()
    first = start_recovering_worker(blocking_fleet, postgres_url, "first", broker, HOUR_LIMITS)
    second: subprocess.Popen[bytes] | None = None
    beat = start_beat(blocking_fleet, postgres_url, tmp_path / "beat-schedule", broker, HOUR_LIMITS)
    second_name = f"second@{socket.gethostname()}"
    try:
        pending = app.send_task(RECONCILE_TASK, args=["lxalgo", "paper", "manual"], queue="recon.sim")
        wait_for(lambda: [r[:2] for r in run_rows(postgres_url)] == [("manual", "running")], 60)  # the first has it
        second = start_recovering_worker(blocking_fleet, postgres_url, "second", broker, HOUR_LIMITS)
        wait_for(lambda: second_name in consumers_by_queue(app, timeout=1.0).get("recon.sim", []), 60)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = time.monotonic()
        if broker.startswith("amqp"):
            wait_for(lambda: pending.state == "SUCCESS", GIVEN_BACK_WITHIN)
            given_back_after = time.monotonic() - killed_at
        feed(pipe, content)  # the next run to read the venue gets its state
        wait_for(lambda: ("recovery", "resolved") in [r[:2] for r in run_rows(postgres_url)], WITHIN_SECONDS)
        recovered_after = time.monotonic() - killed_at
        state, unacked = pending.state, unacked_task_ids(redis)
        outcome = pending.result if state == "SUCCESS" else None
        taken_by_second = (app.control.inspect(timeout=2, destination=[second_name]).stats() or {})[second_name]
    finally:
        stop_process_groups(first, second, beat)
        redis.flushdb()

    if broker.startswith("amqp"):  # the second worker took the killed run's message, then the recovery run's
        assert given_back_after < GIVEN_BACK_WITHIN < settings.visibility_timeout
        assert outcome is not None and (outcome["runs"], outcome["deferred_to_holder"]) == ([], True)
        assert taken_by_second["total"][RECONCILE_TASK] == 2
    else:  # Redis holds the killed run's message for the dead worker; the second worker took the recovery run's only
        assert state == "STARTED" and pending.id in unacked, "the killed run's message is held for the dead worker"
        assert taken_by_second["total"][RECONCILE_TASK] == 1
    rows = run_rows(postgres_url)
    assert [r[:2] for r in rows] == [("manual", "failed"), ("recovery", "resolved")]  # the account ran once more
    assert "worker was lost" in str(rows[0][2])
    assert recovered_after < WITHIN_SECONDS
    positions = BooksClient(Database(postgres_url)).positions("lxalgo", "paper")
    assert [(p.key.symbol, p.qty) for p in positions] == [("BTCUSDT", 30)]
