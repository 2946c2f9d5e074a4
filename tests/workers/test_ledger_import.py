"""``recon ledger import`` on SQLite and Postgres: a bot's trade history replayed FIFO in time order, idempotent by
fill id, all or nothing unless --skip-bad, and the migration recipe (import, reconcile dry run) end to end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cli.app import main
from models.books import Fill as FillRow
from models.database import Database

HEADER = "symbol,side,qty,price,time,fill_id,fee,category"
# Unsorted on purpose: FIFO must follow the times, not the lines.
HISTORY = [
    "SOLUSDT,sell,60,230,2026-11-03T00:00:00Z,f3,0.5,linear",
    "SOLUSDT,buy,100,200,2026-11-01T00:00:00Z,f1,1,linear",
    "SOLUSDT,buy,50,210,2026-11-02T02:00:00+02:00,f2,0.25,linear",
    "ETHUSDT,sell,2,3000,2026-11-01T12:00:00Z,e1,0.1,linear",
    "ETHUSDT,buy,1.5,2900,2026-11-02T12:00:00Z,e2,0.1,linear",
]
# f1 opens 100 @ 200; f2 (the same instant as 00:00Z) opens 50 @ 210; f3 closes 60 of f1: gross 60 * 30 = 1800.
# e1 opens a short 2 @ 3000; e2 closes 1.5 of it: gross 1.5 * 100 = 150.


class Recon:
    """``recon`` in-process on the example fleet and a database: exit code, stdout and stderr."""

    def __init__(self, capsys: pytest.CaptureFixture[str], config: Path, db: str) -> None:
        self.capsys, self.config, self.db = capsys, config, db

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = 0
        try:
            main(["--config", str(self.config), "--db", self.db, *args])
        except SystemExit as done:
            code = int(done.code or 0)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def json(self, *args: str, expect: int = 0) -> Any:
        code, out, err = self(*args, "--json")
        assert code == expect, err
        return json.loads(out)

    def books(self) -> Any:
        return self.json("ledger", "show", "lxalgo", "paper")


@pytest.fixture
def recon(capsys: pytest.CaptureFixture[str], example_fleet: Path, database_url: str) -> Recon:
    """``recon`` on the example fleet, lxalgo/paper's books empty and its sim venue knowing only ``linear``."""
    return Recon(capsys, example_fleet, database_url)


def write_csv(directory: Path, rows: list[str], name: str = "history.csv") -> Path:
    path = directory / name
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def lots_of(books: dict[str, Any]) -> dict[str, list[tuple[str, str, str, str]]]:
    return {
        p["symbol"]: [(lot["entry_fill_id"], lot["remaining"], lot["entry_price"], lot["source"]) for lot in p["lots"]]
        for p in books["positions"]
    }


def test_a_csv_history_is_replayed_fifo_in_time_order_with_source_import(recon: Recon, tmp_path: Path) -> None:
    summary = recon.json("ledger", "import", "lxalgo", "paper", str(write_csv(tmp_path, HISTORY)))

    books = recon.books()
    assert lots_of(books) == {
        "ETHUSDT": [("e1", "0.5", "3000", "import")],
        "SOLUSDT": [("f1", "40", "200", "import"), ("f2", "50", "210", "import")],
    }
    assert (summary["imported"], summary["already_in_books"], summary["skipped"]) == (5, 0, [])
    by_symbol = {i["symbol"]: i for i in summary["instruments"]}
    assert (by_symbol["SOLUSDT"]["fills"], by_symbol["SOLUSDT"]["open_qty"], by_symbol["SOLUSDT"]["open_lots"]) == (
        3, "90", 2,
    )  # fmt: skip
    assert by_symbol["ETHUSDT"]["open_qty"] == "-0.5"
    assert Decimal(by_symbol["SOLUSDT"]["realized"]["gross"]) == 1800
    assert Decimal(by_symbol["ETHUSDT"]["realized"]["gross"]) == 150
    shown = {line["symbol"]: line for line in books["realized_pnl"]["by_instrument"]}
    for symbol, line in by_symbol.items():
        for figure in ("gross", "fees", "net"):
            assert Decimal(line["realized"][figure]) == Decimal(shown[symbol][figure])
    for figure in ("gross", "fees", "net"):
        assert Decimal(summary["realized"][figure]) == Decimal(books["realized_pnl"]["total"][figure])
    assert {t["status"] for t in books["trades"]} == {"CLOSED"}  # the bot's own closes, not the venue's

    database = Database(recon.db)
    with database.reading() as session:
        assert set(session.scalars(select(FillRow.source))) == {"import"}
    database.dispose()


