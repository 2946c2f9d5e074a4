"""Two bots trading one venue account (``venue_account`` in the fleet file), through ``recon`` on SQLite and Postgres,
and the one lock their runs share."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from models.database import Database
from models.run_records import start_run
from tests.conftest import REDIS_URL, SimState
from tests.workers.test_cli import Recon
from workers.books import BooksClient
from workers.coalescing import AccountBusy, AccountLock, serve
from workers.fleet import load_fleet
from workers.recovery import fail_lost_runs
from workers.results import RunResult
from workers.settings import Settings

SHARED_FLEET = """
[defaults]
grace_seconds = 0
[defaults.policy]
minor = "sync_to_broker"
moderate = "sync_to_broker"
critical = "halt_and_alert"

[bots.lxalgo.accounts.paper]
venue = "sim"
state_file = "main.json"
venue_account = "main"

[bots.momentum.accounts.paper]
venue = "sim"
state_file = "main.json"
venue_account = "main"
"""


def position(symbol: str, qty: str, avg: str) -> dict[str, Any]:
    return {"symbol": symbol, "side": "long", "qty": qty, "avg_price": avg, "mark_price": avg}


@pytest.fixture
def venue(tmp_path: Path) -> SimState:
    """The shared venue account: lxalgo's 1 BTC and momentum's 10 ETH, as the bots' books say."""
    state = SimState(tmp_path / "main.json")
    state.set([position("BTCUSDT", "1", "60000"), position("ETHUSDT", "10", "3000")])
    return state


@pytest.fixture
def recon(capsys: pytest.CaptureFixture[str], tmp_path: Path, database_url: str, venue: SimState) -> Recon:
    """``recon`` on a fleet where lxalgo and momentum share one venue account, each bot's books written."""
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(SHARED_FLEET)
    database = Database(database_url)
    books = BooksClient(database, fleet=load_fleet(fleet_file))
    books.record_fill("lxalgo", "paper", symbol="BTCUSDT", side="buy", qty="1", price="60000", fill_id="l-1",
                      time="2026-11-01T00:00:00Z")  # fmt: skip
    books.record_fill("momentum", "paper", symbol="ETHUSDT", side="buy", qty="10", price="3000", fill_id="m-1",
                      time="2026-11-01T00:00:00Z")  # fmt: skip
    database.dispose()
    return Recon(capsys, fleet_file, database_url)


def halted(recon: Recon) -> dict[str, bool]:
    """Which bots' accounts are halted, as ``recon fleet`` says."""
    code, out, err = recon("fleet", "--json")
    assert code == 0, err
    return {row["bot"]: row["halted"] for row in json.loads(out)}


def test_two_bots_sharing_one_venue_account_are_both_in_sync(recon: Recon) -> None:
    assert recon.json("reconcile", "lxalgo", "paper", expect=0)["status"] == "in_sync"
    assert recon.json("reconcile", "momentum", "paper", expect=0)["status"] == "in_sync"


def test_a_position_closed_by_hand_halts_only_the_bot_whose_books_hold_it(recon: Recon, venue: SimState) -> None:
    venue.set([position("BTCUSDT", "1", "60000")])  # momentum's ETH closed at the venue while it was down

    lxalgo = recon.json("reconcile", "lxalgo", "paper", expect=0)
    momentum = recon.json("reconcile", "momentum", "paper", expect=4)

    assert lxalgo["status"] == "in_sync"
    assert momentum["status"] == "halted"
    assert [(d["symbol"], d["kind"]) for d in momentum["discrepancies"]] == [("ETHUSDT", "missing_at_venue")]
    assert halted(recon) == {"lxalgo": False, "momentum": True}


def test_a_position_nobody_holds_is_reported_unattributed_by_each_bot_and_adopted_by_none(
    recon: Recon, venue: SimState
) -> None:
    venue.set([position("BTCUSDT", "1", "60000"), position("ETHUSDT", "10", "3000"), position("SOLUSDT", "5", "150")])

    reports = [recon.json("reconcile", bot, "paper", expect=1) for bot in ("lxalgo", "momentum")]

    for report in reports:
        (found,) = report["discrepancies"]
        assert (found["symbol"], found["outcome"]) == ("SOLUSDT", "warned")
        assert found["action"].startswith("unattributed in shared venue account 'main': held by none")
    books = [recon.json("ledger", "show", bot, "paper") for bot in ("lxalgo", "momentum")]
    assert [[p["symbol"] for p in b["positions"]] for b in books] == [["BTCUSDT"], ["ETHUSDT"]]


