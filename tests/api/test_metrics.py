"""The metrics endpoint's body (``api.metrics.render_metrics``), after real runs of the example fleet on sim venues,
on SQLite and on Postgres: the figures equal what the runs recorded, and reading them costs the same few
statements whatever the fleet's size."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import event, func, select

from api.metrics import render_metrics
from cli.demo import seed_books
from models import Run
from models.database import Database
from reconciliation.policy import Rules
from tests.conftest import Clock, reconcile
from workers.books import BooksClient
from workers.counters import count_trigger, venue_counter
from workers.fleet import AccountConfig, Fleet, load_fleet

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(body: bytes) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, None when absent."""
    return found.get((name, frozenset(labels.items())))


@pytest.fixture
def fleet(example_fleet: Path, database: Database) -> Fleet:
    """The example fleet, its bots' books written."""
    loaded = load_fleet(example_fleet)
    client = BooksClient(database, fleet=loaded)
    for config in loaded.accounts:
        seed_books(client, config, example_fleet.parent / "books" / f"{config.bot}_{config.account}.json")
    return loaded


@pytest.fixture
def runs_made(database: Database, fleet: Fleet, clock: Clock, tmp_path: Path) -> Clock:
    """lxalgo/paper resolved, then in sync a minute later; momentum/live warned (a critical and a moderate break
    open); shortseller/live halted (a critical break open); lxalgo/live failed (its state file gone);
    momentum/paper and shortseller/paper never ran. The clock stands at the last run."""
    assert reconcile(database, fleet.account("lxalgo", "paper"), clock=clock).status == "resolved"
    clock.advance(60)
    assert reconcile(database, fleet.account("lxalgo", "paper"), clock=clock).status == "in_sync"
    assert reconcile(database, fleet.account("momentum", "live"), clock=clock).status == "warned"
    assert reconcile(database, fleet.account("shortseller", "live"), clock=clock).status == "halted"
    gone = replace(fleet.account("lxalgo", "live"), state_file=tmp_path / "gone.json")
    assert reconcile(database, gone, clock=clock).status == "failed"
    return clock


def test_runs_by_status_match_the_runs_made(database: Database, fleet: Fleet, runs_made: Clock) -> None:
    found = samples(render_metrics(database, None, fleet, runs_made.now)[0])

    def runs(bot: str, account: str, status: str) -> float | None:
        return value(found, "recon_runs_total", bot=bot, account=account, venue="sim", status=status)

    assert (runs("lxalgo", "paper", "resolved"), runs("lxalgo", "paper", "in_sync")) == (1, 1)
    assert (runs("momentum", "live", "warned"), runs("shortseller", "live", "halted")) == (1, 1)
    assert (runs("lxalgo", "live", "failed"), runs("lxalgo", "paper", "failed")) == (1, 0)
    assert runs("momentum", "paper", "failed") == 0  # never ran: zero, so increase() sees its first failure
    assert sum(v for (name, _), v in found.items() if name == "recon_runs_total") == 5


def test_halt_flags_and_open_breaks_by_severity(database: Database, fleet: Fleet, runs_made: Clock) -> None:
    found = samples(render_metrics(database, None, fleet, runs_made.now)[0])

    assert value(found, "recon_account_halted", bot="shortseller", account="live") == 1
    assert value(found, "recon_account_halted", bot="momentum", account="live") == 0
    assert value(found, "recon_account_halted", bot="shortseller", account="paper") == 0  # never ran
    breaks = {
        (dict(labels)["bot"], dict(labels)["account"], dict(labels)["severity"]): v
        for (name, labels), v in found.items()
        if name == "recon_open_breaks" and v
    }
    assert breaks == {
        ("momentum", "live", "critical"): 1,
        ("momentum", "live", "moderate"): 1,
        ("shortseller", "live", "critical"): 1,
    }
    later = samples(render_metrics(database, None, fleet, runs_made.advance(900))[0])
    age = value(later, "recon_oldest_open_break_age_seconds", bot="shortseller", account="live", severity="critical")
    assert age == 900


