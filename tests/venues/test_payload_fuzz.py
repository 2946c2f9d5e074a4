"""Whatever a venue sends, a fetch ends in a snapshot the books can hold or in one of our errors: nothing else.

Hypothesis mutates the fake exchange's real payloads (its ``mutate`` hook rewrites each JSON body just before it is
sent) and the real pybit and alpaca-py clients read them through the adapters. A mutation replaces a field with any
JSON value (huge, tiny and negative numbers as strings and as numbers, NaN and infinities, empty and long strings,
lists, objects, null, booleans), deletes a field, duplicates or truncates a list, or replaces the whole body or its
``result``. Runs are derandomized so CI sees the same examples every time; one fake exchange and one venue serve
every example of a test. A last property runs whole reconciliations on Postgres with mutated Bybit payloads.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from pathlib import Path
from typing import Any

import pytest
from fake_exchange import DEFAULT_ALPACA_KEYS, DEFAULT_BYBIT_KEYS, FakeExchange
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from models import Fill as FillRow
from models import Lot
from models.database import Database
from reconciliation.errors import FixConfiguration, ReconError, RetryLater
from reconciliation.limits import AMOUNT_LIMIT, MAX_CATEGORY, MAX_CURRENCY, MAX_ID, MAX_SYMBOL, text_problem
from reconciliation.values import Snapshot
from tests.conftest import Clock, books_for, reconcile
from venues.alpaca import AlpacaSettings, AlpacaVenue
from venues.bybit import BybitSettings, BybitVenue
from venues.credentials import Credentials, Secret
from venues.parsing import moment_problem
from workers.books import BooksClient
from workers.fleet import load_fleet

EXAMPLES_PER_VENUE = 1000
END_TO_END_EXAMPLES = 150
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BYBIT_PATHS = ("/v5/position/list", "/v5/order/realtime", "/v5/execution/list", "/v5/account/wallet-balance")
ALPACA_PATHS = ("/v2/account", "/v2/positions", "/v2/orders", "/v2/account/activities/FILL")
BYBIT_KEY, BYBIT_SECRET = next(iter(DEFAULT_BYBIT_KEYS.items()))
ALPACA_KEY, ALPACA_SECRET = next(iter(DEFAULT_ALPACA_KEYS.items()))

# --- what a venue might send ------------------------------------------------------------------------------------

NASTY_TEXT = [
    "", " ", "0", "-0", "1", "-1", "-60000", "NaN", "nan", "-NaN", "sNaN", "inf", "-inf", "Infinity", "1e999999",
    "-1e999999", "1e25", "-1e25", "1e20", "1e-19", "1e-30", "1e999999999999999999", "1e-999999999999999999",
    "0E-9999999999", "99999999999999999999.999999999999999999", "1_000", " 1", "0x10", "１２３", "1,5", "None",
    "null", "true", "Buy", "Sell", "None", "long", "short", "buy", "sell", "sell_short", "Trade", "Funding",
    "BustTrade", "Filled", "New", "filled", "canceled", "crypto", "us_option", "BTC/USD", "/", "X" * 65, "x" * 129,
    "U" * 17, "c" * 33, "a\x00b", "a\nb", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
    "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "2026-11-20T12:00:00", "2026-13-01T00:00:00Z",
    "99999999999999999999", "4102444800000", "946684799999", "-1000",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 1, 2, 10**25, -(10**25), 2**63, 10**4000, 946_684_800_000, 4_102_444_800_000]),
    st.floats(),
    st.sampled_from(NASTY_TEXT),
    st.text(max_size=12),
    st.text(alphabet="abcXYZ019", min_size=60, max_size=300),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.integers().map(str),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
#: The fields the adapters read; a changed field is one of them half of the time.
READ = frozenset({
    "side", "size", "symbol", "positionIdx", "avgPrice", "markPrice", "orderId", "orderLinkId", "orderStatus", "qty",
    "price", "execId", "execType", "execQty", "execPrice", "execFee", "execTime", "coin", "walletBalance", "cash",
    "currency", "avg_entry_price", "current_price", "asset_class", "id", "client_order_id", "status", "limit_price",
    "notional", "filled_qty", "submitted_at", "transaction_time", "order_id", "nextPageCursor", "list", "result",
})  # fmt: skip
FIELD_VALUES = st.one_of(SCALARS, SCALARS, st.sampled_from(NASTY_TEXT), JSON_VALUES)
WHOLE = st.one_of(st.sampled_from([[], None, "x", {}, 0, [[]], [None], b"", b"{not json", b"[" * 5000]), JSON_VALUES)
#: How often each kind of change is drawn: most change one field of one row, where the adapters read values.
OPERATIONS = (*["field"] * 8, "drop", "replace", "replace", "delete", "duplicate", "duplicate", "truncate", "result",
              "body")  # fmt: skip


@dataclass(frozen=True)
class Mutation:
    """One change to the answers on ``path`` (every path when None).

    ``field`` and ``drop`` replace or delete one field of one row (``steps`` choose the list of rows, the row and
    the field, each by index modulo their number); the other operations walk ``steps`` down the document,
    choosing among an object's keys or a list's items, to the value they replace, delete, duplicate or truncate;
    ``result`` and ``body`` replace Bybit's ``result`` or the whole body.
    """

    path: str | None
    steps: tuple[int, ...]
    operation: str
    value: Any

    def applies_to(self, path: str) -> bool:
        return self.path is None or self.path == path

    def apply(self, document: Any) -> Any:
        if self.operation == "body":
            return copy.deepcopy(self.value)
        if self.operation == "result":
            if isinstance(document, dict):
                document["result"] = copy.deepcopy(self.value)
                return document
            return copy.deepcopy(self.value)
        if self.operation in ("field", "drop"):
            self._change_row(document)
            return document
        parent, key, node = _walk(document, self.steps)
        if self.operation == "replace":
            if parent is None:
                return copy.deepcopy(self.value)
            parent[key] = copy.deepcopy(self.value)
        elif self.operation == "delete" and parent is not None:
            del parent[key]
        elif self.operation == "duplicate":
            _duplicate(parent, key, node, self.steps)
        elif self.operation == "truncate" and isinstance(node, list):
            del node[(self.steps[-1] if self.steps else 0) % (len(node) + 1) :]
        return document

    def _change_row(self, document: Any) -> None:
        steps = (*self.steps, 0, 0, 0, 0)
        tables = [rows for rows in _row_lists(document) if rows]
        if not tables:
            return
        rows = tables[steps[0] % len(tables)]
        row = rows[steps[1] % len(rows)]
        if not isinstance(row, dict) or not row:
            return
        read = [name for name in row if name in READ]
        names = read if read and steps[3] % 2 == 0 else list(row)
        name = names[steps[2] % len(names)]
        if self.operation == "drop":
            del row[name]
        else:
            row[name] = copy.deepcopy(self.value)


def _row_lists(document: Any) -> list[list[Any]]:
    """The lists of rows in a body: Bybit's ``result.list`` (and a wallet's coins), Alpaca's list or its account."""
    if isinstance(document, list):
        return [document]
    if not isinstance(document, dict):
        return []
    result = document.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("list"), list):
        return [[document]]
    rows: list[Any] = result["list"]
    coins = [row["coin"] for row in rows if isinstance(row, dict) and isinstance(row.get("coin"), list)]
    return [rows, *coins]


