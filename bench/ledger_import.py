"""Benchmark: ``recon ledger import`` of a bot's trade history of N fills (default 100,000) into Postgres.

    .venv/bin/python bench/ledger_import.py [--rows 100000] [--instruments 50] [--seed 7] [--strict]
                                            [--db postgresql://postgres@127.0.0.1:5432/test]

It writes a CSV history (rows shuffled, so the import sorts them by time) of buys and sells on ``--instruments``
instruments whose positions wander around flat, creates a private Postgres schema (``bench_import_<pid>``), runs
the Alembic migrations there, and measures what the command does: reading and checking the file
(``workers.fill_file``), then the import in one transaction (``workers.importing``). Then it imports the same file
again, which must change nothing (every fill already in the books). The schema is dropped at the end, also on
error or Ctrl-C; nothing outside it is touched. Target: the first import (reading included) under 10 s.

Exit status: 0 when every check passed, 1 when one failed (with ``--strict``, also when the target is missed),
2 when Postgres cannot be used.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/ledger_import.py` from anywhere
    sys.path.insert(0, str(ROOT))

from models.database import Database, make_engine, normalize_url, upgrade  # noqa: E402
from reconciliation.policy import Rules  # noqa: E402
from workers.categories import checked_category  # noqa: E402
from workers.fill_file import FileFormat, read_fill_file  # noqa: E402
from workers.fleet import AccountConfig  # noqa: E402
from workers.importing import import_history, outcome_json  # noqa: E402

DEFAULT_DB = os.environ.get("RECON_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 20, tzinfo=UTC)  # after every fill
TARGET_SECONDS = 10.0


def write_history(path: Path, rows: int, instruments: int, seed: int) -> None:
    """``rows`` fills over ``instruments`` symbols, each position wandering around flat, in shuffled order."""
    rng = random.Random(seed)
    held = [Decimal(0)] * instruments
    lines = []
    for i in range(rows):
        n = rng.randrange(instruments)
        qty = Decimal(rng.randint(1, 1000)) / 100
        sell_odds = 0.55 if held[n] > 0 else 0.45 if held[n] < 0 else 0.5  # drift back towards flat
        side = "sell" if rng.random() < sell_odds else "buy"
        held[n] += qty if side == "buy" else -qty
        price = Decimal(10_000 + 100 * n + rng.randint(-500, 500)) / 100
        fee = Decimal(rng.randint(0, 50)) / 100
        when = (T0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        lines.append(f"S{n:03d}USDT,{side},{qty},{price},{when},exec-{i},{fee}")
    rng.shuffle(lines)
    path.write_text("symbol,side,qty,price,time,fill_id,fee\n" + "\n".join(lines) + "\n")


def schema_url(base: str, schema: str) -> str:
    return make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)


def run(base: str, args: argparse.Namespace, folder: Path) -> tuple[list[str], list[str], float]:
    """The figures to print, the failed checks, and the seconds the first import took."""
    path = folder / "history.csv"
    write_history(path, args.rows, args.instruments, args.seed)
    config = AccountConfig("benchbot", "paper", "sim", Rules(), 300)  # no state file: any category

    def category_of(given: str | None) -> str:
        return checked_category(config, given)

    schema = f"bench_import_{os.getpid()}"
    admin = make_engine(base)
    database: Database | None = None
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        database = Database(schema_url(base, schema))
        upgrade(database.engine)
        started = time.perf_counter()
        history = read_fill_file(path, FileFormat.CSV, category_of, NOW)
        read = time.perf_counter() - started
        outcome = import_history(database, config, history, NOW)
        first = time.perf_counter() - started
        started = time.perf_counter()
        again = import_history(database, config, read_fill_file(path, FileFormat.CSV, category_of, NOW), NOW)
        second = time.perf_counter() - started
    finally:
        if database is not None:
            database.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
    summary = outcome_json(outcome)
    failures = [
        *([f"first import wrote {len(outcome.imported)} fills, not {args.rows}"] if len(outcome.imported) != args.rows
          else []),
        *([f"second import wrote {len(again.imported)} fills (expected none)"] if again.imported else []),
        *([f"second import found {again.already} already in the books, not {args.rows}"] if again.already != args.rows
          else []),
        *([f"bad rows: {history.bad[:3]}"] if history.bad else []),
    ]  # fmt: skip
    lines = [
        f"machine    : {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        f"history    : {args.rows:,} rows over {args.instruments} instruments (shuffled), "
        f"{len(outcome.trades):,} trades completed, {sum(i['open_lots'] for i in summary['instruments']):,} lots "
        "left open",
        f"read+check : {read:.2f} s",
        f"import     : {first:.2f} s in all ({args.rows / first:,.0f} rows/s); target < {TARGET_SECONDS:.0f} s",
        f"again      : {second:.2f} s, {again.already:,} already in the books, {len(again.imported)} written",
    ]
    return lines, failures, first


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="fills in the history (default 100000)")
    parser.add_argument("--instruments", type=int, default=50, help="instruments they trade (default 50)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the history (default 7)")
    parser.add_argument("--strict", action="store_true", help=f"exit 1 when the import takes {TARGET_SECONDS:.0f} s "
                        "or more")  # fmt: skip
    parser.add_argument("--db", default=DEFAULT_DB, help=f"Postgres URL; a private schema is created in it "
                        f"(default {DEFAULT_DB}, or RECON_BENCH_DATABASE_URL)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = normalize_url(args.db)
    if make_url(base).get_backend_name() != "postgresql":
        print("this benchmark needs Postgres (--db postgresql://...)", file=sys.stderr)
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="recon-bench-") as folder:
            lines, failures, seconds = run(base, args, Path(folder))
    except OperationalError as error:
        print(f"Postgres is not usable at {make_url(base).render_as_string()}: {error.orig}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    for failure in failures:
        print(f"check failed: {failure}")
    if args.strict and seconds >= TARGET_SECONDS:
        failures.append("target missed")
        print(f"target missed: {seconds:.2f} s >= {TARGET_SECONDS:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
