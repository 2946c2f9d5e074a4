"""Benchmark: reconcile a Bybit account holding N positions through the real pybit client and the loopback fake.

    .venv/bin/python bench/reconcile_bybit.py [--positions 1000] [--repeat 3] [--db sqlite:///...]

Prints wall time of one whole reconciliation (fetch through pybit, plan, apply) and the number of HTTP
requests by endpoint. The position list must take the minimum number of pages: N / 200 (5 for 1,000).
The books start in sync with the venue, so the run measures fetching and comparing, not corrections.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "venues")]

from fake_exchange import FakeExchange  # noqa: E402

from models.accounts import get_or_create_account  # noqa: E402
from models.database import Database, open_database  # noqa: E402
from models.fills import write_fills  # noqa: E402
from models.lots import load_open_lots  # noqa: E402
from reconciliation.values import Fill, InstrumentKey, Side, Source  # noqa: E402
from workers.fleet import load_fleet  # noqa: E402
from workers.pipeline import run_reconciliation as reconcile  # noqa: E402

PAGE = 200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-bybit-"))
    os.environ.update({"BENCH_BYBIT_KEY": "bybit-key", "BENCH_BYBIT_SECRET": "bybit-secret"})
    with FakeExchange() as exchange:
        for i in range(args.positions):
            exchange.add_bybit_position("linear", f"C{i:05d}USDT", "Buy", "1.5", "100", "101")
        (workdir / "fleet.toml").write_text(
            "[bots.bench.accounts.live]\n"
            f'venue = "bybit"\nenvironment = "testnet"\nbase_url = "{exchange.url}"\n'
            'api_key_env = "BENCH_BYBIT_KEY"\napi_secret_env = "BENCH_BYBIT_SECRET"\n'
            'settle_coins = ["USDT"]\nfill_lookback_days = 1\ngrace_seconds = 0\n'
        )
        config = load_fleet(workdir / "fleet.toml").account("bench", "live")
        database = open_database(args.db or f"sqlite:///{workdir / 'recon.db'}")
        seed(database, args.positions)
        times, statuses = [], set()
        for _ in range(args.repeat):
            exchange.requests.clear()
            started = time.perf_counter()
            statuses.add(reconcile(database, config).status)
            times.append(time.perf_counter() - started)
        requests = Counter(request.path for request in exchange.requests)
    pages = requests["/v5/position/list"]
    minimum = -(-args.positions // PAGE)
    print(f"machine    : {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, database {database.url.split(':')[0]}")  # fmt: skip
    print(f"positions  : {args.positions:,} linear (one settle coin), books in sync, runs: {args.repeat}")
    print(f"wall time  : median {statistics.median(times):.3f} s, best {min(times):.3f} s per reconciliation")
    print(
        f"requests   : {sum(requests.values())} per run: " + ", ".join(f"{p} {n}" for p, n in sorted(requests.items()))
    )
    print(f"pages      : position list {pages} (minimum {minimum} at {PAGE} per page)")
    print(f"status     : {', '.join(sorted(statuses))}")
    return 0 if pages == minimum and statuses == {"in_sync"} else 1


def seed(database: Database, positions: int) -> None:
    """Books holding the same positions as the venue, written in one batch."""
    now = datetime(2026, 11, 1, tzinfo=UTC)
    fills = [
        (Fill(f"seed-{i}", InstrumentKey("linear", f"C{i:05d}USDT"), Side.BUY, Decimal("1.5"), Decimal(100), now),
         Source.BOT)
        for i in range(positions)
    ]  # fmt: skip
    with database.sessions.begin() as session:
        account_id = get_or_create_account(session, "bench", "live", now, "bybit").id
        write_fills(session, account_id, fills, load_open_lots(session, account_id), now)


if __name__ == "__main__":
    raise SystemExit(main())