def test_a_jsonl_history_imports_the_same_books_as_the_csv(recon: Recon, tmp_path: Path) -> None:
    lines = []
    for row in HISTORY:
        symbol, side, qty, price, time, fill_id, fee, category = row.split(",")
        # Numbers as JSON numbers and as strings: both are read as Decimal.
        lines.append(
            f'{{"symbol": "{symbol}", "side": "{side}", "qty": {qty}, "price": "{price}", "time": "{time}", '
            f'"fill_id": "{fill_id}", "fee": {fee}, "category": "{category}", "order_id": null}}'
        )
    path = tmp_path / "history.jsonl"
    path.write_text("\n\n".join(lines) + "\n")

    summary = recon.json("ledger", "import", "lxalgo", "paper", str(path))

    assert summary["imported"] == 5
    assert lots_of(recon.books())["SOLUSDT"] == [("f1", "40", "200", "import"), ("f2", "50", "210", "import")]


def test_a_second_import_changes_nothing(recon: Recon, tmp_path: Path) -> None:
    path = write_csv(tmp_path, HISTORY)
    recon.json("ledger", "import", "lxalgo", "paper", str(path))
    before = recon.books()

    again = recon.json("ledger", "import", "lxalgo", "paper", str(path))

    assert (again["imported"], again["already_in_books"], again["instruments"]) == (0, 5, [])
    assert recon.books() == before


def test_bad_rows_are_listed_by_line_and_nothing_is_written(recon: Recon, tmp_path: Path) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    rows = [
        *HISTORY[:2],
        "SOLUSDT,hold,1,200,2026-11-01T00:00:00Z,x1,0,linear",  # line 4
        "",  # line 5: blank, skipped
        "SOLUSDT,buy,1,200,2026-11-01T00:00:00,x2,0,linear",  # line 6: naive time
        "SOLUSDT,buy,-1,200,2026-11-01T00:00:00Z,x3,0,linear",  # line 7
        f"SOLUSDT,buy,1,200,{future},x4,0,linear",  # line 8
        "SOLUSDT,buy,1,200,2026-11-01T00:00:00Z,x5,0,spot",  # line 9: not a category of this venue
        "SOLUSDT,buy,100,201,2026-11-01T00:00:00Z,f1,1,linear",  # line 10: f1 again, other price
        "SOLUSDT,buy,1,200,2026-11-01T00:00:00Z,,0,linear",  # line 11: no fill id
    ]
    code, out, err = recon("ledger", "import", "lxalgo", "paper", str(write_csv(tmp_path, rows)))

    assert code == 2 and out == ""
    lines = err.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [f"line {n}" for n in (4, 6, 7, 8, 9, 10, 11)]
    assert "side: 'hold' is not one of buy, sell" in lines[0]
    assert "time zone" in lines[1] and "must be positive" in lines[2] and "in the future" in lines[3]
    assert "'spot'" in lines[4] and "on line 3 with other contents" in lines[5] and "fill_id: required" in lines[6]
    assert lines[-1].startswith("recon: error: 7 bad rows: nothing imported")
    assert recon("ledger", "show", "lxalgo", "paper")[0] == 2  # no books at all


def test_skip_bad_imports_the_good_rows_and_lists_the_skipped(recon: Recon, tmp_path: Path) -> None:
    rows = [*HISTORY, "SOLUSDT,buy,1,abc,2026-11-01T00:00:00Z,x1,0,linear"]

    code, out, err = recon("ledger", "import", "lxalgo", "paper", str(write_csv(tmp_path, rows)), "--skip-bad")

    assert code == 0
    assert err.splitlines() == ["line 7: price: 'abc' is not a decimal number"]
    assert "imported 5 fills" in out and "skipped 1 bad rows" in out
    assert len(lots_of(recon.books())["SOLUSDT"]) == 2
    summary = recon.json("ledger", "import", "lxalgo", "paper", str(write_csv(tmp_path, rows)), "--skip-bad")
    assert summary["skipped"] == [{"line": 7, "problem": "price: 'abc' is not a decimal number"}]
    assert (summary["imported"], summary["already_in_books"]) == (0, 5)


def test_many_bad_rows_are_listed_up_to_twenty(recon: Recon, tmp_path: Path) -> None:
    rows = [f"SOLUSDT,buy,0,1,2026-11-01T00:00:00Z,z{i},0,linear" for i in range(25)]

    code, _, err = recon("ledger", "import", "lxalgo", "paper", str(write_csv(tmp_path, rows)))

    lines = err.splitlines()
    assert code == 2 and len(lines) == 22 and lines[20] == "and 5 more" and "25 bad rows" in lines[21]


