"""``recon venue snapshot``: what a venue reports, captured as a sim state file through the real SDKs against the
loopback exchange, replays as the same discrepancies (the rehearsal), and holds no credential."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_exchange import FakeExchange

from cli.app import main
from models.database import Database
from reconciliation.values import Snapshot
from tests.conftest import books_for
from venues.sim import SimVenue, parse_state
from venues.sim_state import state_document
from workers.books import BooksClient

KEYS = {
    "bybit": ("snap-bybit-key-7f21", "snap-bybit-secret-93ac"),
    "alpaca": ("snap-alpaca-key-4d02", "snap-alpaca-secret-c5e8"),
}
POLICY = """
grace_seconds = 0
[bots.lxalgo.accounts.live.policy]
minor = "sync_to_broker"
moderate = "sync_to_broker"
critical = "sync_to_broker"
[bots.lxalgo.accounts.live.policy.by_kind]
missing_in_ledger = "sync_to_broker"
"""
RECENT = datetime.now(UTC) - timedelta(hours=2)


@pytest.fixture
def exchange() -> Iterator[FakeExchange]:
    """A loopback exchange that knows only the distinctive keys the test scans the files for."""
    bybit, alpaca = KEYS["bybit"], KEYS["alpaca"]
    with FakeExchange(bybit_keys={bybit[0]: bybit[1]}, alpaca_keys={alpaca[0]: alpaca[1]}) as fake:
        yield fake


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for venue, (key, secret) in KEYS.items():
        monkeypatch.setenv(f"{venue.upper()}_KEY", key)
        monkeypatch.setenv(f"{venue.upper()}_SECRET", secret)


class Recon:
    """``recon`` in-process with a database: exit code, stdout and stderr."""

    def __init__(self, capsys: pytest.CaptureFixture[str], db: str) -> None:
        self.capsys, self.db = capsys, db

    def __call__(self, config: Path, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            main(["--config", str(config), "--db", self.db, *args])
        except SystemExit as done:
            captured = self.capsys.readouterr()
            return int(done.code or 0), captured.out, captured.err
        raise AssertionError("main always exits")


@pytest.fixture
def recon(capsys: pytest.CaptureFixture[str], database_url: str) -> Recon:
    return Recon(capsys, database_url)


def real_fleet(tmp_path: Path, exchange: FakeExchange, venue: str) -> Path:
    extra = 'environment = "testnet"\nsettle_coins = ["USDT"]' if venue == "bybit" else 'environment = "paper"'
    path = tmp_path / f"{venue}.toml"
    path.write_text(f"""
