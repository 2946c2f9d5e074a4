"""sync_to_local on an IBKR account, end to end: a run against the fake gateway through the real ib_async client,
its orders behind the same guards as every venue, sent with the run's deterministic client id as ``orderRef``.

The fake listens on a random loopback port, which IBKR's convention does not name: it counts as live, so a test
expecting an order says ``allow_live_orders = true``, as an operator pointing at an unknown port must.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_tws import FakeTws, stock

from models.database import Database
from tests.conftest import books_for
from tests.conftest import serve_in_process as reconcile
from tests.venues.test_sync_to_local import order_actions
from workers.books import BooksClient
from workers.fleet import load_fleet

pytestmark = pytest.mark.timeout(60)

AAPL = stock(265598, "AAPL")


@pytest.fixture
def tws() -> Iterator[FakeTws]:
    with FakeTws() as fake:
        yield fake


@pytest.fixture
def drifted(tws: FakeTws, database: Database) -> BooksClient:
    """Books long 10 AAPL; IB holds 4 (mark 100): the venue must buy 6 to match the books."""
    books = books_for(database)
    books.record_fill("lxalgo", "live", symbol="AAPL", category="stock", side="buy", qty="10", price="100",
                      fill_id="b1", time="2026-11-01T14:30:00Z")  # fmt: skip
    tws.set_cash("USD", "100000")
    tws.add_position(AAPL, "4", "100", market_price="100")
    return books


def fleet(tmp_path: Path, tws: FakeTws, **account: str) -> Path:
    options = "\n".join(f"{key} = {value}" for key, value in account.items())
    path = tmp_path / "fleet.toml"
    path.write_text(f"""
[bots.lxalgo.accounts.live]
venue = "ibkr"
port = {tws.port}
client_id = 9
timeout_seconds = 1
grace_seconds = 0
cash_tolerance_pct = 100
{options}
[bots.lxalgo.accounts.live.policy]
minor = "sync_to_local"
moderate = "sync_to_local"
critical = "sync_to_local"
""")
    return path


def run(database: Database, path: Path) -> int:
    return reconcile(database, load_fleet(path).account("lxalgo", "live")).run_id


def test_a_guarded_order_goes_to_ib_once_with_the_runs_client_id_as_order_ref(
    tws: FakeTws, database: Database, drifted: BooksClient, tmp_path: Path
) -> None:
    path = fleet(tmp_path, tws, allow_live_orders="true", max_order_notional="1000")

    [(applied, detail)] = order_actions(database, run(database, path))

    assert applied and "sent as" in detail
    [placed] = tws.placed
    assert (placed["action"], placed["totalQuantity"], placed["orderType"], placed["conId"]) == (
        "BUY",
        "6.0",
        "MKT",
        str(AAPL.con_id),
    )
    assert detail.endswith(f"as {placed['orderRef']}: sent as {tws.open_orders[-1].perm_id}")  # venue id: permId

    retried = run(database, path)  # IB has not filled it yet: the books still drift the same way

    assert len(tws.placed) == 1  # the same correction, the same orderRef: IB already shows it, nothing is resent
    [(_, again)] = order_actions(database, retried)
    assert again.endswith(
        f"as {placed['orderRef']}: already sent by an earlier attempt (the venue knows its client id)"
    )


def test_a_live_port_without_allow_live_orders_sends_nothing(
    tws: FakeTws, database: Database, drifted: BooksClient, tmp_path: Path
) -> None:
    path = fleet(tmp_path, tws, max_order_notional="1000000")

    [(applied, detail)] = order_actions(database, run(database, path))

    assert not applied and "live account without allow_live_orders" in detail
    assert tws.placed == []


def test_an_order_over_the_notional_cap_is_refused(
    tws: FakeTws, database: Database, drifted: BooksClient, tmp_path: Path
) -> None:
    path = fleet(tmp_path, tws, allow_live_orders="true", max_order_notional="500")

    [(applied, detail)] = order_actions(database, run(database, path))

    assert not applied and "would take the run over max_order_notional 500" in detail
    assert tws.placed == []
