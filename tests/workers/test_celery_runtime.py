"""The distributed runtime with a real Celery worker (threads pool), real Redis and real Postgres; the core paths
(a queued run, coalesced triggers) with Redis and with RabbitMQ as message broker."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from pydantic import SecretStr
from redis import Redis
from sqlalchemy import func, select

import tasks.reconcile  # noqa: F401 - registers the tasks on the test app
from models import Alert, Fill, Run, history
from models.database import Database
from reconciliation.values import Snapshot
from tests.conftest import on_both_brokers, queued, reconcile
from venues.sim import SimVenue
from workers.alerts import raise_staleness_alerts
from workers.books import BooksClient
from workers.bot_client import BotClient
from workers.celery import create_app
from workers.coalescing import account_key
from workers.fleet import load_fleet
from workers.schedule import QUEUES, RECONCILE_TASK
from workers.service import Service
from workers.settings import Settings

TIMEOUT = 60


def runs_of(settings: Settings, bot: str, account: str) -> list[history.RunLine]:
    database = Database(settings.database_url.get_secret_value())
    with database.reading() as session:
        lines = history.list_runs(session, bot, account)
    database.dispose()
    return lines


def test_beat_has_one_entry_per_bot_and_account_of_the_example_fleet(app: Celery) -> None:
    schedule = {name: entry for name, entry in app.conf.beat_schedule.items() if name.startswith("reconcile:")}

    assert sorted(schedule) == sorted(
        f"reconcile:{bot}:{account}" for bot in ("lxalgo", "momentum", "shortseller") for account in ("paper", "live")
    )
    entry = schedule["reconcile:momentum:live"]
    assert (entry["schedule"], entry["options"]["queue"], entry["options"]["expires"]) == (120.0, "recon.sim", 108.0)


@on_both_brokers
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


@on_both_brokers
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

    # Coalesced: a trigger queues a task only when none is pending, and however a loaded machine spreads the fifty
    # over the runs, every run after the first answers a trigger that queued a task after the run before began
    assert 1 <= queued.count(True) < 50
    _wait_until_idle(redis, app, settings, "lxalgo", "live")
    database = Database(settings.database_url.get_secret_value())
    with database.reading() as session:
        fills = session.scalar(select(func.count()).select_from(Fill))
        distinct = session.scalar(select(func.count(func.distinct(Fill.fill_id))))
        runs = sorted((r.started_at, r.finished_at) for r in session.scalars(select(Run)))
    database.dispose()
    assert fills == distinct
    assert 1 <= len(runs) <= queued.count(True)
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
    database = Database(settings.database_url.get_secret_value())

    class TriggeredMeanwhile:
        """A fetch during which another trigger finds the account busy."""

        name = "sim"
        calls = 0

        def fetch_snapshot(self, now: Any) -> Snapshot:
            type(self).calls += 1
            if type(self).calls == 1:
                busy = Service(database, settings, redis).reconcile(config, "large_fill")
                assert busy.left_to_holder and busy.results == ()
            assert config.state_file is not None
            return SimVenue(config.state_file).fetch_snapshot(now)

        def lookup_order(self, order: Any) -> Any:
            return SimVenue(config.state_file).lookup_order(order)  # type: ignore[arg-type]

    holder = Service(database, settings, redis).reconcile(config, "schedule", venue=TriggeredMeanwhile())  # type: ignore[arg-type]
    database.dispose()

    assert [r.status for r in holder.results] == ["resolved", "in_sync"]
    requested, served = redis.hmget(f"{account_key('lxalgo', 'paper')}:triggers", ["requested", "served"])
    assert requested == served == b"1"
    assert not redis.exists(f"{account_key('lxalgo', 'paper')}:lock")


def _wait_until_idle(redis: Redis, app: Celery, settings: Settings, bot: str, account: str) -> None:
    """Until nothing is queued, the account is unlocked and no run is unfinished, for half a second in a row."""
    deadline = time.monotonic() + TIMEOUT
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        lines = runs_of(settings, bot, account)
        idle = (
            bool(lines)
            and all(line.status != "running" for line in lines)
            and not queued(app, "recon.sim")
            and not redis.exists(f"{account_key(bot, account)}:lock")
        )
        quiet_since = (quiet_since or time.monotonic()) if idle else None
        if quiet_since is not None and time.monotonic() - quiet_since > 0.5:
            return
        time.sleep(0.1)
    raise AssertionError(f"{bot}/{account}: the worker was still busy after {TIMEOUT} s")


class Webhook:
    """A local HTTP server that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.shutdown()


def alerts_of(settings: Settings) -> list[tuple[str, str, str, bool]]:
    database = Database(settings.database_url.get_secret_value())
    with database.reading() as session:
        rows = [(a.kind, a.subject, a.severity, a.delivered_at is not None) for a in session.scalars(select(Alert))]
    database.dispose()
    return sorted(rows)


