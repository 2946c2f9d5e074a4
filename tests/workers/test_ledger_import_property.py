"""A property of ``recon ledger import``: importing a history leaves the same books as recording its fills one by
one through ``BooksClient`` in time order (ties in file order), whatever order the file lists them in."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.accounts import find_account
from models.database import Database
from models.reading import completed_trades, positions
from reconciliation.policy import Rules
from workers.books import BooksClient
from workers.fill_file import FileFormat, read_fill_file
from workers.fleet import AccountConfig, Fleet
from workers.importing import import_history

T0 = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 20, tzinfo=UTC)
COUNTER = itertools.count()

rows = st.lists(
    st.tuples(
        st.sampled_from(["AAA", "BBB"]),
        st.sampled_from(["buy", "sell"]),
        st.integers(1, 50).map(lambda n: Decimal(n) / 4),
        st.integers(90, 110),
        st.integers(0, 5),  # minutes after T0: equal times happen, and keep the file's order
        st.integers(0, 3).map(lambda n: Decimal(n) / 10),
    ),
    min_size=1,
    max_size=25,
)


def books_of(database: Database, bot: str) -> tuple[Any, Any]:
    with database.reading() as session:
        account_id = find_account(session, bot, "paper").id
        lots = [
            (str(p.key), p.qty, [(lot.entry_fill_id, lot.remaining, lot.entry_price, lot.commission) for lot in p.lots])
            for p in positions(session, account_id)
        ]
        trades = [
            (t.symbol, t.quantity, t.entry_fill_id, t.exit_fill_id, t.gross_pnl, t.fees, t.net_pnl, t.status)
            for t in completed_trades(session, account_id)
        ]
    return lots, trades


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=rows)
def test_import_leaves_the_books_that_recording_the_fills_in_time_order_leaves(
    history: list[tuple[str, str, Decimal, int, int, Decimal]], sqlite_url: str, tmp_path: Path
) -> None:
    n = next(COUNTER)
    imported, recorded = f"imp{n}", f"rec{n}"  # fresh books per example in the one database
    fleet = Fleet.of(*(AccountConfig(bot, "paper", "sim", Rules(), 300) for bot in (imported, recorded)))
    database = Database(sqlite_url)
    lines = [
        f"{symbol},{side},{qty},{price},{(T0 + timedelta(minutes=minute)).isoformat()},id{i},{fee}"
        for i, (symbol, side, qty, price, minute, fee) in enumerate(history)
    ]
    path = tmp_path / f"history{n}.csv"
    path.write_text("symbol,side,qty,price,time,fill_id,fee\n" + "\n".join(lines) + "\n")

    outcome = import_history(
        database, fleet.account(imported, "paper"),
        read_fill_file(path, FileFormat.CSV, lambda given: given or "default", NOW), NOW,
    )  # fmt: skip
    client = BooksClient(database, lambda: NOW, fleet=fleet)
    in_time_order = sorted(enumerate(history), key=lambda item: item[1][4])
    for i, (symbol, side, qty, price, minute, fee) in in_time_order:
        client.record_fill(recorded, "paper", symbol=symbol, side=side, qty=qty, price=str(price), fill_id=f"id{i}",
                           fee=fee, time=T0 + timedelta(minutes=minute))  # fmt: skip

    assert outcome.already == 0 and len(outcome.imported) == len(history)
    assert books_of(database, imported) == books_of(database, recorded)
    database.dispose()
