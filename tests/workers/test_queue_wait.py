"""``recon reconcile --queue`` as an operator meets it: no worker, a wait that runs out, progress on a terminal.

No worker consuming the account's queue is exit 6 within seconds and nothing is sent. A wait that runs out is
exit 7; the request is withdrawn, so a worker that takes it later discards it instead of running it (RabbitMQ drops
it itself when it expires). Each test runs with Redis and with RabbitMQ as message broker.
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from celery.result import AsyncResult
from redis import Redis

from tests.conftest import feed, on_both_brokers, queued, stop_process_groups
from tests.workers.test_worker_kill import runs, start_worker_process, wait_for
from workers.celery import create_app
from workers.schedule import RECONCILE_TASK
from workers.settings import Settings

REDIS_URL = os.environ.get("RECON_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RECON = Path(sys.executable).parent / "recon"
NO_WORKER, WAIT_EXPIRED, INTERRUPTED = 6, 7, 130


def recon_env(fleet: Path, database_url: str, broker: str = REDIS_URL) -> dict[str, str]:
    return {**os.environ, "RECON_FLEET": str(fleet), "RECON_DATABASE_URL": database_url,
            "RECON_REDIS_URL": REDIS_URL, "RECON_BROKER_URL": broker}  # fmt: skip


def waiting(fleet: Path, database_url: str, broker: str, wait: str, *, stderr: int) -> subprocess.Popen[bytes]:
    """``recon reconcile lxalgo paper --queue --wait WAIT`` started in the background."""
    return subprocess.Popen([str(RECON), "reconcile", "lxalgo", "paper", "--queue", "--wait", wait],
                            env=recon_env(fleet, database_url, broker), cwd=fleet.parent, stdout=subprocess.PIPE,
                            stderr=stderr)  # fmt: skip


class Terminal:
    """A pseudo-terminal for a child's stderr, read in the background so the child never blocks on it."""

    def __init__(self) -> None:
        self.reader, self.writer = pty.openpty()
        self.chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.reader, 4096)
            except OSError:
                return
            if not chunk:
                return
            self.chunks.append(chunk)

    def text(self) -> str:
        os.close(self.writer)
        self._thread.join(timeout=5)
        os.close(self.reader)
        return b"".join(self.chunks).decode(errors="replace")


@on_both_brokers
def test_no_worker_on_the_accounts_queue_is_exit_6_at_once_and_nothing_is_sent(
    example_fleet: Path, postgres_url: str, broker: str
) -> None:
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    app = create_app(Settings(database_url=postgres_url, fleet=str(example_fleet), redis_url=REDIS_URL,
                              broker_url=broker))  # fmt: skip
    began = time.monotonic()
    done = subprocess.run([str(RECON), "reconcile", "lxalgo", "paper", "--queue"], check=False,
                          env=recon_env(example_fleet, postgres_url, broker), cwd=example_fleet.parent,
                          capture_output=True, timeout=60)  # fmt: skip
    took = time.monotonic() - began

    assert done.returncode == NO_WORKER
    assert done.stderr.decode().splitlines() == [
        "recon: error: no worker consumes queue recon.sim: start one (`honcho start worker`) and try again"
    ]
    assert done.stdout == b""
    assert took < 30, "the check does not wait out --wait's 300 s"
    assert queued(app, "recon.sim") == 0, "nothing waits in the queue for a worker that comes later"
    assert runs(postgres_url) == []


