"""The example fleet through the ``recon`` command, on SQLite and Postgres: every seed case, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cli.app import main
from tests.conftest import seed_example_books


class Recon:
    """Runs ``recon`` in-process with a fleet file and a database, capturing exit code and output."""

    def __init__(self, capsys: pytest.CaptureFixture[str], config: Path, db: str) -> None:
        self.capsys, self.config, self.db = capsys, config, db

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            main(["--config", str(self.config), "--db", self.db, *args])
        except SystemExit as done:
            code = int(done.code or 0)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def json(self, *args: str, expect: int | None = None) -> Any:
        code, out, err = self(*args, "--json")
        if expect is not None:
            assert code == expect, err
        return json.loads(out)


@pytest.fixture
def recon(capsys: pytest.CaptureFixture[str], example_fleet: Path, database_url: str) -> Recon:
    """``recon`` on the example fleet whose bots have written their books (nothing reconciled yet)."""
    seed_example_books(database_url, example_fleet)
    return Recon(capsys, example_fleet, database_url)


def by_symbol(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["symbol"]: d for d in report["discrepancies"]}


def trades_of(recon: Recon, bot: str, account: str) -> list[dict[str, Any]]:
    return list(recon.json("ledger", "show", bot, account)["trades"])


def test_position_closed_by_hand_and_scale_in_partially_closed_while_the_bot_was_down(recon: Recon) -> None:
    report = recon.json("reconcile", "lxalgo", "paper", expect=1)

    assert report["status"] == "resolved"
    found = by_symbol(report)
    assert (found["BTCUSDT"]["kind"], found["BTCUSDT"]["ledger_qty"], found["BTCUSDT"]["venue_qty"]) == (
        "quantity_mismatch", "150", "30",
    )  # fmt: skip
    assert (found["ETHUSDT"]["kind"], found["ETHUSDT"]["severity"]) == ("missing_at_venue", "critical")
    books = recon.json("ledger", "show", "lxalgo", "paper")
    [btc] = books["positions"]
    assert (btc["symbol"], btc["qty"], [lot["entry_price"] for lot in btc["lots"]]) == ("BTCUSDT", "30", ["51000"])
    btc_trades = [t for t in books["trades"] if t["symbol"] == "BTCUSDT"]
    assert sum(Decimal(t["gross_pnl"]) for t in btc_trades) == Decimal(340000)
    eth = next(t for t in books["trades"] if t["symbol"] == "ETHUSDT")
    assert (eth["exit_price"], eth["exit_estimated"], eth["status"]) == ("3150", False, "CLOSED_EXTERNALLY")
    assert Decimal(eth["net_pnl"]) == Decimal(40 * 150) - Decimal("6.6") - Decimal("6.93")


def test_margin_call_liquidation_is_booked_with_the_venue_fill(recon: Recon) -> None:
    report = recon.json("reconcile", "lxalgo", "live", expect=1)

    assert by_symbol(report)["SOLUSDT"]["action"] == "recorded 1 venue fill(s)"
    [sol] = trades_of(recon, "lxalgo", "live")
    assert (sol["exit_reason"], sol["exit_price"], sol["status"]) == (
        "liquidated by the venue", "151.2", "CLOSED_EXTERNALLY",
    )  # fmt: skip
    assert Decimal(sol["net_pnl"]) == (Decimal("151.2") - 180) * 500 - Decimal("49.5") - Decimal("41.58")


def test_position_opened_by_hand_is_adopted_and_cash_drift_followed_on_a_permissive_account(recon: Recon) -> None:
    report = recon.json("reconcile", "momentum", "paper", expect=1)

    assert by_symbol(report)["TSLA"]["kind"] == "missing_in_ledger"
    assert (report["cash"]["expected"], report["cash"]["venue"], report["cash"]["severity"]) == (
        "100000", "97500", "moderate",
    )  # fmt: skip
    tsla = next(p for p in recon.json("ledger", "show", "momentum", "paper")["positions"] if p["symbol"] == "TSLA")
    assert [(lot["remaining"], lot["entry_price"], lot["source"]) for lot in tsla["lots"]] == [
        ("25", "242.1", "reconciliation")
    ]
    assert recon.json("reconcile", "momentum", "paper", expect=0)["cash"]["expected"] == "97500"


def test_partial_close_opened_by_hand_and_orphan_orders_on_a_cautious_account(recon: Recon) -> None:
    report = recon.json("reconcile", "momentum", "live", expect=1)

    assert report["status"] == "warned"
    found = by_symbol(report)
    assert (found["AAPL"]["severity"], found["AAPL"]["strategy"], found["AAPL"]["outcome"]) == (
        "moderate", "sync_to_broker", "resolved",
    )  # fmt: skip
    assert (found["NVDA"]["strategy"], found["NVDA"]["outcome"]) == ("warn_only", "warned")
    orders = {o["client_order_id"]: o for o in report["orders"]}
    assert orders["mom-live-0042"]["kind"] == "order_missing_at_venue"
    assert orders["web-7f3a"]["kind"] == "order_unknown_to_ledger"
    [aapl_close] = trades_of(recon, "momentum", "live")
    assert (aapl_close["quantity"], aapl_close["exit_price"], aapl_close["exit_estimated"]) == ("3", "192.5", True)

    assert (orders["mom-live-0042"]["outcome"], orders["mom-live-0042"]["action"]) == (
        "warned", "not found at the venue: nothing changed",
    )  # fmt: skip
    again = recon.json("reconcile", "momentum", "live", expect=1)
    assert [d["symbol"] for d in again["discrepancies"]] == ["NVDA"]
    assert [o["client_order_id"] for o in again["orders"]] == ["mom-live-0042"]


def test_side_flip_closes_the_short_and_adopts_the_long(recon: Recon) -> None:
    report = recon.json("reconcile", "shortseller", "paper", expect=1)

    gme = by_symbol(report)["GME"]
    assert (gme["kind"], gme["ledger_qty"], gme["venue_qty"]) == ("side_mismatch", "-200", "50")
    positions = {p["symbol"]: p["qty"] for p in recon.json("ledger", "show", "shortseller", "paper")["positions"]}
    assert positions == {"AMC": "-1000", "GME": "50"}
    assert recon.json("reconcile", "shortseller", "paper", expect=0)["status"] == "in_sync"


def test_spread_with_a_missing_leg_is_closed_externally_and_a_critical_gap_halts(recon: Recon) -> None:
    report = recon.json("reconcile", "shortseller", "live", expect=4)

    assert report["status"] == "halted"
    assert by_symbol(report)["TSLA"]["strategy"] == "halt_and_alert"
    books = recon.json("ledger", "show", "shortseller", "live")
    [spread] = books["groups"]
    # 2 contracts × (6.40 credit − 4.10 debit) × 100 shares per contract
    assert (spread["status"], spread["net_entry_credit"]) == ("CLOSED_EXTERNALLY", "460")
    [short_leg] = [t for t in books["trades"] if t["symbol"] == "SPY261218P00580000"]
    assert (short_leg["gross_pnl"], short_leg["multiplier"]) == ("-680", "100")  # (6.40 − 9.80) × 2 × 100
    assert {p["symbol"] for p in books["positions"]} == {"SPY261218P00570000", "TSLA"}
    [fleet_row] = [a for a in recon.json("fleet") if (a["bot"], a["account"]) == ("shortseller", "live")]
    assert fleet_row["halted"] and fleet_row["open_breaks"] == 1

    code, out, _ = recon("resume", "shortseller", "live")
    assert code == 0 and "resumed" in out
    assert not next(a for a in recon.json("fleet") if a["account"] == "live" and a["bot"] == "shortseller")["halted"]


def test_a_dry_run_reports_the_plan_and_leaves_the_books_alone(recon: Recon) -> None:
    before = recon.json("ledger", "show", "shortseller", "paper")

    report = recon.json("reconcile", "shortseller", "paper", "--dry-run", expect=1)

    assert report["dry_run"] and report["actions"]
    assert not any(a["applied"] for a in report["actions"])
    assert recon.json("ledger", "show", "shortseller", "paper") == before
    assert recon.json("runs", "shortseller", "paper")[0]["dry_run"] is True


def test_runs_and_report_show_what_was_stored(recon: Recon) -> None:
    first = recon.json("reconcile", "lxalgo", "paper")
    recon.json("reconcile", "lxalgo", "live")

    listed = recon.json("runs")
    stored = recon.json("report", str(first["run_id"]))

    assert [r["bot"] + "/" + r["account"] for r in listed] == ["lxalgo/live", "lxalgo/paper"]
    assert stored == first
    assert set(stored) >= {
        "run_id", "bot", "account", "venue", "status", "dry_run", "started_at", "finished_at", "summary",
        "discrepancies", "cash", "orders", "actions",
    }  # fmt: skip
    assert stored["summary"] == {  # seed 004's scale-in: 150 BTC in the books, 30 at the venue; ETH sold at the venue
        "matched": 0,
        "discrepancies": 2,
        "actions": 2,
        "venue_positions": 1,
        "book_positions": 2,
        "added": 0,
        "removed": 1,
        "adjusted": 1,
        "venue_value_at_mark": {"USDT": "1593000"},
        "unvalued_positions": 0,
    }


def test_the_ledger_commands_write_the_books(recon: Recon) -> None:
    code, out, _ = recon("ledger", "fill", "lxalgo", "paper", "--symbol", "SOLUSDT", "--side", "buy", "--qty", "100",
                         "--price", "200", "--fill-id", "n1", "--category", "linear")  # fmt: skip
    assert code == 0 and "0 -> 100" in out
    recon("ledger", "fill", "lxalgo", "paper", "--symbol", "SOLUSDT", "--side", "buy", "--qty", "50",
          "--price", "210", "--fill-id", "n2", "--category", "linear")  # fmt: skip
    sold = recon.json("ledger", "fill", "lxalgo", "paper", "--symbol", "SOLUSDT", "--side", "sell", "--qty", "120",
                      "--price", "230", "--fill-id", "n3", "--category", "linear")  # fmt: skip
    again = recon.json("ledger", "fill", "lxalgo", "paper", "--symbol", "SOLUSDT", "--side", "sell", "--qty", "120",
                       "--price", "230", "--fill-id", "n3", "--category", "linear")  # fmt: skip
    assert sum(Decimal(t["net_pnl"]) for t in sold["trades"]) == Decimal(100 * 30 + 20 * 20)
    assert (sold["position_after"], again["recorded"], again["position_after"]) == ("30", False, "30")

    assert recon("ledger", "order", "lxalgo", "paper", "--client-order-id", "c1", "--symbol", "SOLUSDT",
                 "--side", "sell", "--qty", "30", "--price", "260")[0] == 0  # fmt: skip
    assert recon("ledger", "cash", "lxalgo", "paper", "--balance", "1000.50", "--currency", "USDT")[0] == 0
    code, out, _ = recon("ledger", "show", "lxalgo", "paper")
    assert code == 0 and "SOLUSDT" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reconcile", "nobody", "live"], "no account nobody/live"),
        (["reconcile"], "Missing argument"),
        (["report", "999"], "no run with id 999"),
        (
            [
                "ledger",
                "fill",
                "lxalgo",
                "paper",
                "--symbol",
                "X",
                "--side",
                "buy",
                "--qty",
                "1.5.5",
                "--price",
                "1",
                "--fill-id",
                "z",
            ],
            "qty: '1.5.5' is not a decimal number",
        ),
        (
            [
                "ledger",
                "fill",
                "lxalgo",
                "paper",
                "--symbol",
                "X",
                "--side",
                "hold",
                "--qty",
                "1",
                "--price",
                "1",
                "--fill-id",
                "z",
            ],
            "side: 'hold' is not one of buy, sell",
        ),
        (["ledger", "show", "ghost", "paper"], "no books for ghost/paper"),
        (["--db", "mysql://x/y", "runs"], "unsupported database"),
    ],
)
def test_bad_input_is_one_line_on_stderr_with_exit_code_2(recon: Recon, args: list[str], message: str) -> None:
    code, out, err = recon(*args)

    assert code == 2
    assert err.count("\n") == 1 and message in err
    assert "Traceback" not in out + err


def test_a_malformed_venue_file_fails_the_run_with_exit_3_and_changes_nothing(recon: Recon) -> None:
    state = recon.config.parent / "venues" / "lxalgo_paper.json"
    state.write_text('{"positions": [{"symbol": "BTCUSDT"}]}')
    before = recon.json("ledger", "show", "lxalgo", "paper")

    report = recon.json("reconcile", "lxalgo", "paper", expect=3)

    assert report["status"] == "failed" and "positions[0].side: missing" in report["error"]
    assert recon.json("ledger", "show", "lxalgo", "paper") == before


def test_a_missing_fleet_file_is_a_configuration_error(recon: Recon, tmp_path: Path) -> None:
    recon.config = tmp_path / "nowhere.toml"

    code, _, err = recon("reconcile", "lxalgo", "paper")

    assert code == 2 and "nowhere.toml" in err


def test_the_installed_command_runs_the_demo_in_a_fresh_directory(tmp_path: Path) -> None:
    recon_command = Path(sys.executable).parent / "recon"
    finished = subprocess.run(
        [str(recon_command), "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
    )  # fmt: skip

    assert finished.returncode == 0, finished.stderr
    assert "shortseller/live" in finished.stdout and "halted" in finished.stdout
    explore = subprocess.run(
        [str(recon_command), "fleet", "--json"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path / "demo", check=False,
    )  # fmt: skip
    statuses = {(a["bot"], a["account"]): a["last_status"] for a in json.loads(explore.stdout)}
    assert statuses == {
        ("lxalgo", "live"): "in_sync",
        ("lxalgo", "paper"): "in_sync",
        ("momentum", "live"): "warned",
        ("momentum", "paper"): "in_sync",
        ("shortseller", "live"): "halted",
        ("shortseller", "paper"): "in_sync",
    }


def test_fleet_lists_accounts_that_never_ran_without_writing_to_the_database(
    capsys: pytest.CaptureFixture[str], example_fleet: Path, sqlite_url: str
) -> None:
    recon = Recon(capsys, example_fleet, sqlite_url)

    listed = recon.json("fleet", expect=0)

    assert [(a["bot"], a["account"], a["last_status"]) for a in listed][:2] == [
        ("lxalgo", "live", None),
        ("lxalgo", "paper", None),
    ]
    assert len(listed) == 6
    assert recon.json("runs", expect=0) == []
    code, _, err = recon("ledger", "show", "lxalgo", "paper")
    assert code == 2 and "no books for lxalgo/paper" in err


def test_backfill_replaces_an_estimated_exit_once_the_venue_shows_the_real_fill(recon: Recon) -> None:
    recon.json("reconcile", "momentum", "live", expect=1)
    not_yet = recon.json("backfill", "momentum", "live", expect=1)
    assert (not_yet["estimated_exits"], not_yet["backfilled"]) == (1, 0)

    state_file = recon.config.parent / "venues" / "momentum_live.json"
    state = json.loads(state_file.read_text())
    manual_close = {"fill_id": "alp-fill-9", "symbol": "AAPL", "category": "us_equity", "side": "sell", "qty": "3",
                    "price": "191", "fee": "0.03", "time": "2026-11-14T15:00:00Z"}  # fmt: skip
    state["fills"] = [manual_close]
    state_file.write_text(json.dumps(state))
    done = recon.json("backfill", "momentum", "live", expect=0)

    assert (done["backfilled"], done["not_found"]) == (1, [])
    [trade] = trades_of(recon, "momentum", "live")
    assert (trade["exit_price"], trade["exit_estimated"], trade["exit_reason"]) == (
        "191", False, "closed by hand at the venue",
    )  # fmt: skip
    assert Decimal(trade["net_pnl"]) == (Decimal(191) - 185) * 3 - Decimal("0.03")
    assert recon.json("backfill", "momentum", "live", expect=0)["backfilled"] == 0


# --- where the demo may write ---------------------------------------------------------------------------------


def run_demo_command(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``recon demo`` in-process; returns exit code, stdout and stderr."""
    capsys.readouterr()
    try:
        main(["demo", *args])
    except SystemExit as done:
        captured = capsys.readouterr()
        return int(done.code or 0), captured.out, captured.err
    raise AssertionError("main always exits")


