"""`recon ledger show` on SQLite and Postgres: realized P&L per instrument and for the account (seed 004's scale-in
makes 340,000), the text view with averages rounded for reading while the JSON keeps full precision."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from cli.app import main
from models.database import Database
from tests.conftest import books_for


def recon(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> str:
    capsys.readouterr()
    try:
        main(["--db", url, *args])
    except SystemExit as done:
        assert not done.code, capsys.readouterr().err
    return capsys.readouterr().out


def fill(database: Database, account: str, fill_id: str, symbol: str, side: str, qty: str, price: str,
         fee: str = "0", day: int = 2) -> None:  # fmt: skip
    books_for(database).record_fill("lxalgo", account, symbol=symbol, side=side, qty=qty, price=price, fee=fee,
                                    fill_id=fill_id, time=f"2026-11-0{day}T09:00:00Z", category="linear")  # fmt: skip


def seed_004_scale_in(database: Database) -> None:
    """Seed 004: buy 100 @ 50,000, scale in 50 @ 51,000, sell 120 @ 53,000 (FIFO: 300,000 + 40,000)."""
    fill(database, "paper", "s1", "BTCUSDT", "buy", "100", "50000", day=1)
    fill(database, "paper", "s2", "BTCUSDT", "buy", "50", "51000", day=2)
    fill(database, "paper", "s3", "BTCUSDT", "sell", "120", "53000", day=3)


def test_seed_004_scale_in_realizes_340000_for_the_instrument_and_the_account(
    database: Database, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_004_scale_in(database)

    document = json.loads(recon(capsys, database_url, "ledger", "show", "lxalgo", "paper", "--json"))

    realized = document["realized_pnl"]
    sums = {"trades": 2, "estimated_exits": 0, "gross": "340000", "fees": "0", "net": "340000"}
    assert realized == {
        "by_instrument": [{"category": "linear", "symbol": "BTCUSDT", "leg": 0, **sums}],
        "total": sums,
    }
    [position] = document["positions"]
    assert (position["qty"], position["avg_entry"]) == ("30", "51000")


def test_fees_split_gross_from_net_per_instrument_and_the_total_adds_them(
    database: Database, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_004_scale_in(database)
    fill(database, "paper", "e1", "ETHUSDT", "buy", "40", "3000", fee="6.6")
    fill(database, "paper", "e2", "ETHUSDT", "sell", "40", "3150", fee="6.93", day=4)

    realized = json.loads(recon(capsys, database_url, "ledger", "show", "lxalgo", "paper", "--json"))["realized_pnl"]

    eth = realized["by_instrument"][1]
    assert (eth["symbol"], eth["gross"], eth["fees"], eth["net"]) == ("ETHUSDT", "6000", "13.53", "5986.47")
    assert realized["total"] == {"trades": 3, "estimated_exits": 0, "gross": "346000", "fees": "13.53",
                                 "net": "345986.47"}  # fmt: skip


def test_the_text_view_rounds_the_average_entry_for_reading_and_the_json_keeps_it_whole(
    database: Database, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(database, "live", "l1", "BTCUSDT", "buy", "100", "50000", day=1)
    fill(database, "live", "l2", "BTCUSDT", "buy", "50", "51000", day=2)
    seed_004_scale_in(database)

    live: dict[str, Any] = json.loads(recon(capsys, database_url, "ledger", "show", "lxalgo", "live", "--json"))
    live_text = recon(capsys, database_url, "ledger", "show", "lxalgo", "live")
    paper_text = recon(capsys, database_url, "ledger", "show", "lxalgo", "paper")

    [position] = live["positions"]
    assert Decimal(position["avg_entry"]).quantize(Decimal("1e-12")) == Decimal("50333.333333333333")
    assert "50,333.33 " in live_text and "50333.3333" not in live_text
    assert "realized P&L" in paper_text
    [total] = [line.split() for line in paper_text.splitlines() if line.strip().startswith("account total")]
    assert total == ["account", "total", "2", "340,000.00", "0.00", "340,000.00"]