def _walk(document: Any, steps: tuple[int, ...]) -> tuple[Any, Any, Any]:
    """The container, key and value that ``steps`` lead to (container None: the document itself)."""
    parent: Any = None
    key: Any = None
    node = document
    for step in steps:
        if isinstance(node, dict) and node:
            parent, key = node, list(node)[step % len(node)]
        elif isinstance(node, list) and node:
            parent, key = node, step % len(node)
        else:
            break
        node = parent[key]
    return parent, key, node


def _duplicate(parent: Any, key: Any, node: Any, steps: tuple[int, ...]) -> None:
    if isinstance(node, list) and node:
        node.append(copy.deepcopy(node[(steps[-1] if steps else 0) % len(node)]))
    elif isinstance(parent, list):
        parent.insert(key, copy.deepcopy(node))


def mutations(paths: tuple[str, ...]) -> st.SearchStrategy[list[Mutation]]:
    def of(operation: str) -> st.SearchStrategy[Mutation]:
        return st.builds(
            Mutation,
            path=st.sampled_from((*paths, *paths, None)),
            steps=st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=6).map(tuple),
            operation=st.just(operation),
            value=WHOLE if operation in ("body", "result") else FIELD_VALUES,
        )

    return st.lists(st.sampled_from(OPERATIONS).flatmap(of), min_size=1, max_size=3)


