"""Postgres briefly unreachable and Redis restarted mid-cycle: the runtime carries on without manual action.

The Postgres outage is retried with a countdown: on Redis the worker holds the retry until it is due, on RabbitMQ the
broker delays it (native delayed delivery) and it must come back to the account's queue; both are tried.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.engine import make_url

import tasks.reconcile  # noqa: F401 - registers the tasks on the test app
from cli.demo import seed_books
from models import Run
from models.database import Database
from tests.conftest import in_process_worker, on_both_brokers
from workers.books import BooksClient
from workers.celery import create_app
from workers.fleet import load_fleet
from workers.schedule import QUEUES, RECONCILE_TASK
from workers.settings import Settings

REDIS_URL = os.environ.get("RECON_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


class Proxy:
    """A TCP proxy to Postgres that can be cut (every connection dropped, new ones refused) and restored."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.refused = 0
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                self.refused += 1
                client.close()
                continue
            upstream = socket.create_connection(self.target, timeout=5)
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()

    def cut(self) -> None:
        self.open = False
        with self.lock:
            for end in self.sockets:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
            self.sockets.clear()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.listener.close()
        self.cut()


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[Proxy]:
    url = make_url(postgres_url)
    relay = Proxy(url.host or "127.0.0.1", url.port or 5432)
    yield relay
    relay.close()


@on_both_brokers
def test_postgres_unreachable_for_a_moment_is_survived_without_manual_action(
    proxy: Proxy, postgres_url: str, example_fleet: Path, broker: str
) -> None:
    database = Database(postgres_url)
    fleet = load_fleet(example_fleet)
    config = fleet.account("lxalgo", "paper")
    seed_books(BooksClient(database, fleet=fleet), config, example_fleet.parent / "books" / "lxalgo_paper.json")
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    through_proxy = make_url(postgres_url).set(port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(database_url=through_proxy, fleet=str(example_fleet), redis_url=REDIS_URL, broker_url=broker,
                        retry_backoff_max=2, retry_max=10)  # fmt: skip
    app = create_app(settings)
    try:  # the worker consumes the account's queue only: the retry must come back to it
        with in_process_worker(app, concurrency=1, queues=["recon.sim"], loglevel="CRITICAL"):
            proxy.cut()
            pending = app.send_task(RECONCILE_TASK, args=["lxalgo", "paper", "manual"], queue="recon.sim")
            deadline = time.monotonic() + 30
            while proxy.refused == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)
            proxy.restore()
            outcome = pending.get(timeout=60)
    finally:
        redis.flushdb()

    assert proxy.refused > 0  # the first attempt really met a database it could not reach
    assert [run["status"] for run in outcome["runs"]] == ["resolved"]
    with database.sessions() as session:
        assert [(r.reason, r.status) for r in session.scalars(select(Run))] == [("manual", "resolved")]
    database.dispose()


class PrivateRedis:
    """A redis-server of the test's own on a free port, which the test may stop and start again."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: the Redis restart test starts a private one")
        self.binary = binary
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                Redis.from_url(self.url, socket_timeout=1).ping()
                return
            except RedisError:
                time.sleep(0.05)
        pytest.fail("the private redis-server did not start within 10 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


def test_redis_restarted_mid_cycle_is_survived_without_manual_action(postgres_url: str, example_fleet: Path) -> None:
    database = Database(postgres_url)
    fleet = load_fleet(example_fleet)
    config = fleet.account("lxalgo", "paper")
    seed_books(BooksClient(database, fleet=fleet), config, example_fleet.parent / "books" / "lxalgo_paper.json")
    redis = PrivateRedis()
    redis.start()
    app = create_app(Settings(database_url=postgres_url, fleet=str(example_fleet), redis_url=redis.url))
    try:
        with start_worker(app, pool="threads", concurrency=1, perform_ping_check=False, queues=list(QUEUES),
                          loglevel="CRITICAL", shutdown_timeout=30):  # fmt: skip
            before = app.send_task(RECONCILE_TASK, args=["lxalgo", "paper", "manual"], queue="recon.sim")
            assert [r["status"] for r in before.get(timeout=60)["runs"]] == ["resolved"]
            redis.stop()  # the broker, the result backend and the locks vanish (no persistence)
            time.sleep(1.0)
            redis.start()
            after = app.send_task(RECONCILE_TASK, args=["lxalgo", "paper", "manual"], queue="recon.sim")
            assert [r["status"] for r in after.get(timeout=60)["runs"]] == ["in_sync"]
    finally:
        redis.stop()

    with database.sessions() as session:
        assert [r.status for r in session.scalars(select(Run).order_by(Run.id))] == ["resolved", "in_sync"]
    database.dispose()