def test_a_scale_in_by_one_bot_is_followed_into_that_bots_books_only(recon: Recon, venue: SimState) -> None:
    venue.set([position("BTCUSDT", "1.04", "60000"), position("ETHUSDT", "10", "3000")])  # 4 %: moderate

    report = recon.json("reconcile", "lxalgo", "paper", expect=1)

    assert report["status"] == "resolved"
    positions = {p["symbol"]: Decimal(p["qty"]) for p in recon.json("ledger", "show", "lxalgo", "paper")["positions"]}
    assert positions == {"BTCUSDT": Decimal("1.04")}
    assert recon.json("reconcile", "momentum", "paper", expect=0)["status"] == "in_sync"


def test_accounts_naming_one_venue_account_must_point_at_the_same_venue(recon: Recon) -> None:
    lxalgo_on_another_file = SHARED_FLEET.replace('state_file = "main.json"', 'state_file = "other.json"', 1)
    recon.config.write_text(lxalgo_on_another_file)

    code, _, err = recon("reconcile", "lxalgo", "paper")

    assert code == 2
    assert "venue_account 'main' is named by lxalgo/paper, momentum/paper, which do not point at the same venue" in err


def test_runs_of_two_bots_on_one_venue_account_take_the_same_lock(tmp_path: Path, redis: Redis) -> None:
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(SHARED_FLEET + '\n[bots.shortseller.accounts.paper]\nvenue = "sim"\nstate_file = "x.json"\n')
    fleet = load_fleet(fleet_file)
    settings = Settings()
    lxalgo, momentum, shortseller = (
        AccountLock(redis, fleet.account(bot, "paper"), settings) for bot in ("lxalgo", "momentum", "shortseller")
    )

    assert lxalgo.acquire()
    try:
        assert not momentum.acquire()
        assert shortseller.acquire()
        shortseller.release()
    finally:
        lxalgo.release()
    assert momentum.acquire()
    momentum.release()


def test_a_request_finding_another_bots_run_on_the_shared_account_is_retried_not_left_to_that_run(
    tmp_path: Path, redis: Redis
) -> None:
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(SHARED_FLEET)
    fleet, settings = load_fleet(fleet_file), Settings()
    lxalgo, momentum = fleet.account("lxalgo", "paper"), fleet.account("momentum", "paper")

    def never(reason: str) -> RunResult:
        raise AssertionError("no run while the shared venue account is held")

    holder = AccountLock(redis, lxalgo, settings)
    assert holder.acquire()
    try:
        with pytest.raises(AccountBusy, match="another bot's run holds the shared venue account"):
            serve(AccountLock(redis, momentum, settings), never, reason="large_fill", dry_run=False, ticket=1)
        same_bot = serve(AccountLock(redis, lxalgo, settings), never, reason="manual", dry_run=False, ticket=None)
        assert same_bot.left_to_holder  # lxalgo's own holder sees the request when its run ends
    finally:
        holder.release()


def test_the_sweep_leaves_a_run_holding_its_shared_venue_accounts_lock_and_fails_it_once_free(
    tmp_path: Path, redis: Redis, postgres_url: str
) -> None:
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(SHARED_FLEET)
    settings = Settings(database_url=postgres_url, fleet=str(fleet_file), redis_url=REDIS_URL)
    database, started = Database(postgres_url), datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    with database.transaction() as session:
        run_id = start_run(session, "momentum", "paper", "sim", "manual", False, started).run_id
    later = started + timedelta(seconds=settings.task_time_limit + 60)
    holder = AccountLock(redis, load_fleet(fleet_file).account("momentum", "paper"), settings)
    assert holder.acquire()
    try:
        assert fail_lost_runs(database, redis, settings, later) == []  # its worker still holds the venue account
    finally:
        holder.release()

    assert [lost.run_id for lost in fail_lost_runs(database, redis, settings, later)] == [run_id]
    database.dispose()