def serve(exchange: FakeExchange, changes: list[Mutation]) -> None:
    def mutate(path: str, document: Any) -> Any:
        for change in changes:
            if change.applies_to(path):
                document = change.apply(document)
        return document

    exchange.mutate = mutate


# --- what must hold ---------------------------------------------------------------------------------------------


PLACES, COLUMN = Decimal("1E-18"), Context(prec=60)


def fits_column(number: Decimal) -> bool:
    """Whether NUMERIC(38, 18) holds ``number`` exactly, checked here without the code under test (nor
    ``limits.amount_problem``, whose result depends on the decimal context)."""
    exponent = number.as_tuple().exponent
    if not isinstance(exponent, int) or exponent < -1000:  # Postgres cannot even read 0E-9999999999
        return False
    return -AMOUNT_LIMIT < number < AMOUNT_LIMIT and number.quantize(PLACES, context=COLUMN) == number


def assert_storable(snapshot: Snapshot) -> None:
    """Everything in ``snapshot`` fits the books: amounts, names, signs, times, and no instrument or order twice."""
    keys = [p.key for p in snapshot.positions]
    assert len(keys) == len(set(keys))
    ids = [o.venue_order_id for o in snapshot.open_orders]
    assert len(ids) == len(set(ids))
    for key in [*keys, *snapshot.marks, *(o.key for o in snapshot.open_orders), *(f.key for f in snapshot.fills)]:
        assert text_problem(key.category, MAX_CATEGORY) is None and text_problem(key.symbol, MAX_SYMBOL) is None
        assert 0 <= key.leg <= 2
    for position in snapshot.positions:
        assert fits_column(position.qty) and position.qty != 0
        assert fits_column(position.avg_price) and position.avg_price > 0
        assert position.mark_price is None or (fits_column(position.mark_price) and position.mark_price > 0)
    for mark in snapshot.marks.values():
        assert fits_column(mark) and mark > 0
    if snapshot.cash is not None:
        assert text_problem(snapshot.cash.currency, MAX_CURRENCY) is None
        assert fits_column(snapshot.cash.balance)
    for order in snapshot.open_orders:
        assert all(text_problem(i, MAX_ID) is None for i in (order.venue_order_id, order.client_order_id) if i)
        assert fits_column(order.qty) and order.qty >= 0
        assert order.price is None or (fits_column(order.price) and order.price > 0)
    for fill in snapshot.fills:
        assert all(text_problem(i, MAX_ID) is None for i in (fill.fill_id, fill.order_id) if i is not None)
        assert fits_column(fill.qty) and fill.qty > 0
        assert fits_column(fill.price) and fill.price > 0
        assert fits_column(fill.fee)
        assert moment_problem(fill.time) is None


def fetch_or_refuse(venue: BybitVenue | AlpacaVenue) -> bool:
    """Fetch a snapshot: True when it came back (and fits the books), False when it failed with our error."""
    try:
        snapshot = venue.fetch_snapshot(datetime.now(UTC))
    except ReconError:
        return False
    assert_storable(snapshot)
    return True


# --- the venues -------------------------------------------------------------------------------------------------