@on_both_brokers
def test_callers_who_stop_waiting_get_exit_7_or_130_and_their_withdrawn_requests_never_run(
    blocking_fleet: Path, postgres_url: str, broker: str
) -> None:
    """One pool process: the first run blocks reading its venue, so later requests wait in the queue.

    The first caller's wait runs out while its run is under way; the second's while its request is queued; the
    third presses ^C. The first run finishes when the venue answers; the worker discards the other two (on
    RabbitMQ the second's request expires in the broker first, and is dropped there).
    """
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    on_rabbitmq = broker.startswith("amqp")
    app = create_app(Settings(database_url=postgres_url, fleet=str(blocking_fleet), redis_url=REDIS_URL,
                              broker_url=broker))  # fmt: skip
    worker = start_worker_process(blocking_fleet, postgres_url, "waited", limits={}, broker=broker)  # no limit hit
    terminal = Terminal()
    try:
        wait_for(lambda: app.control.inspect(timeout=1).active_queues(), 60)
        first = waiting(blocking_fleet, postgres_url, broker, "10", stderr=subprocess.PIPE)
        wait_for(lambda: runs(postgres_url) == [("manual", "running")], 60)  # blocked reading the venue
        second = waiting(blocking_fleet, postgres_url, broker, "3", stderr=terminal.writer)
        second_out, _ = second.communicate(timeout=60)
        shown = terminal.text()
        third = waiting(blocking_fleet, postgres_url, broker, "120", stderr=subprocess.PIPE)
        # the third's request behind the second's; on RabbitMQ the second's expired (after 3 s) and was dropped
        wait_for(lambda: queued(app, "recon.sim") == (1 if on_rabbitmq else 2), 60)
        third.send_signal(signal.SIGINT)
        third_out, third_err = third.communicate(timeout=60)
        first_out, first_err = first.communicate(timeout=60)

        feed(blocking_fleet.parent / "venues" / "lxalgo_paper.json", _example_state())
        wait_for(lambda: runs(postgres_url) == [("manual", "resolved")], 60)
        withdrawn = re.search(r"task ([0-9a-f-]{36})", shown)
        assert withdrawn is not None, shown
        wait_for(lambda: AsyncResult(withdrawn.group(1), app=app).state == "REVOKED", 60)
        wait_for(lambda: queued(app, "recon.sim") == 0, 30)
    finally:
        stop_process_groups(worker)
        redis.flushdb()

    assert (first.returncode, first_out) == (WAIT_EXPIRED, b"")
    assert first_err.decode().startswith(
        "recon: error: the run started on a worker and did not finish within 10 s: it finishes there and is not "
        "retried (task "
    )
    assert (second.returncode, second_out) == (WAIT_EXPIRED, b""), "no report: no run served the request"
    assert "lxalgo/paper: waiting for a worker (recon.sim)" in shown, "the terminal shows what the wait is for"
    assert re.search(r"\d+ s of 3 s", shown), "and for how long"
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown).replace("\r", "\n")  # without the terminal's controls
    error_lines = [line for line in plain.splitlines() if line.startswith("recon: error:")]
    assert len(error_lines) == 1
    assert "no worker took the run within 3 s; it was withdrawn" in error_lines[0]
    assert (third.returncode, third_out, third_err.decode().split()) == (
        INTERRUPTED, b"", ["recon:", "error:", "interrupted"]
    )  # fmt: skip
    assert runs(postgres_url) == [("manual", "resolved")], "the withdrawn requests never ran"


def _example_state() -> str:
    return (Path(__file__).resolve().parents[2] / "cli" / "examples" / "venues" / "lxalgo_paper.json").read_text()


@on_both_brokers
def test_a_request_that_finds_the_account_held_is_served_by_the_holders_next_run_and_shows_its_report(
    blocking_fleet: Path, postgres_url: str, broker: str
) -> None:
    """Two pool processes: the CLI's task finds the account held and leaves its ticket to the holder, which runs
    once more for it; the CLI waits for that run and prints its report."""
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    app = create_app(Settings(database_url=postgres_url, fleet=str(blocking_fleet), redis_url=REDIS_URL,
                              broker_url=broker))  # fmt: skip
    worker = start_worker_process(blocking_fleet, postgres_url, "held", limits={}, concurrency=2, broker=broker)
    pipe = blocking_fleet.parent / "venues" / "lxalgo_paper.json"
    try:
        wait_for(lambda: app.control.inspect(timeout=1).active_queues(), 60)
        app.send_task(RECONCILE_TASK, args=["lxalgo", "paper", "manual"], queue="recon.sim")
        wait_for(lambda: runs(postgres_url) == [("manual", "running")], 60)  # the holder, blocked on the venue
        cli = subprocess.Popen([str(RECON), "reconcile", "lxalgo", "paper", "--queue", "--wait", "120", "--json"],
                               env=recon_env(blocking_fleet, postgres_url, broker), cwd=blocking_fleet.parent,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        wait_for(lambda: redis.keys("celery-task-meta-*"), 60)  # the CLI's task ended: left to the holder
        feed(pipe, _example_state()).join(timeout=60)
        wait_for(lambda: runs(postgres_url) == [("manual", "resolved"), ("manual", "running")], 60)
        feed(pipe, _example_state()).join(timeout=60)
        out, err = cli.communicate(timeout=60)
    finally:
        stop_process_groups(worker)
        redis.flushdb()

    assert err == b""
    report = json.loads(out)
    assert (cli.returncode, report["run_id"], report["status"]) == (0, 2, "in_sync")
    assert runs(postgres_url) == [("manual", "resolved"), ("manual", "in_sync")]
