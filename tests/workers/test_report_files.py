"""Reports to files (``recon report --out --format``) and the per-account summary (``recon summary``), on SQLite
and Postgres with the example fleet; the alerts carry the command that shows an account's day."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import event

from cli.exports import CSV_COLUMNS
from cli.summary import parse_since
from models.database import Database
from models.summaries import account_summaries
from reconciliation.errors import FixConfiguration
from reconciliation.policy import Rules
from tests.conftest import SimState, books_for, reconcile, seed_example_books
from tests.workers.test_cli import Recon
from workers.alerts import deliver, summary_command
from workers.fleet import AccountConfig
from workers.settings import Settings

RECON = [sys.executable, "-m", "cli"]


@pytest.fixture
def recon(capsys: pytest.CaptureFixture[str], example_fleet: Path, database_url: str) -> Recon:
    """``recon`` on the example fleet whose bots have written their books (nothing reconciled yet)."""
    seed_example_books(database_url, example_fleet)
    return Recon(capsys, example_fleet, database_url)


def run_cli(recon: Recon, *args: str) -> subprocess.CompletedProcess[str]:
    """``recon`` as a subprocess, as a script or a person would run it (output is the point)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([*RECON, "--config", str(recon.config), "--db", recon.db, *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)  # fmt: skip


# --- recon report --out ---------------------------------------------------------------------------------------------


def test_a_report_written_in_each_format_says_what_the_run_did(recon: Recon, tmp_path: Path) -> None:
    report = recon.json("reconcile", "momentum", "live", expect=1)
    run_id = str(report["run_id"])

    for name in ("json", "csv", "text"):
        code, out, err = recon("report", run_id, "--format", name, "--out", str(tmp_path / f"report.{name}"))
        assert (code, err, out) == (0, "", f"wrote run {run_id} as {name} to {tmp_path / f'report.{name}'}\n")

    assert json.loads((tmp_path / "report.json").read_text()) == recon.json("report", run_id)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text(), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["section"], r["subject"], r["kind"]) for r in rows] == [
        ("position", "position:us_equity:AAPL:0", "quantity_mismatch"),
        ("position", "position:us_equity:NVDA:0", "missing_in_ledger"),
        ("order", "order:mom-live-0042", "order_missing_at_venue"),
        ("order", "order:web-7f3a", "order_unknown_to_ledger"),
        *(("action", a["subject"], a["kind"]) for a in report["actions"]),
    ]
    aapl = rows[0]
    assert (aapl["ledger"], aapl["venue"], aapl["diff_pct"], aapl["run_id"], aapl["bot"]) == (
        "100", "97", "3", run_id, "momentum",
    )  # fmt: skip
    assert json.loads(rows[4]["after"]) == report["actions"][0]["after"] and rows[4]["applied"] == "true"
    text = (tmp_path / "report.text").read_text()
    assert text.startswith(f"run {run_id}  momentum/live on sim  warned") and "\x1b" not in text
    assert "us_equity:AAPL  quantity_mismatch  moderate" in text
    assert max(len(line) for line in text.splitlines() if not line.startswith("   - ")) <= 100


def test_a_cash_finding_is_a_csv_row_and_csv_goes_to_stdout_without_out(recon: Recon) -> None:
    run_id = str(recon.json("reconcile", "momentum", "paper", expect=1)["run_id"])

    code, out, _ = recon("report", run_id, "--format", "csv")

    [cash] = [r for r in csv.DictReader(io.StringIO(out, newline="")) if r["section"] == "cash"]
    assert code == 0
    assert (cash["subject"], cash["ledger"], cash["venue"], cash["outcome"]) == ("cash:USD", "100000", "97500",
                                                                                 "resolved")  # fmt: skip