def test_last_success_is_when_the_latest_successful_run_ended(
    database: Database, fleet: Fleet, runs_made: Clock
) -> None:
    found = samples(render_metrics(database, None, fleet, runs_made.now)[0])

    def last(bot: str, account: str) -> float | None:
        return value(found, "recon_last_success_timestamp_seconds", bot=bot, account=account)

    assert last("lxalgo", "paper") == datetime(2026, 11, 20, 12, 1, tzinfo=UTC).timestamp()
    assert last("shortseller", "live") == runs_made.now.timestamp()  # a halting run decided and wrote: a success
    assert last("lxalgo", "live") is None  # only failed
    assert last("momentum", "paper") is None  # never ran


def test_durations_count_every_finished_run_by_venue(database: Database, fleet: Fleet, runs_made: Clock) -> None:
    body, content_type = render_metrics(database, None, fleet, runs_made.now)
    found = samples(body)

    assert content_type.startswith("text/plain")
    assert value(found, "recon_run_duration_seconds_count", venue="sim") == 5
    assert value(found, "recon_run_duration_seconds_bucket", venue="sim", le="+Inf") == 5
    assert value(found, "recon_run_duration_seconds_sum", venue="sim") == 0  # the test's clock stands still


def test_without_redis_the_redis_counters_are_absent(database: Database, fleet: Fleet, runs_made: Clock) -> None:
    names = {name for name, _ in samples(render_metrics(database, None, fleet, runs_made.now)[0])}

    assert not {n for n in names if n.startswith(("recon_venue_requests", "recon_trigger"))}


def test_with_redis_the_counters_it_holds_are_shown(database: Database, fleet: Fleet, redis: Redis) -> None:
    count = venue_counter(redis)
    for outcome in ("ok", "ok", "rate_limited"):
        count("bybit", outcome)
    count_trigger(redis, queued=True)
    count_trigger(redis, queued=False)
    count_trigger(redis, queued=False)

    found = samples(render_metrics(database, redis, fleet, datetime.now(UTC))[0])

    assert value(found, "recon_venue_requests_total", venue="bybit", outcome="ok") == 2
    assert value(found, "recon_venue_requests_total", venue="bybit", outcome="rate_limited") == 1
    assert value(found, "recon_trigger_total", outcome="queued") == 1
    assert value(found, "recon_trigger_total", outcome="joined") == 2


def test_a_redis_that_does_not_answer_leaves_the_database_figures(database: Database, fleet: Fleet) -> None:
    nowhere = Redis(host="127.0.0.1", port=9, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))  # refused at once

    names = {name for name, _ in samples(render_metrics(database, nowhere, fleet, datetime.now(UTC))[0])}

    assert "recon_account_halted" in names and "recon_venue_requests_total" not in names


# --- the cost of a scrape -----------------------------------------------------------------------------------------


@pytest.fixture
def statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements the database runs while the test does."""
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(database.engine, "before_cursor_execute", record)
    yield seen
    event.remove(database.engine, "before_cursor_execute", record)


def fleet_of(size: int, state: Path) -> Fleet:
    """``size`` accounts of one bot on an empty sim venue."""
    state.write_text('{"positions": []}')
    return Fleet.of(*(AccountConfig("bench", f"a{i}", "sim", Rules(), 300, state) for i in range(size)))


def scrape_statements(database: Database, fleet: Fleet, statements: list[str]) -> int:
    """How many statements one scrape runs after every account of ``fleet`` ran once."""
    for config in fleet.accounts:
        assert reconcile(database, config).status == "in_sync"
    statements.clear()
    render_metrics(database, None, fleet, datetime.now(UTC))
    return len(statements)


def test_a_scrape_runs_the_same_few_statements_for_3_or_30_accounts(
    database: Database, statements: list[str], tmp_path: Path
) -> None:
    small = scrape_statements(database, fleet_of(3, tmp_path / "small.json"), statements)
    with database.reading() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 3

    large = scrape_statements(database, fleet_of(30, tmp_path / "large.json"), statements)

    assert small == large
    assert large <= 5  # accounts, runs by status, open breaks, durations (SQLite adds its BEGIN)