def test_a_dry_run_shows_the_summary_and_writes_nothing(recon: Recon, tmp_path: Path) -> None:
    path = write_csv(tmp_path, HISTORY)

    dry = recon.json("ledger", "import", "lxalgo", "paper", str(path), "--dry-run")

    assert dry["dry_run"] is True and dry["imported"] == 5
    assert recon("ledger", "show", "lxalgo", "paper")[0] == 2
    wet = recon.json("ledger", "import", "lxalgo", "paper", str(path))
    assert {k: v for k, v in wet.items() if k != "dry_run"} == {k: v for k, v in dry.items() if k != "dry_run"}
    code, out, _ = recon("ledger", "import", "lxalgo", "paper", str(path), "--dry-run")
    assert code == 0 and "would import 0 fills; 5 already in the books" in out


def test_a_fill_id_in_the_books_with_other_contents_is_refused(recon: Recon, tmp_path: Path) -> None:
    code, _, err = recon("ledger", "fill", "lxalgo", "paper", "--symbol", "SOLUSDT", "--side", "buy", "--qty", "100",
                         "--price", "199", "--fill-id", "f1", "--fee", "1", "--time", "2026-11-01T00:00:00Z",
                         "--category", "linear")  # fmt: skip
    assert code == 0, err
    before = recon.books()

    code, _, err = recon("ledger", "import", "lxalgo", "paper", str(write_csv(tmp_path, HISTORY)))

    assert code == 2
    assert err.splitlines()[0] == (
        "line 3: fill_id 'f1' is already in the books with other contents: price 200 (recorded 199)"
    )
    assert recon.books() == before


def test_a_fill_the_bot_recorded_already_is_counted_and_not_applied_twice(recon: Recon, tmp_path: Path) -> None:
    recon("ledger", "fill", "lxalgo", "paper", "--symbol", "SOLUSDT", "--side", "buy", "--qty", "100",
          "--price", "200", "--fill-id", "f1", "--fee", "1", "--time", "2026-11-01T00:00:00Z",
          "--category", "linear")  # fmt: skip

    summary = recon.json("ledger", "import", "lxalgo", "paper", str(write_csv(tmp_path, HISTORY)))

    assert (summary["imported"], summary["already_in_books"]) == (4, 1)
    assert lots_of(recon.books())["SOLUSDT"] == [("f1", "40", "200", "bot"), ("f2", "50", "210", "import")]


@pytest.mark.parametrize(
    ("name", "content", "options", "message"),
    [
        ("h.txt", HEADER, [], "unknown file format: the extension of h.txt is not csv or jsonl"),
        ("h.csv", HEADER, ["--format", "xml"], "unknown file format: --format 'xml' is not csv or jsonl"),
        ("h.csv", "symbol,side,qty,price,time,fee,colour", [], "the header lacks fill_id; has unknown 'colour'"),
        ("h.csv", "", [], "the file is empty"),
    ],
)
def test_a_file_that_cannot_be_read_is_one_error_line(
    recon: Recon, tmp_path: Path, name: str, content: str, options: list[str], message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)

    code, _, err = recon("ledger", "import", "lxalgo", "paper", str(path), *options)

    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


def test_jsonl_lines_are_numbered_as_in_the_file(recon: Recon, tmp_path: Path) -> None:
    path = tmp_path / "history.data"
    good = '{"symbol": "SOLUSDT", "side": "buy", "qty": "1", "price": "1", "time": "2026-11-01T00:00:00Z", "fee": "0"'
    path.write_text(f'{good}, "fill_id": "a"}}\n\n[1]\n{good}, "fill_id": "b", "colour": "red"}}\n{{"qty": NaN}}\n')

    code, _, err = recon("ledger", "import", "lxalgo", "paper", str(path), "--format", "jsonl")

    assert code == 2
    assert [line.split(":")[0] for line in err.splitlines()[:-1]] == ["line 3", "line 4", "line 5"]
    assert "unknown key 'colour'" in err and "NaN is not a number" in err


def test_the_migration_recipe_import_then_a_reconcile_dry_run_finds_the_books_in_sync(
    recon: Recon, tmp_path: Path
) -> None:
    recon.json("ledger", "import", "lxalgo", "paper", str(write_csv(tmp_path, HISTORY)))
    (recon.config.parent / "venues" / "lxalgo_paper.json").write_text(json.dumps({"positions": [
        {"symbol": "SOLUSDT", "category": "linear", "side": "long", "qty": "90", "avg_price": "205.56"},
        {"symbol": "ETHUSDT", "category": "linear", "side": "short", "qty": "0.5", "avg_price": "3000"},
    ]}))  # fmt: skip

    report = recon.json("reconcile", "lxalgo", "paper", "--dry-run")

    assert (report["status"], report["dry_run"], report["discrepancies"]) == ("in_sync", True, [])
    assert report["summary"]["matched"] == 2