def test_an_existing_file_is_refused_unless_forced_and_json_disagreeing_with_format_is_a_usage_error(
    recon: Recon, tmp_path: Path
) -> None:
    run_id = str(recon.json("reconcile", "lxalgo", "live", expect=1)["run_id"])
    target = tmp_path / "report.csv"
    target.write_text("keep me")

    code, out, err = recon("report", run_id, "--format", "csv", "--out", str(target))
    assert (code, out, err) == (2, "", f"recon: error: {target} exists: pass --force to replace it\n")
    assert target.read_text() == "keep me"
    assert recon("report", run_id, "--format", "csv", "--out", str(target), "--force")[0] == 0
    assert target.read_text().startswith("section,run_id,")

    code, _, err = recon("report", run_id, "--json", "--format", "csv")
    assert code == 2 and err == "recon: error: --json and --format csv disagree: pass one of them\n"
    code, _, err = recon("report", run_id, "--format", "xml")
    assert code == 2 and "unknown format 'xml'" in err


def test_the_installed_command_writes_the_same_json_it_prints(recon: Recon, tmp_path: Path) -> None:
    run_id = str(recon.json("reconcile", "shortseller", "live", expect=4)["run_id"])

    written = run_cli(recon, "report", run_id, "--json", "--out", str(tmp_path / "r.json"))
    printed = run_cli(recon, "report", run_id, "--json")

    assert written.returncode == 0 and written.stdout == f"wrote run {run_id} as json to {tmp_path / 'r.json'}\n"
    assert (tmp_path / "r.json").read_text() == printed.stdout
    assert json.loads(printed.stdout)["status"] == "halted"


# --- recon summary --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("since", ["bogus", "24x", "-3h", "h", "2999-01-01T00:00:00Z", "1 d"])
def test_a_bad_since_is_one_line_and_exit_2(recon: Recon, since: str) -> None:
    code, out, err = recon("summary", "--since", since)

    assert (code, out) == (2, "")
    assert err.startswith("recon: error: --since: ") and err.count("\n") == 1


def test_since_takes_minutes_hours_days_or_an_iso_time_in_utc() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-11-20T10:00:00", now) == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert parse_since("2026-11-20T11:00:00+01:00", now) == datetime(2026, 11, 20, 10, tzinfo=UTC)
    with pytest.raises(FixConfiguration):
        parse_since("2026-11-21T00:00:00Z", now)