def contents(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` by relative path, with its bytes."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def earlier_demo(capsys: pytest.CaptureFixture[str], directory: Path) -> dict[str, bytes]:
    """Run the demo into ``directory`` and return what it wrote."""
    assert run_demo_command(capsys, "--dir", str(directory))[0] == 0
    return contents(directory)


def test_the_demo_uses_an_empty_directory_and_marks_it_as_its_own(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run_demo_command(capsys, "--dir", str(tmp_path))

    assert (code, err) == (0, "")
    assert "shortseller/live" in out
    assert {".recon-demo", "fleet.toml", "recon.db"} <= {p.name for p in tmp_path.iterdir()}


def test_the_demo_refreshes_a_directory_it_made_before(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    first = earlier_demo(capsys, tmp_path)
    (tmp_path / "venues" / "lxalgo_paper.json").write_text('{"positions": []}')

    code, _, err = run_demo_command(capsys, "--dir", str(tmp_path))

    assert (code, err) == (0, "")
    assert contents(tmp_path)["venues/lxalgo_paper.json"] == first["venues/lxalgo_paper.json"]
    explore = Recon(capsys, tmp_path / "fleet.toml", f"sqlite:///{tmp_path / 'recon.db'}")
    reconciliations = [r for r in explore.json("runs", expect=0) if r["reason"] != "backfill"]
    assert len(reconciliations) == 12  # a fresh database: this demo's two rounds only (and their backfills)


@pytest.mark.parametrize(
    ("foreign", "named"),
    [
        pytest.param("notes.txt", "'notes.txt'", id="a-file-of-the-user"),
        pytest.param("venues/mine.json", "'venues/mine.json'", id="a-file-in-the-demo-folders"),
        pytest.param("recon.db.bak", "'recon.db.bak'", id="a-file-named-like-the-database"),
    ],
)
def test_the_demo_refuses_a_directory_holding_anything_else_and_changes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, foreign: str, named: str
) -> None:
    earlier_demo(capsys, tmp_path)
    (tmp_path / foreign).write_text("mine")
    before = contents(tmp_path)

    code, out, err = run_demo_command(capsys, "--dir", str(tmp_path))

    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"recon: error: demo directory {tmp_path} holds {named}")
    assert "--force" in err
    assert contents(tmp_path) == before


def test_the_demo_refuses_a_directory_with_a_fleet_file_it_did_not_make(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "fleet.toml").write_text("# my real fleet\n")
    (tmp_path / "recon.db").write_bytes(b"my real books")

    code, _, err = run_demo_command(capsys, "--dir", str(tmp_path))

    assert code == 2 and "was not made by `recon demo` (it has no .recon-demo file)" in err and "--force" in err
    assert contents(tmp_path) == {"fleet.toml": b"# my real fleet\n", "recon.db": b"my real books"}


def test_the_demo_refuses_a_path_that_is_a_file_even_with_force(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "demo"
    target.write_text("not a directory")

    code, _, err = run_demo_command(capsys, "--dir", str(target), "--force")

    assert code == 2 and "exists and is not a directory" in err
    assert target.read_text() == "not a directory"


def test_the_demo_with_force_writes_into_a_directory_holding_other_files_and_keeps_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("mine")

    code, _, err = run_demo_command(capsys, "--dir", str(tmp_path), "--force")

    assert (code, err) == (0, "")
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / ".recon-demo").is_file() and (tmp_path / "recon.db").is_file()