def seed(exchange: FakeExchange) -> None:
    """A few positions (hedge legs, shorts, crypto), orders, fills, funding and a wallet on each venue."""
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    exchange.add_bybit_position("linear", "BTCUSDT", "Buy", "0.5", "60000", "61000", position_idx=1)
    exchange.add_bybit_position("linear", "BTCUSDT", "Sell", "0.2", "62000", "61000", position_idx=2)
    exchange.add_bybit_position("linear", "ETHUSDT", "Sell", "3", "3000", "3100")
    exchange.add_bybit_order("linear", "BTCUSDT", "Sell", "0.5", "70000", order_link_id="tp-1", position_idx=1)
    exchange.add_bybit_order("linear", "ETHUSDT", "Buy", "3", "0", order_type="Market")
    exchange.add_bybit_execution("linear", "BTCUSDT", "Buy", "0.5", "60000", exec_time=hour_ago, exec_fee="-0.01")
    exchange.add_bybit_execution("linear", "ETHUSDT", "Sell", "3", "3000", exec_time=hour_ago, exec_type="BustTrade")
    exchange.add_bybit_execution("linear", "ETHUSDT", "Sell", "3", "1", exec_time=hour_ago, exec_type="Funding")
    exchange.set_bybit_wallet({"USDT": "10000.5", "BTC": "0.1"}, usd_prices={"BTC": "60000"})
    exchange.add_alpaca_position("AAPL", "10", "190", "191")
    exchange.add_alpaca_position("TSLA", "-5", "250", "240")
    exchange.add_alpaca_position("BTCUSD", "0.25", "60000", "61000", asset_class="crypto")
    exchange.add_alpaca_order("AAPL", "10", "sell", limit_price="250", submitted_at=hour_ago)
    exchange.add_alpaca_order("BTC/USD", None, "buy", type="market", notional="500", submitted_at=hour_ago)
    exchange.add_alpaca_fill("AAPL", "10", "190", "buy", transaction_time=hour_ago)
    exchange.add_alpaca_fill("BTC/USD", "0.25", "60000", "buy", transaction_time=hour_ago)
    exchange.set_alpaca_account(cash="-1500.25")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeExchange]:
    """One fake exchange for every example of the module; each test resets and seeds it."""
    with FakeExchange() as exchange:
        yield exchange


@pytest.fixture
def seeded(fake: FakeExchange) -> FakeExchange:
    fake.reset()
    seed(fake)
    return fake


def bybit_venue(exchange: FakeExchange, timeout: float = 2) -> BybitVenue:
    credentials = Credentials(Secret(BYBIT_KEY), Secret(BYBIT_SECRET))
    return BybitVenue(BybitSettings(credentials=credentials, base_url=exchange.url, timeout_seconds=timeout,
                                    settle_coins=("USDT",)))  # fmt: skip


def alpaca_venue(exchange: FakeExchange, timeout: float = 2) -> AlpacaVenue:
    credentials = Credentials(Secret(ALPACA_KEY), Secret(ALPACA_SECRET))
    return AlpacaVenue(AlpacaSettings(credentials=credentials, base_url=exchange.url, timeout_seconds=timeout))


def run_property(
    exchange: FakeExchange, venue: BybitVenue | AlpacaVenue, paths: tuple[str, ...], examples: int
) -> tuple[int, int]:
    """Run the property over ``examples`` derandomized examples; returns (examples run, snapshots returned)."""
    counts = {"run": 0, "returned": 0}

    @settings(FUZZ, max_examples=examples)
    @given(changes=mutations(paths))
    def fetch_mutated(changes: list[Mutation]) -> None:
        serve(exchange, changes)
        counts["run"] += 1
        counts["returned"] += fetch_or_refuse(venue)

    fetch_mutated()
    return counts["run"], counts["returned"]


def test_the_unmutated_payloads_make_a_full_snapshot(seeded: FakeExchange) -> None:
    bybit = bybit_venue(seeded).fetch_snapshot(datetime.now(UTC))
    alpaca = alpaca_venue(seeded).fetch_snapshot(datetime.now(UTC))

    assert (len(bybit.positions), len(bybit.open_orders), len(bybit.fills)) == (3, 2, 2)
    assert (len(alpaca.positions), len(alpaca.open_orders), len(alpaca.fills)) == (3, 2, 2)
    assert_storable(bybit)
    assert_storable(alpaca)