def by_account(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{a['bot']}/{a['account']}": a for a in document["accounts"]}


def test_the_summary_counts_what_the_runs_found_and_did(recon: Recon) -> None:
    for bot in ("lxalgo", "momentum", "shortseller"):
        for account in ("paper", "live"):
            recon.json("reconcile", bot, account)
    recon.json("reconcile", "momentum", "paper", expect=0)  # in sync now: the cash and TSLA breaks were resolved
    recon.json("reconcile", "momentum", "live", "--dry-run")
    expected: dict[str, dict[str, Any]] = {}
    for line in recon.json("runs", expect=0):
        name = f"{line['bot']}/{line['account']}"
        counts = expected.setdefault(name, {"by_status": {}, "dry_runs": 0, "discrepancies": 0, "actions": 0})
        if line["dry_run"]:
            counts["dry_runs"] += 1
            continue
        counts["by_status"][line["status"]] = counts["by_status"].get(line["status"], 0) + 1
        counts["discrepancies"] += line["discrepancies"]
        report = recon.json("report", str(line["run_id"]))
        counts["actions"] += sum(a["applied"] for a in report["actions"])
        if report["reason"] != "backfill":  # the last run shown is the last reconciliation
            counts.setdefault("last_run", (report["run_id"], report["status"], report["summary"]))

    summary = by_account(recon.json("summary", "--since", "1h", expect=0))

    assert set(summary) == set(expected) and len(summary) == 6
    for name, counts in expected.items():
        found = summary[name]
        assert found["runs"] == {"total": sum(counts["by_status"].values()), "by_status": counts["by_status"]}
        assert (found["dry_runs"], found["discrepancies"], found["actions"]) == (
            counts["dry_runs"], counts["discrepancies"], counts["actions"],
        )  # fmt: skip
        last = found["last_run"]
        assert (last["run_id"], last["status"], last["summary"]) == counts["last_run"]
    assert summary["momentum/paper"]["runs"]["by_status"]["in_sync"] >= 1
    assert summary["momentum/live"]["dry_runs"] == 1
    assert (summary["shortseller/live"]["halts"], summary["shortseller/live"]["breaks"]["open"]) == (1, {"critical": 1})
    assert summary["lxalgo/paper"]["halts"] == 0
    paper = summary["momentum/paper"]["breaks"]
    assert paper["open"] == {} and paper["opened"] == paper["resolved"] and sum(paper["opened"].values()) == 2
    fleet = {f"{a['bot']}/{a['account']}": a["open_breaks"] for a in recon.json("fleet")}
    assert {name: sum(a["breaks"]["open"].values()) for name, a in summary.items()} == fleet


def test_a_window_leaves_out_older_runs_and_filters_by_bot_and_account(recon: Recon) -> None:
    recon.json("reconcile", "momentum", "live", expect=1)
    time.sleep(0.05)
    start = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    time.sleep(0.05)
    recon.json("reconcile", "momentum", "live", expect=1)

    [only] = recon.json("summary", "--since", start, "--bot", "momentum", "--account", "live", expect=0)["accounts"]

    runs = recon.json("runs", "momentum", "live")
    later = [r for r in runs if r["started_at"] >= start]
    assert len(later) < len(runs)
    assert (only["bot"], only["account"], only["runs"]["total"]) == ("momentum", "live", len(later))
    assert only["discrepancies"] == sum(r["discrepancies"] for r in later)
    assert only["breaks"]["opened"] == {}  # they opened in the first run, before the window
    assert sum(only["breaks"]["open"].values()) == 2
    wide = by_account(recon.json("summary", "--since", "1h", "--bot", "momentum"))
    assert set(wide) == {"momentum/live", "momentum/paper"}
    assert wide["momentum/live"]["runs"]["total"] == len(runs)
    assert wide["momentum/paper"]["runs"]["total"] == 0 and wide["momentum/paper"]["last_run"] is None


def test_the_summary_text_fits_80_columns_and_goes_to_a_file(recon: Recon, tmp_path: Path) -> None:
    recon.json("reconcile", "shortseller", "live", expect=4)
    target = tmp_path / "day.txt"

    code, out, _ = recon("summary", "--out", str(target))

    assert code == 0 and out.startswith("wrote the summary since ")
    text = target.read_text()
    assert "shortseller/live" in text and "halted" in text and "\x1b" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert recon("summary", "--out", str(target))[0] == 2


# --- alerts link to the summary -------------------------------------------------------------------------------------


class Webhook(ThreadingHTTPServer):
    """A loopback webhook recording the JSON bodies posted to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_every_alert_carries_the_command_for_its_accounts_day(database: Database, venue: SimState, clock: Any) -> None:
    books = books_for(database)
    books.record_fill("lxalgo", "live", symbol="BTCUSDT", side="buy", qty="1", price="100", fill_id="f1",
                      time="2026-11-01T00:00:00Z")  # fmt: skip
    reconcile(database, AccountConfig("lxalgo", "live", "sim", Rules(), 300, state_file=venue.path), clock=clock)
    webhook = Webhook()
    url = f"http://127.0.0.1:{webhook.server_address[1]}/hook"
    try:
        sent = deliver(database, Settings(alert_webhook_url=SecretStr(url)), clock())
    finally:
        webhook.shutdown()

    [body] = webhook.bodies
    command = summary_command("lxalgo", "live")
    assert command == "recon summary --bot lxalgo --account live --since 24h"
    assert sent == len(body["alerts"]) >= 1
    assert all(alert["summary_command"] == command for alert in body["alerts"])
    assert all(line.endswith(f"(the day: `{command}`)") for line in body["text"].splitlines()[1:])


def test_the_summary_reads_in_the_same_number_of_statements_for_one_account_or_many(recon: Recon) -> None:
    for bot in ("lxalgo", "momentum", "shortseller"):
        recon.json("reconcile", bot, "live")
    database = Database(recon.db)
    statements: list[str] = []
    event.listen(database.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    counts = []
    for only in ("lxalgo", None):
        statements.clear()
        with database.reading() as session:
            found = account_summaries(session, datetime.now(UTC) - timedelta(hours=1), only, "live" if only else None)
        counts.append((len(found), len([s for s in statements if s.lstrip().upper().startswith("SELECT")])))
    database.dispose()

    assert counts == [(1, 8), (6, 8)]
