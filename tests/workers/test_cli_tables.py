"""Report, run and fleet tables as a person reads them: at 80 columns (or fewer) the instrument, kind, severity
and strategy stay whole, less useful columns going first; in a pipe every row is one whole line with every column.

``recon`` runs as a subprocess on a demo workspace; COLUMNS sets the width a terminal would have.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

RECON = Path(sys.executable).parent / "recon"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's workspace: six accounts reconciled twice, with findings of every common kind."""
    directory = tmp_path_factory.mktemp("tables") / "demo"
    subprocess.run([str(RECON), "demo", "--dir", str(directory)], check=True, capture_output=True, timeout=120,
                   env=environment(), cwd=directory.parent)  # fmt: skip
    return directory


def environment(columns: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_") and k != "COLUMNS"}
    return env if columns is None else {**env, "COLUMNS": str(columns)}


def recon(workspace: Path, *args: str, columns: int | None = None) -> str:
    done = subprocess.run([str(RECON), *args], capture_output=True, timeout=60, env=environment(columns),
                          cwd=workspace, check=False)  # fmt: skip
    assert done.returncode in (0, 1, 3, 4), done.stderr
    return done.stdout.decode()


@pytest.fixture(scope="module")
def reports(workspace: Path) -> list[dict[str, Any]]:
    """The JSON reports of the demo's runs that found something."""
    runs = json.loads(recon(workspace, "runs", "--json"))
    every = [json.loads(recon(workspace, "report", str(r["run_id"]), "--json")) for r in runs]
    return [r for r in every if r["discrepancies"]]


def row_of(text: str, instrument: str) -> str:
    [line] = [line for line in text.splitlines() if line.startswith(instrument + " ")]
    return line


@pytest.mark.parametrize("columns", [80, 100])
def test_at_80_columns_and_up_each_finding_keeps_instrument_kind_severity_and_strategy_whole(
    workspace: Path, reports: list[dict[str, Any]], columns: int
) -> None:
    assert len(reports) >= 3

    for report in reports:
        text = recon(workspace, "report", str(report["run_id"]), columns=columns)
        assert max(len(line) for line in text.splitlines()) <= columns
        for found in report["discrepancies"]:
            words = row_of(text, f"{found['category']}:{found['symbol']}").split()
            assert words[1:3] == [found["kind"], found["severity"]]
            assert found["strategy"] in words


def test_the_least_useful_columns_go_first_when_the_width_runs_out(
    workspace: Path, reports: list[dict[str, Any]]
) -> None:
    report = reports[0]

    def header(columns: int) -> list[str]:
        lines = recon(workspace, "report", str(report["run_id"]), columns=columns).splitlines()
        return next(line for line in lines if line.startswith("instrument")).split()

    headers = {columns: header(columns) for columns in (120, 80, 60)}

    assert headers[120] == ["instrument", "kind", "severity", "ledger", "venue", "diff", "%", "strategy", "outcome"]
    assert headers[80] == ["instrument", "kind", "severity", "ledger", "venue", "strategy"]
    assert headers[60] == ["instrument", "kind", "severity", "strategy"]


def test_in_a_pipe_every_row_is_one_line_with_every_column(workspace: Path, reports: list[dict[str, Any]]) -> None:
    for report in reports:
        text = recon(workspace, "report", str(report["run_id"]))
        for found in report["discrepancies"]:
            fields = row_of(text, f"{found['category']}:{found['symbol']}").split()
            assert fields[1:5] == [found["kind"], found["severity"], found["ledger_qty"], found["venue_qty"]]
            assert fields[6:] == [found["strategy"], found["outcome"]]
    assert "\x1b[" not in text, "no terminal codes in a pipe"


@pytest.mark.parametrize("columns", [None, 80, 60])
def test_the_fleet_table_keeps_each_account_and_its_halt_reason_whole(workspace: Path, columns: int | None) -> None:
    fleet = json.loads(recon(workspace, "fleet", "--json"))
    text = recon(workspace, "fleet", columns=columns)

    lines = text.splitlines()
    if columns:
        assert max(len(line) for line in lines) <= columns
    for account in fleet:
        assert any(line.split()[:2] == [account["bot"], account["account"]] for line in lines)
    halted = [a for a in fleet if a["halted"]]
    assert halted, "the demo halts shortseller/live"
    joined = " ".join(" ".join(line.split()) for line in lines)
    for account in halted:
        assert f"HALTED: {account['halted_reason']}".split()[0] in joined
        for word in account["halted_reason"].split():
            assert word in joined, "a long halt reason folds onto more lines, whole"


def test_the_run_list_fits_80_columns_with_run_bot_account_and_status(workspace: Path) -> None:
    runs = json.loads(recon(workspace, "runs", "--json"))
    text = recon(workspace, "runs", columns=80)

    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    for run in runs:
        assert any(line.split()[:3] == [str(run["run_id"]), run["bot"], run["account"]] for line in lines)