@pytest.mark.parametrize(
    ("build", "paths"), [(bybit_venue, BYBIT_PATHS), (alpaca_venue, ALPACA_PATHS)], ids=["bybit", "alpaca"]
)
def test_mutated_payloads_give_a_storable_snapshot_or_our_error_and_nothing_else(
    seeded: FakeExchange, build: Callable[[FakeExchange], BybitVenue | AlpacaVenue], paths: tuple[str, ...]
) -> None:
    run, returned = run_property(seeded, build(seeded), paths, EXAMPLES_PER_VENUE)

    assert run >= EXAMPLES_PER_VENUE
    assert 0 < returned < run  # both outcomes were met: the mutations are neither all harmless nor all fatal


# --- whole runs on Postgres -------------------------------------------------------------------------------------


def bybit_fleet_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> Any:
    """A one-account fleet whose books follow the venue (sync_to_broker), so that venue values reach the database."""
    monkeypatch.setenv("RECON_FUZZ_KEY", BYBIT_KEY)
    monkeypatch.setenv("RECON_FUZZ_SECRET", BYBIT_SECRET)
    path = tmp_path / "fleet.toml"
    path.write_text(
        "[bots.lxalgo.accounts.paper]\n"
        f'venue = "bybit"\nenvironment = "testnet"\nbase_url = "{url}"\nsettle_coins = ["USDT"]\n'
        'api_key_env = "RECON_FUZZ_KEY"\napi_secret_env = "RECON_FUZZ_SECRET"\ntimeout_seconds = 2\n'
        "[bots.lxalgo.accounts.paper.policy]\n"
        'minor = "sync_to_broker"\nmoderate = "sync_to_broker"\ncritical = "sync_to_broker"\n'
        '[bots.lxalgo.accounts.paper.policy.by_kind]\nmissing_in_ledger = "sync_to_broker"\n',
        encoding="utf-8",
    )
    return load_fleet(path).account("lxalgo", "paper")


def books_state(database: Database, books: BooksClient) -> tuple[object, ...]:
    with database.sessions() as session:
        fills = session.scalar(select(func.count()).select_from(FillRow))
        lots = session.scalar(select(func.count()).select_from(Lot))
    return fills, lots, tuple(books.positions("lxalgo", "paper"))


def test_whole_runs_on_mutated_bybit_payloads_fail_cleanly_or_succeed(
    seeded: FakeExchange, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = Database(postgres_url)
    clock = Clock(datetime.now(UTC))
    books = books_for(database, clock)
    books.record_fill("lxalgo", "paper", symbol="BTCUSDT", category="linear", side="buy", qty="0.5", price="59000",
                      fill_id="bot-1", time=(clock.now - timedelta(days=2)).isoformat())  # fmt: skip
    config = bybit_fleet_account(tmp_path, monkeypatch, seeded.url)
    venue = bybit_venue(seeded)
    outcomes: dict[str, int] = {}

    @settings(FUZZ, max_examples=END_TO_END_EXAMPLES)
    @given(changes=mutations(BYBIT_PATHS))
    def reconcile_mutated(changes: list[Mutation]) -> None:
        serve(seeded, changes)
        before = books_state(database, books)
        clock.advance(1)

        try:  # an unexpected error is raised here; a transient or configuration one once the run is recorded
            result = reconcile(database, config, clock=clock, venue=venue)
        except (RetryLater, FixConfiguration) as error:
            assert error.run_id is not None, "the failed run was recorded before raising"
            status, message = "failed", str(error)
        else:
            status, message = result.status.value, result.error or ""

        outcomes[status] = outcomes.get(status, 0) + 1
        assert not message.startswith("unexpected error"), message
        if status == "failed":
            assert books_state(database, books) == before

    try:
        reconcile_mutated()
    finally:
        database.dispose()
    assert sum(outcomes.values()) >= END_TO_END_EXAMPLES
    assert outcomes.get("failed", 0) > 0 and len(outcomes) > 1
