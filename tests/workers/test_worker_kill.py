"""A worker killed with SIGKILL mid-run: the task is redelivered and the run completes once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from redis import Redis
from sqlalchemy import select

from models import Run
from models.database import Database
from workers.books import BooksClient
from workers.celery import create_app
from workers.demo import seed_books
from workers.fleet import load_fleet
from workers.schedule import RECONCILE_TASK
from workers.settings import Settings

REDIS_URL = os.environ.get("RECON_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[2]
# Short but still nested (soft < hard < lock TTL < visibility timeout), so redelivery comes within seconds.
LIMITS = {"RECON_TASK_SOFT_TIME_LIMIT": "4", "RECON_TASK_TIME_LIMIT": "5", "RECON_LOCK_TTL": "6",
          "RECON_RETRY_BACKOFF_MAX": "2", "RECON_VISIBILITY_TIMEOUT": "8"}  # fmt: skip


@pytest.fixture
def blocking_fleet(example_fleet: Path, postgres_url: str) -> Iterator[Path]:
    """The example fleet with lxalgo/paper's state file replaced by a named pipe: its fetch blocks until fed."""
    state = example_fleet.parent / "venues" / "lxalgo_paper.json"
    content = state.read_text()
    state.unlink()
    os.mkfifo(state)
    database = Database(postgres_url)
    config = load_fleet(example_fleet).account("lxalgo", "paper")
    seed_books(BooksClient(database), config, example_fleet.parent / "books" / "lxalgo_paper.json")
    database.dispose()
    yield example_fleet
    state.unlink()
    state.write_text(content)


def start_worker_process(fleet: Path, database_url: str, name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **LIMITS, "RECON_DATABASE_URL": database_url, "RECON_FLEET": str(fleet),
           "RECON_REDIS_URL": REDIS_URL, "PYTHONPATH": str(ROOT)}  # fmt: skip
    command = [sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool=prefork", "--concurrency=1",
               "--queues=recon.sim", "--without-gossip", "--without-mingle", "-n", f"{name}@%h",
               "--loglevel=WARNING"]  # fmt: skip
    return subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def feed(pipe: Path, content: str) -> threading.Thread:
    """Write ``content`` into the pipe as soon as a reader opens it (in the background)."""

    def write() -> None:
        with pipe.open("w") as handle:  # blocks until the worker opens the pipe for reading
            handle.write(content)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


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


def test_a_worker_killed_mid_run_is_redelivered_and_the_run_completes_once(
    blocking_fleet: Path, postgres_url: str
) -> None:
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    settings = Settings(database_url=postgres_url, fleet=str(blocking_fleet), redis_url=REDIS_URL,
                        **{k.removeprefix("RECON_").lower(): int(v) for k, v in LIMITS.items()})  # fmt: skip
    app: Celery = create_app(settings)
    pipe = blocking_fleet.parent / "venues" / "lxalgo_paper.json"
    content = (ROOT / "workers" / "examples" / "venues" / "lxalgo_paper.json").read_text()
    first = start_worker_process(blocking_fleet, postgres_url, "first")
    second: subprocess.Popen[bytes] | None = None
    try:
        app.send_task(RECONCILE_TASK, args=["lxalgo", "paper", "manual"], queue="recon.sim")
        wait_for(lambda: runs(postgres_url) == [("manual", "running")], 60)  # blocked reading the pipe
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        redis.delete("recon:lxalgo:paper:lock")  # the killed holder cannot release it; its TTL would, later

        second = start_worker_process(blocking_fleet, postgres_url, "second")
        feed(pipe, content)
        # a live worker restores unacked messages older than the visibility timeout (8 s), sweeping every 2 s
        wait_for(lambda: ("manual", "resolved") in runs(postgres_url), 60)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
        redis.flushdb()

    assert runs(postgres_url) == [("manual", "failed"), ("manual", "resolved")]  # the killed attempt, then the run
    positions = BooksClient(Database(postgres_url)).positions("lxalgo", "paper")
    assert [(p.key.symbol, p.qty) for p in positions] == [("BTCUSDT", 30)]
