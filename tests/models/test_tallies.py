"""The run tallies the database keeps (migration 0005's triggers), on SQLite and on Postgres: after runs end in every
way the code ends them, the tallies say what grouping the whole run history says; a run counts once, when it
becomes finished, real runs only, and never from a transaction that rolled back; durations fall in their bucket."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, func, select, text, update
from sqlalchemy.orm import Session

from models import DurationTally, Run, RunTally
from models.accounts import account_id_of
from models.database import Database, make_engine, upgrade
from models.metrics import fleet_figures
from models.run_records import begin_run, fail_run
from models.tallies import DURATION_BUCKETS
from reconciliation.policy import Rules
from tests.conftest import Clock, create_schema, drop_schema, postgres_base_url, reconcile, schema_url
from workers.fleet import AccountConfig

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

Tallies = dict[tuple[int, str], tuple[int, datetime]]


def tallies(session: Session) -> Tallies:
    """Each (account, status) tally: runs and the latest finish."""
    rows = session.execute(select(RunTally.account_id, RunTally.status, RunTally.runs, RunTally.last_finished_at))
    return {(account, status): (runs, last) for account, status, runs, last in rows}


def history(session: Session) -> Tallies:
    """The same figures grouped from the run history, as the metrics did before the tallies."""
    rows = session.execute(
        select(Run.account_id, Run.status, func.count(), func.max(Run.finished_at))
        .where(Run.finished_at.is_not(None), Run.dry_run.is_(False))
        .group_by(Run.account_id, Run.status)
    )
    return {(account, status): (runs, last) for account, status, runs, last in rows}


@pytest.fixture
def sim_account(tmp_path: Path) -> AccountConfig:
    """One account on a sim venue holding nothing."""
    state = tmp_path / "venue.json"
    state.write_text('{"positions": []}')
    return AccountConfig("tally", "paper", "sim", Rules(), 300, state)


def test_after_runs_end_every_way_the_tallies_equal_the_history(
    database: Database, sim_account: AccountConfig, clock: Clock
) -> None:
    assert reconcile(database, sim_account, clock=clock).status == "in_sync"  # the plan's transaction
    assert reconcile(database, sim_account, clock=clock, dry_run=True).status == "in_sync"  # not counted
    sim_account.state_file.unlink()
    assert reconcile(database, sim_account, clock=clock).status == "failed"  # recorded as failed
    with database.transaction() as session:
        account = account_id_of(session, "tally", "paper", T0)
        abandoned = begin_run(session, account, "manual", False, clock.advance(1)).run_id
    with database.transaction() as session:
        begin_run(session, account, "manual", False, clock.advance(1))  # fences the abandoned run: failed
    with database.transaction() as session:
        lost = begin_run(session, account, "schedule", False, clock.advance(1)).run_id  # fences the one before
    with database.transaction() as session:
        assert fail_run(session, lost, "worker lost", clock.advance(5))
        assert not fail_run(session, lost, "worker lost", clock.advance(5))  # already ended: no change

    with database.reading() as session:
        found, grouped = tallies(session), history(session)
        abandoned_status = session.get_one(Run, abandoned).status

    assert abandoned_status == "failed"
    assert found == grouped
    assert found[(account, "failed")][0] == 4 and found[(account, "in_sync")][0] == 1


def test_a_run_counts_once_when_it_finishes_and_not_again_when_its_row_changes_later(
    database: Database, sim_account: AccountConfig, clock: Clock
) -> None:
    with database.transaction() as session:
        account = account_id_of(session, "tally", "paper", T0)
        run_id = begin_run(session, account, "manual", False, T0).run_id
    with database.transaction() as session:
        fail_run(session, run_id, "venue down", T0 + timedelta(seconds=2))
    with database.transaction() as session:
        fail_run(session, run_id, "venue down, said again", T0 + timedelta(seconds=9))
        session.execute(update(Run).where(Run.id == run_id).values(matched=4))

    with database.reading() as session:
        assert tallies(session) == {(account, "failed"): (1, T0 + timedelta(seconds=2))}


def test_a_run_finished_in_a_transaction_that_rolled_back_is_not_counted(
    database: Database, sim_account: AccountConfig
) -> None:
    with database.transaction() as session:
        account = account_id_of(session, "tally", "paper", T0)
        run_id = begin_run(session, account, "manual", False, T0).run_id

    with pytest.raises(RuntimeError), database.transaction() as session:
        fail_run(session, run_id, "venue down", T0 + timedelta(seconds=1))
        raise RuntimeError("the transaction fails after the run was marked finished")

    with database.reading() as session:
        assert tallies(session) == {}
        assert session.get_one(Run, run_id).status == "running"


def test_a_run_recorded_already_finished_counts_and_a_dry_one_does_not(
    database: Database, sim_account: AccountConfig
) -> None:
    with database.transaction() as session:
        account = account_id_of(session, "tally", "paper", T0)
        for dry_run in (False, True):
            session.add(Run(account_id=account, reason="manual", status="warned", dry_run=dry_run, epoch=0,
                            started_at=T0, finished_at=T0 + timedelta(seconds=1)))  # fmt: skip

    with database.reading() as session:
        assert tallies(session) == {(account, "warned"): (1, T0 + timedelta(seconds=1))}


def test_each_duration_falls_in_the_bucket_of_the_first_bound_it_does_not_exceed(
    database: Database, sim_account: AccountConfig
) -> None:
    durations = [0.05, 0.1, 0.3, 7.0, 400.0]  # 0.1 is a bound: "at most" puts it in its own bucket
    with database.transaction() as session:
        account = account_id_of(session, "tally", "paper", T0, venue="sim")
        for seconds in durations:
            session.add(Run(account_id=account, reason="manual", status="in_sync", dry_run=False, epoch=0,
                            started_at=T0, finished_at=T0 + timedelta(seconds=seconds)))  # fmt: skip

    with database.reading() as session:
        (sim,) = fleet_figures(session).durations
        buckets = {bucket: runs for bucket, runs in session.execute(select(DurationTally.bucket, DurationTally.runs))}

    assert buckets == {0: 2, 2: 1, 6: 1, len(DURATION_BUCKETS): 1}
    expected = tuple(sum(1 for s in durations if s <= bound) for bound in DURATION_BUCKETS)
    assert (sim.venue, sim.cumulative, sim.count) == ("sim", expected, 5)
    assert sim.total_seconds == pytest.approx(sum(durations))


# --- the migration ----------------------------------------------------------------------------------------------


@contextmanager
def postgres_at(revision: str) -> Iterator[Engine]:
    """An engine on a new Postgres schema migrated to ``revision``."""
    base = postgres_base_url()
    schema = create_schema(base)
    engine = make_engine(schema_url(base, schema))
    try:
        upgrade(engine, revision)
        yield engine
    finally:
        engine.dispose()
        drop_schema(base, schema)


@pytest.fixture(params=["sqlite", "postgres"])
def engine_at_0004(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database migrated to 0004, before the tallies existed."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'books.db'}")
        upgrade(engine, "0004")
        yield engine
        engine.dispose()
        return
    with postgres_at("0004") as engine:
        yield engine


@pytest.fixture
def postgres_at_0004() -> Iterator[Engine]:
    """An engine on a Postgres schema migrated to 0004, before the tallies existed."""
    with postgres_at("0004") as engine:
        yield engine


def add_account(connection: Connection) -> None:
    """Bot 1 with its account 1 on Bybit."""
    connection.execute(text("INSERT INTO bots (id, name, created_at) VALUES (1, 'lxalgo', :t)"), {"t": T0})
    connection.execute(
        text("INSERT INTO accounts (id, bot_id, name, venue, epoch, halted, created_at) "
             "VALUES (1, 1, 'live', 'bybit', 0, false, :t)"),
        {"t": T0},
    )  # fmt: skip


def add_running_run(connection: Connection, epoch: int) -> int:
    """A real run of account 1 still running; its id."""
    return int(
        connection.execute(
            text("INSERT INTO runs (account_id, reason, status, dry_run, epoch, started_at, matched) "
                 "VALUES (1, 'schedule', 'running', false, :epoch, :start, 0) RETURNING id"),
            {"epoch": epoch, "start": T0},
        ).scalar_one()
    )  # fmt: skip


def test_the_migration_counts_the_history_recorded_before_it(engine_at_0004: Engine) -> None:
    with engine_at_0004.begin() as connection:
        add_account(connection)
        runs = [("in_sync", False, 0.2), ("in_sync", False, 3.0), ("failed", False, 0.01), ("in_sync", True, 0.2)]
        for index, (status, dry_run, seconds) in enumerate(runs):
            connection.execute(
                text("INSERT INTO runs (account_id, reason, status, dry_run, epoch, started_at, finished_at, matched) "
                     "VALUES (1, 'schedule', :status, :dry, :epoch, :start, :end, 0)"),
                {"status": status, "dry": dry_run, "epoch": index, "start": T0 + timedelta(minutes=index),
                 "end": T0 + timedelta(minutes=index, seconds=seconds)},
            )  # fmt: skip
        add_running_run(connection, epoch=9)

    upgrade(engine_at_0004)

    database = Database(str(engine_at_0004.url.render_as_string(hide_password=False)))
    try:
        with database.reading() as session:
            assert tallies(session) == history(session)
            assert tallies(session)[(1, "in_sync")] == (2, T0 + timedelta(minutes=1, seconds=3))
            (bybit,) = fleet_figures(session).durations
        assert (bybit.venue, bybit.count, bybit.cumulative[:6]) == ("bybit", 3, (1, 2, 2, 2, 2, 3))
    finally:
        database.dispose()


def test_a_run_finishing_as_the_migration_starts_is_counted_once(postgres_at_0004: Engine) -> None:
    """A worker still running during a deploy finishes a run in a transaction that commits while the migration
    runs: the run is in the tallies the migration starts from, or counted by the triggers, never neither."""
    with postgres_at_0004.begin() as connection:
        add_account(connection)
        run_id = add_running_run(connection, epoch=1)
    finished_at = T0 + timedelta(seconds=2)
    migration = ThreadPoolExecutor(max_workers=1)
    with postgres_at_0004.connect() as worker, postgres_at_0004.connect() as observer:
        worker.execute(
            text("UPDATE runs SET status = 'in_sync', finished_at = :end WHERE id = :id"),
            {"end": finished_at, "id": run_id},
        )  # the worker's transaction, not committed yet
        migrated = migration.submit(upgrade, postgres_at_0004)
        deadline = time.monotonic() + 30
        while not migrated.done() and not waiting_on_a_lock(observer) and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.commit()
    migrated.result(timeout=60)
    migration.shutdown()

    database = Database(str(postgres_at_0004.url.render_as_string(hide_password=False)))
    try:
        with database.reading() as session:
            assert tallies(session) == history(session) == {(1, "in_sync"): (1, finished_at)}
    finally:
        database.dispose()


def waiting_on_a_lock(observer: Connection) -> bool:
    """Whether another session of this database waits for a lock (the migration, behind the worker)."""
    found = observer.execute(
        text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND wait_event_type = 'Lock'"
        )
    ).scalar_one()
    observer.rollback()  # a fresh snapshot of the activity next time
    return bool(found)
