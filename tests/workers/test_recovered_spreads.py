"""Orphaned option legs adopted as one spread with its net entry credit, and P&L and values with the contract
multiplier, through ``recon`` on SQLite and Postgres."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from models.database import Database
from tests.conftest import SimState
from tests.workers.test_cli import Recon
from workers.books import BooksClient
from workers.fleet import load_fleet

OPTIONS_FLEET = """
[defaults]
grace_seconds = 0
[defaults.policy]
minor = "sync_to_broker"
moderate = "sync_to_broker"
critical = "sync_to_broker"

[bots.gamma.accounts.paper]
venue = "sim"
state_file = "venue.json"
[bots.gamma.accounts.paper.multipliers]
"future:ESZ6" = 50
"""
LONG_PUT, SHORT_PUT = "NDX261218P25560000", "NDX261218P25620000"


def option(symbol: str, side: str, avg: str, mark: str) -> dict[str, Any]:
    return {"symbol": symbol, "category": "us_option", "side": side, "qty": "1", "avg_price": avg, "mark_price": mark}


@pytest.fixture
def venue(tmp_path: Path) -> SimState:
    """The seed's orphaned NDX put spread: long the 25560 put at 13.20, short the 25620 put at 21.00."""
    state = SimState(tmp_path / "venue.json")
    state.set([option(LONG_PUT, "long", "13.20", "12"), option(SHORT_PUT, "short", "21.00", "19")],
              cash={"currency": "USD", "balance": "100000"})  # fmt: skip
    return state


@pytest.fixture
def recon(capsys: pytest.CaptureFixture[str], tmp_path: Path, database_url: str, venue: SimState) -> Recon:
    """``recon`` on a fleet whose options bot lost track of its positions (its books are empty)."""
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(OPTIONS_FLEET)
    return Recon(capsys, fleet_file, database_url)


def test_an_orphaned_put_spread_is_adopted_as_one_group_with_its_net_entry_credit(recon: Recon) -> None:
    report = recon.json("reconcile", "gamma", "paper", expect=1)
    books = recon.json("ledger", "show", "gamma", "paper")

    assert report["status"] == "resolved"
    (group,) = books["groups"]
    assert (group["name"].startswith("recovered NDX 2026-12-18 "), group["net_entry_credit"]) == (True, "780")
    assert {p["symbol"]: (p["qty"], p["multiplier"]) for p in books["positions"]} == {
        LONG_PUT: ("1", "100"),
        SHORT_PUT: ("-1", "100"),
    }
    assert {lot["group"] for p in books["positions"] for lot in p["lots"]} == {group["name"]}
    assert report["summary"]["venue_value_at_mark"] == {"USD": "3100"}  # (12 + 19) × 100


def test_a_leg_closed_by_hand_realizes_its_pnl_times_the_multiplier_and_closes_the_group(
    recon: Recon, venue: SimState
) -> None:
    recon.json("reconcile", "gamma", "paper", expect=1)
    venue.set([option(LONG_PUT, "long", "13.20", "12")], marks=[{"symbol": SHORT_PUT, "category": "us_option",
              "price": "5"}], cash={"currency": "USD", "balance": "100000"})  # fmt: skip

    recon.json("reconcile", "gamma", "paper", expect=1)
    books = recon.json("ledger", "show", "gamma", "paper")

    (trade,) = books["trades"]
    assert (trade["symbol"], trade["gross_pnl"], trade["multiplier"]) == (SHORT_PUT, "1600", "100")  # (21 − 5) × 100
    assert books["groups"][0]["status"] == "CLOSED_EXTERNALLY"


def test_a_bots_own_fills_carry_the_configured_or_default_multiplier(
    recon: Recon, database_url: str, venue: SimState
) -> None:
    future = {"symbol": "ESZ6", "category": "future", "side": "long", "qty": "1", "avg_price": "6000"}
    venue.set([option(LONG_PUT, "long", "13.20", "12"), future])  # the venue trades both categories
    books = BooksClient(Database(database_url), fleet=load_fleet(recon.config))
    for fill_id, category, symbol, side, price in (
        ("f1", "us_option", LONG_PUT, "buy", "13.20"),
        ("f2", "us_option", LONG_PUT, "sell", "14.20"),
        ("f3", "future", "ESZ6", "buy", "6000"),
        ("f4", "future", "ESZ6", "sell", "6010"),
    ):
        books.record_fill("gamma", "paper", symbol=symbol, side=side, qty="1", price=price, fill_id=fill_id,
                          category=category, time="2026-11-01T00:00:00Z")  # fmt: skip
    books.database.dispose()

    trades = recon.json("ledger", "show", "gamma", "paper")["trades"]

    assert {t["symbol"]: (t["gross_pnl"], t["multiplier"]) for t in trades} == {
        LONG_PUT: ("100", "100"),
        "ESZ6": ("500", "50"),
    }


def test_a_backfilled_exit_of_an_option_leg_is_reckoned_with_the_multiplier(recon: Recon, venue: SimState) -> None:
    recon.json("reconcile", "gamma", "paper", expect=1)
    cash = {"currency": "USD", "balance": "100000"}
    venue.set([option(LONG_PUT, "long", "13.20", "12")], cash=cash,
              marks=[{"symbol": SHORT_PUT, "category": "us_option", "price": "5"}])  # fmt: skip
    recon.json("reconcile", "gamma", "paper", expect=1)
    (estimated,) = recon.json("ledger", "show", "gamma", "paper")["trades"]
    entry, exit_ = (datetime.fromisoformat(estimated[f"{end}_time"]) for end in ("entry", "exit"))
    real_exit = {"fill_id": "v-close", "symbol": SHORT_PUT, "category": "us_option", "side": "buy", "qty": "1",
                 "price": "6", "time": (entry + (exit_ - entry) / 2).isoformat()}  # fmt: skip
    venue.set([option(LONG_PUT, "long", "13.20", "12")], cash=cash, fills=[real_exit])

    recon.json("backfill", "gamma", "paper", expect=0)

    (trade,) = recon.json("ledger", "show", "gamma", "paper")["trades"]
    assert (trade["exit_price"], trade["gross_pnl"], trade["exit_estimated"]) == ("6", "1500", False)  # (21 − 6) × 100