[bots.lxalgo.accounts.live]
venue = "{venue}"
{extra}
base_url = "{exchange.url}"
api_key_env = "{venue.upper()}_KEY"
api_secret_env = "{venue.upper()}_SECRET"
timeout_seconds = 2
{POLICY}""")
    return path


def rehearsal_fleet(tmp_path: Path, state_file: Path) -> Path:
    """The same account, its venue replaced by the captured state file: what an operator writes to rehearse."""
    path = tmp_path / "rehearsal.toml"
    path.write_text(f'[bots.lxalgo.accounts.live]\nvenue = "sim"\nstate_file = "{state_file}"\n{POLICY}')
    return path


def decided(report: dict[str, Any]) -> dict[str, Any]:
    """What a dry run found and would do, without what names the run or its venue."""
    return {key: report[key] for key in ("status", "discrepancies", "cash", "orders", "summary")} | {
        "actions": [(a["kind"], a["subject"], a["applied"], a["after"], a["detail"]) for a in report["actions"]]
    }


def bybit_incident(exchange: FakeExchange, books: BooksClient) -> None:
    """A partial close by hand (with the venue's fill), a liquidated position (flat row with a mark), a hedge leg
    opened by hand, an order placed by hand, and cash drift."""
    for fill_id, symbol, qty, price in (("b1", "BTCUSDT", "10", "100"), ("e1", "ETHUSDT", "5", "2000")):
        books.record_fill("lxalgo", "live", symbol=symbol, category="linear", side="buy", qty=qty, price=price,
                          fill_id=fill_id, time="2026-11-01T00:00:00Z")  # fmt: skip
    books.set_expected_cash("lxalgo", "live", "10500", "USDT")
    exchange.add_bybit_position("linear", "BTCUSDT", "Buy", "4", "100", "104")
    exchange.add_bybit_execution("linear", "BTCUSDT", "Sell", "6", "105", exec_id="x-btc-1", order_id="o-hand-1",
                                 exec_time=RECENT, exec_fee="0.3")  # fmt: skip
    exchange.add_bybit_flat_position("linear", "ETHUSDT", markPrice="2100")
    exchange.add_bybit_position("linear", "SOLUSDT", "Sell", "3", "150", "151", position_idx=2)
    exchange.add_bybit_order("linear", "XRPUSDT", "Buy", "100", "0.5", order_id="o-hand-2", order_link_id="web-1")
    exchange.set_bybit_wallet({"USDT": "10000"})


def alpaca_incident(exchange: FakeExchange, books: BooksClient) -> None:
    """A partial close by hand (with the venue's fill), a position opened by hand, a short, an order by hand."""
    books.record_fill("lxalgo", "live", symbol="AAPL", category="us_equity", side="buy", qty="100", price="185",
                      fill_id="a1", time="2026-11-01T00:00:00Z")  # fmt: skip
    books.set_expected_cash("lxalgo", "live", "250000", "USD")
    exchange.set_alpaca_account(cash="240000")
    exchange.add_alpaca_position("AAPL", "97", "185", "192.5")
    exchange.add_alpaca_fill("AAPL", "3", "191", "sell", transaction_time=RECENT)
    exchange.add_alpaca_position("NVDA", "10", "900", "912")
    exchange.add_alpaca_position("TSLA", "-5", "250", "247")
    exchange.add_alpaca_order("MSFT", "5", "buy", limit_price="400", client_order_id="web-7f3a", order_id="alp-1")


INCIDENTS = {"bybit": bybit_incident, "alpaca": alpaca_incident}


@pytest.mark.parametrize("venue", ["bybit", "alpaca"])
def test_a_snapshot_replayed_on_the_sim_venue_finds_what_the_venue_run_found(
    exchange: FakeExchange, database: Database, recon: Recon, credentials: None, tmp_path: Path, venue: str
) -> None:
    INCIDENTS[venue](exchange, books_for(database))
    fleet = real_fleet(tmp_path, exchange, venue)
    state_file = tmp_path / "captured.json"

    code, out, err = recon(fleet, "venue", "snapshot", "lxalgo", "live", "--out", str(state_file))
    assert (code, err) == (0, ""), err
    assert out.startswith(f"wrote {state_file}: ") and len(out.splitlines()) == 1
    code, live_out, err = recon(fleet, "reconcile", "lxalgo", "live", "--dry-run", "--json")
    assert code == 1, err
    code, replay_out, err = recon(rehearsal_fleet(tmp_path, state_file), "reconcile", "lxalgo", "live",
                                  "--dry-run", "--json")  # fmt: skip
    assert code == 1, err

    live, replay = json.loads(live_out), json.loads(replay_out)
    assert replay["venue"] == "sim" and live["discrepancies"]
    assert decided(replay) == decided(live)
    written = state_file.read_text()
    for secret in KEYS[venue]:
        assert secret not in written and secret not in out


def test_without_out_the_state_is_printed_and_a_venue_that_fails_writes_nothing(
    exchange: FakeExchange, recon: Recon, credentials: None, tmp_path: Path
) -> None:
    exchange.add_bybit_position("linear", "BTCUSDT", "Sell", "0.5", "60000", "59000")
    fleet = real_fleet(tmp_path, exchange, "bybit")

    code, out, _ = recon(fleet, "venue", "snapshot", "lxalgo", "live")
    assert code == 0
    [position] = json.loads(out)["positions"]
    assert (position["side"], position["qty"], position["currency"]) == ("short", "0.5", "USDT")
    assert not any(secret in out for secret in KEYS["bybit"])

    exchange.fail("/v5/position/list", "http503")
    target = tmp_path / "never.json"
    code, out, err = recon(fleet, "venue", "snapshot", "lxalgo", "live", "--out", str(target))
    assert code == 3 and not target.exists() and out == ""
    assert err.startswith("recon: error: cannot read the account: bybit HTTP 503") and err.count("\n") == 1


def test_an_existing_file_is_kept_unless_forced(
    exchange: FakeExchange, recon: Recon, credentials: None, tmp_path: Path
) -> None:
    fleet = real_fleet(tmp_path, exchange, "bybit")
    target = tmp_path / "captured.json"
    target.write_text("keep me")

    code, _, err = recon(fleet, "venue", "snapshot", "lxalgo", "live", "--out", str(target))
    assert (code, err, target.read_text()) == (2, f"recon: error: {target} exists: pass --force to replace it\n",
                                               "keep me")  # fmt: skip
    code, _, _ = recon(fleet, "venue", "snapshot", "lxalgo", "live", "--out", str(target), "--force")
    assert code == 0 and json.loads(target.read_text())["positions"] == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".captured")] == []  # no temporary file left


def test_a_sim_snapshot_of_a_sim_venue_reproduces_it(example_fleet: Path, recon: Recon, tmp_path: Path) -> None:
    for state in sorted((example_fleet.parent / "venues").glob("*.json")):
        bot, account = state.stem.split("_")
        target = tmp_path / f"{state.stem}.json"
        code, _, err = recon(example_fleet, "venue", "snapshot", bot, account, "--out", str(target))
        assert code == 0, err

        now = datetime.now(UTC)
        original, copy = SimVenue(state).fetch_snapshot(now), SimVenue(target).fetch_snapshot(now)
        assert copy == original
        assert parse_state(state_document(copy), now) == original  # and a second round trip changes nothing


def test_the_state_document_round_trips_every_field_the_sim_venue_reads(example_fleet: Path) -> None:
    now = datetime.now(UTC)
    states = [SimVenue(path).fetch_snapshot(now) for path in (example_fleet.parent / "venues").glob("*.json")]
    merged = Snapshot(
        as_of=now,
        positions=tuple({p.key: p for s in states for p in s.positions}.values()),
        cash=states[0].cash,
        open_orders=tuple({o.venue_order_id: o for s in states for o in s.open_orders}.values()),
        fills=tuple(f for s in states for f in s.fills),
        marks={k: v for s in states for k, v in s.marks.items()},
    )
    assert merged.fills and merged.marks and merged.open_orders  # the example fleet has each kind
    assert parse_state(json.loads(json.dumps(state_document(merged))), now) == merged