def test_a_committed_run_chains_its_alerts_to_the_log_and_the_webhook_once_per_break(
    settings: Settings, webhook: Webhook, redis: Redis
) -> None:
    app = create_app(settings.model_copy(update={"alert_webhook_url": SecretStr(webhook.url)}))
    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False, queues=list(QUEUES),
                      loglevel="WARNING", shutdown_timeout=30):  # fmt: skip
        for _ in range(2):  # NVDA (opened by hand) persists: warned in both runs
            app.send_task(RECONCILE_TASK, args=["momentum", "live", "manual"], queue="recon.sim").get(timeout=TIMEOUT)
            _wait_until(lambda: alerts_of(settings) and all(delivered for *_, delivered in alerts_of(settings)))

    opened = [a for a in alerts_of(settings) if a[0] == "break_opened"]
    assert [subject for _, subject, _, _ in opened].count("position:us_equity:NVDA:0") == 1
    assert ("break_resolved", "position:us_equity:AAPL:0", "info", True) in alerts_of(settings)
    texts = "\n".join(body["text"] for body in webhook.bodies)
    assert "momentum/live break_opened" in texts and "NVDA" in texts
    assert texts.count("us_equity:NVDA:0") == 1


def test_a_follow_up_that_fails_for_good_is_recorded_as_an_alert(settings: Settings, redis: Redis) -> None:
    unreachable = settings.model_copy(
        update={"alert_webhook_url": SecretStr("http://127.0.0.1:9/nowhere"), "retry_max": 0}
    )
    app = create_app(unreachable)
    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False, queues=list(QUEUES),
                      loglevel="CRITICAL", shutdown_timeout=30):  # fmt: skip
        app.send_task(RECONCILE_TASK, args=["lxalgo", "paper", "manual"], queue="recon.sim").get(timeout=TIMEOUT)
        _wait_until(lambda: any(kind == "follow_up_failed" for kind, *_ in alerts_of(settings)))

    [failure] = [a for a in alerts_of(settings) if a[0] == "follow_up_failed"]
    assert failure[2] == "critical"


def test_an_account_without_a_successful_run_for_three_intervals_raises_one_staleness_alert(
    settings: Settings,
) -> None:
    fleet = load_fleet(Path(str(settings.fleet)))
    database = Database(settings.database_url.get_secret_value())
    assert reconcile(database, fleet.account("lxalgo", "paper")).status == "resolved"
    three_intervals_later = datetime.now(UTC) + timedelta(seconds=3 * 300 + 60)

    first = raise_staleness_alerts(database, fleet, three_intervals_later)
    again = raise_staleness_alerts(database, fleet, three_intervals_later + timedelta(minutes=1))
    database.dispose()

    assert (first, again) == (1, 0)  # accounts that never ran have nothing to be stale against
    assert [(kind, severity) for kind, _, severity, _ in alerts_of(settings) if kind == "stale"] == [
        ("stale", "critical")
    ]


def _wait_until(condition: Any) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {TIMEOUT} s")


def test_a_holder_whose_lock_expired_mid_run_cannot_write(settings: Settings, redis: Redis) -> None:
    short = settings.model_copy(
        update={"task_soft_time_limit": 1, "task_time_limit": 2, "lock_ttl": 3, "retry_backoff_max": 1,
                "visibility_timeout": 10}
    )  # fmt: skip
    config = load_fleet(Path(str(settings.fleet))).account("lxalgo", "paper")
    database = Database(settings.database_url.get_secret_value())
    takeover: list[Any] = []

    class OutlivesItsLock:
        """A fetch so slow that the lock expires and another worker takes the account meanwhile."""

        name = "sim"

        def fetch_snapshot(self, now: Any) -> Snapshot:
            time.sleep(short.lock_ttl + 0.3)
            takeover.append(Service(database, short, redis).reconcile(config, "schedule"))
            assert config.state_file is not None
            return SimVenue(config.state_file).fetch_snapshot(now)

        def lookup_order(self, order: Any) -> Any:
            return SimVenue(config.state_file).lookup_order(order)  # type: ignore[arg-type]

    stale = Service(database, short, redis).reconcile(config, "manual", venue=OutlivesItsLock())  # type: ignore[arg-type]
    with database.reading() as session:
        fills = session.scalar(select(func.count()).select_from(Fill))
        distinct = session.scalar(select(func.count(func.distinct(Fill.fill_id))))
    database.dispose()

    [newer] = takeover[0].results
    assert newer.status == "resolved"
    assert stale.results[0].status == "failed" and "lost the account" in (stale.results[0].error or "")
    assert fills == distinct
    assert BooksClient(Database(settings.database_url.get_secret_value())).positions("lxalgo", "paper")[0].qty == 30
