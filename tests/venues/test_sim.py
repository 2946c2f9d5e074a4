"""The simulated venue: a JSON state file read whole into a Snapshot, exactly, or a failed fetch naming the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import cli
from reconciliation.errors import FixConfiguration, InvalidResponse
from reconciliation.values import (
    Cash,
    Fill,
    FillKind,
    InstrumentKey,
    Order,
    OrderStatus,
    Side,
    Snapshot,
    VenuePosition,
)
from venues.sim import SimVenue

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EXAMPLE_VENUES = Path(cli.__file__).resolve().parent / "examples" / "venues"

LONG_BTC = {"symbol": "BTCUSDT", "side": "long", "qty": "1", "avg_price": "50000"}
ORDER = {"order_id": "ord-1", "symbol": "BTCUSDT", "side": "buy", "qty": "1"}
FILL = {
    "fill_id": "exec-1",
    "symbol": "BTCUSDT",
    "side": "buy",
    "qty": "1",
    "price": "50000",
    "time": "2026-11-14T03:10:00Z",
}

WriteState = Callable[[Any], Path]


@pytest.fixture
def write_state(tmp_path: Path) -> WriteState:
    """Writes a state document (a JSON-able value, or raw text) as ``state.json`` and returns its path."""

    def write(document: Any) -> Path:
        path = tmp_path / "state.json"
        path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
        return path

    return write


def fetch(path: Path) -> Snapshot:
    return SimVenue(path).fetch_snapshot(NOW)


def refused(path: Path) -> str:
    """The message of the InvalidResponse that fetching ``path`` must raise."""
    with pytest.raises(InvalidResponse) as caught:
        fetch(path)
    return str(caught.value)


# --- a well-formed state -----------------------------------------------------------------------------------------


@pytest.fixture
def full_state_file(write_state: WriteState) -> Path:
    """A state with every section: a long and a short position on two hedge legs, cash, orders, fills, marks."""
    return write_state(
        """{
          "positions": [
            {"symbol": "BTCUSDT", "category": "linear", "leg": 1, "side": "long", "qty": "0.5",
             "avg_price": "50000.10", "mark_price": 51000},
            {"symbol": "BTCUSDT", "category": "linear", "leg": 2, "side": "short", "qty": 0.1, "avg_price": 49000.5},
            {"symbol": "AAPL", "side": "long", "qty": 10, "avg_price": "185", "currency": "USD"}
          ],
          "cash": {"currency": "USDT", "balance": "10000.01"},
          "open_orders": [
            {"order_id": "ord-1", "client_order_id": "bot-1", "symbol": "BTCUSDT", "category": "linear", "leg": 1,
             "side": "sell", "qty": "0.5", "price": "52000", "status": "partially_filled"},
            {"order_id": "ord-2", "symbol": "AAPL", "side": "buy", "qty": "3"}
          ],
          "fills": [
            {"fill_id": "exec-1", "order_id": "ord-0", "symbol": "BTCUSDT", "category": "linear", "leg": 1,
             "side": "buy", "qty": "0.5", "price": "50000.10", "fee": "0.25", "time": "2026-11-14T05:10:00+02:00"},
            {"fill_id": "exec-2", "symbol": "SOLUSDT", "category": "linear", "side": "sell", "qty": "500",
             "price": "151.2", "time": "2026-11-14T03:11:00Z", "kind": "liquidation"},
            {"fill_id": "exec-3", "symbol": "ETHUSDT", "category": "linear", "side": "sell", "qty": "2",
             "price": "3100", "fee": -0.01, "time": "2026-11-14T03:12:00.250000Z", "kind": "adl"}
          ],
          "marks": [{"symbol": "SOLUSDT", "category": "linear", "price": "150.9"}, {"symbol": "AAPL", "price": 192.5}]
        }"""
    )


def test_a_full_state_becomes_the_expected_snapshot(full_state_file: Path) -> None:
    btc_long = InstrumentKey("linear", "BTCUSDT", 1)
    btc_short = InstrumentKey("linear", "BTCUSDT", 2)
    aapl = InstrumentKey("default", "AAPL", 0)

    assert fetch(full_state_file) == Snapshot(
        as_of=NOW,
        positions=(
            VenuePosition(btc_long, Decimal("0.5"), Decimal("50000.10"), Decimal(51000), "USDT"),  # the cash's
            VenuePosition(btc_short, Decimal("-0.1"), Decimal("49000.5"), None, "USDT"),
            VenuePosition(aapl, Decimal(10), Decimal(185), None, "USD"),  # its own
        ),
        cash=Cash("USDT", Decimal("10000.01")),
        open_orders=(
            Order("bot-1", "ord-1", btc_long, Side.SELL, Decimal("0.5"), Decimal(52000), OrderStatus.PARTIALLY_FILLED),
            Order(None, "ord-2", aapl, Side.BUY, Decimal(3), None, OrderStatus.OPEN),
        ),
        fills=(
            Fill(
                fill_id="exec-1",
                key=btc_long,
                side=Side.BUY,
                qty=Decimal("0.5"),
                price=Decimal("50000.10"),
                time=datetime(2026, 11, 14, 3, 10, tzinfo=UTC),
                fee=Decimal("0.25"),
                order_id="ord-0",
            ),
            Fill(
                fill_id="exec-2",
                key=InstrumentKey("linear", "SOLUSDT"),
                side=Side.SELL,
                qty=Decimal(500),
                price=Decimal("151.2"),
                time=datetime(2026, 11, 14, 3, 11, tzinfo=UTC),
                kind=FillKind.LIQUIDATION,
            ),
            Fill(
                fill_id="exec-3",
                key=InstrumentKey("linear", "ETHUSDT"),
                side=Side.SELL,
                qty=Decimal(2),
                price=Decimal(3100),
                time=datetime(2026, 11, 14, 3, 12, 0, 250000, tzinfo=UTC),
                fee=Decimal("-0.01"),
                kind=FillKind.ADL,
            ),
        ),
        marks={InstrumentKey("linear", "SOLUSDT"): Decimal("150.9"), aapl: Decimal("192.5")},
    )


def test_a_short_position_has_a_negative_quantity(full_state_file: Path) -> None:
    quantities = {p.key: p.qty for p in fetch(full_state_file).positions}

    assert quantities[InstrumentKey("linear", "BTCUSDT", 2)] == Decimal("-0.1")
    assert quantities[InstrumentKey("linear", "BTCUSDT", 1)] == Decimal("0.5")


def test_category_and_leg_default_to_default_and_zero(write_state: WriteState) -> None:
    (position,) = fetch(write_state({"positions": [LONG_BTC]})).positions

    assert position.key == InstrumentKey("default", "BTCUSDT", 0)


@pytest.mark.parametrize("qty", ['"0.1"', "0.1"], ids=["json-string", "json-number"])
def test_json_strings_and_numbers_are_both_read_as_exact_decimals(write_state: WriteState, qty: str) -> None:
    path = write_state('{"positions": [{"symbol": "X", "side": "long", "qty": ' + qty + ', "avg_price": "1"}]}')

    (position,) = fetch(path).positions

    assert position.qty == Decimal("0.1")
    assert str(position.qty) == "0.1"  # not 0.1000000000000000055511151231257827...


def test_large_json_integers_and_exponents_stay_exact(write_state: WriteState) -> None:
    path = write_state('{"cash": {"currency": "USD", "balance": 12345678901234567890.123456789}}')

    assert fetch(path).cash == Cash("USD", Decimal("12345678901234567890.123456789"))


def test_fill_times_with_an_offset_are_converted_to_utc(full_state_file: Path) -> None:
    fills = fetch(full_state_file).fills

    assert fills[0].time == datetime(2026, 11, 14, 3, 10, tzinfo=UTC)
    assert all(fill.time.utcoffset() is not None and fill.time.tzinfo is UTC for fill in fills)


def test_fill_kinds_default_to_trade_and_read_liquidation_and_adl(full_state_file: Path) -> None:
    assert [fill.kind for fill in fetch(full_state_file).fills] == [FillKind.TRADE, FillKind.LIQUIDATION, FillKind.ADL]


def test_marks_are_keyed_by_instrument(full_state_file: Path) -> None:
    marks = fetch(full_state_file).marks

    assert marks == {
        InstrumentKey("linear", "SOLUSDT", 0): Decimal("150.9"),
        InstrumentKey("default", "AAPL", 0): Decimal("192.5"),
    }


@pytest.mark.parametrize("document", [{}, {"cash": None}, {"positions": [], "open_orders": [], "fills": []}])
def test_an_empty_state_is_a_complete_snapshot_with_nothing_in_it(write_state: WriteState, document: Any) -> None:
    assert fetch(write_state(document)) == Snapshot(as_of=NOW, positions=(), cash=None)


def test_the_file_is_read_again_on_every_fetch(write_state: WriteState) -> None:
    path = write_state({"positions": [LONG_BTC]})
    venue = SimVenue(path)
    assert len(venue.fetch_snapshot(NOW).positions) == 1

    write_state({"positions": []})

    assert venue.fetch_snapshot(NOW).positions == ()


# --- every malformed state fails the whole fetch, naming the file and the field ----------------------------------


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        pytest.param([LONG_BTC], "the document: expected an object", id="top-level-list"),
        pytest.param("null", "the document: expected an object", id="top-level-null"),
        pytest.param(
            {"positions": [], "colour": "red"},
            "unknown key 'colour' (expected cash, fills, marks, open_orders, positions)",
            id="unknown-top-level-key",
        ),
        pytest.param({"positions": {"BTCUSDT": LONG_BTC}}, "positions: expected a list", id="positions-not-a-list"),
        pytest.param({"positions": [LONG_BTC, "BTCUSDT"]}, "positions[1]: expected an object", id="position-not-obj"),
        pytest.param(
            {"positions": [LONG_BTC, {"side": "long", "qty": "1", "avg_price": "1"}]},
            "positions[1].symbol: missing",
            id="missing-symbol",
        ),
        pytest.param(
            {"positions": [{**LONG_BTC, "symbol": ""}]},
            "positions[0].symbol: expected a non-empty string",
            id="empty-symbol",
        ),
        pytest.param(
            {"positions": [LONG_BTC, {**LONG_BTC, "qty": "lots"}]},
            "positions[1].qty: 'lots' is not a decimal number",
            id="qty-not-a-number",
        ),
        pytest.param(
            {"positions": [LONG_BTC, {**LONG_BTC, "qty": True}]},
            "positions[1].qty: expected a decimal number, got bool",
            id="qty-boolean",
        ),
        pytest.param(
            {"positions": [LONG_BTC, {**LONG_BTC, "qty": [1]}]},
            "positions[1].qty: expected a decimal number, got list",
            id="qty-list",
        ),
        pytest.param(
            {"positions": [LONG_BTC, {**LONG_BTC, "qty": "NaN"}]},
            "positions[1].qty: 'NaN' is not a finite number",
            id="qty-nan-string",
        ),
        pytest.param(
            '{"positions": [{"symbol": "X", "side": "long", "qty": Infinity, "avg_price": "1"}]}',
            "positions[0].qty: expected a decimal number, got float",
            id="qty-json-infinity",
        ),
        pytest.param(
            {"positions": [LONG_BTC, {**LONG_BTC, "qty": "0"}]},
            "positions[1].qty: must be positive, got '0'",
            id="qty-zero",
        ),
        pytest.param(
            {"positions": [LONG_BTC, {**LONG_BTC, "qty": -1}]},
            "positions[1].qty: must be positive, got -1",
            id="qty-negative",
        ),
        pytest.param(
            {"positions": [{**LONG_BTC, "side": "buy"}]},
            "positions[0].side: 'buy' is not one of the allowed values",
            id="side-not-long-short",
        ),
        pytest.param(
            {"positions": [{k: v for k, v in LONG_BTC.items() if k != "side"}]},
            "positions[0].side: missing",
            id="side-missing",
        ),
        pytest.param(
            {"positions": [{k: v for k, v in LONG_BTC.items() if k != "avg_price"}]},
            "positions[0].avg_price: missing",
            id="avg-price-missing",
        ),
        pytest.param(
            {"positions": [{**LONG_BTC, "mark_price": "n/a"}]},
            "positions[0].mark_price: 'n/a' is not a decimal number",
            id="mark-price-not-a-number",
        ),
        pytest.param(
            {"positions": [{**LONG_BTC, "leg": "1"}]}, "positions[0].leg: expected an integer", id="leg-string"
        ),
        pytest.param(
            {"positions": [{**LONG_BTC, "leg": 1.5}]}, "positions[0].leg: expected an integer", id="leg-float"
        ),
        pytest.param(
            {"positions": [{**LONG_BTC, "leg": True}]}, "positions[0].leg: expected an integer", id="leg-bool"
        ),
        pytest.param(
            {"positions": [{**LONG_BTC, "category": 7}]},
            "positions[0].category: expected a non-empty string",
            id="category-not-a-string",
        ),
        pytest.param(
            {"open_orders": [ORDER, {k: v for k, v in ORDER.items() if k != "order_id"}]},
            "open_orders[1].order_id: missing",
            id="order-missing-order-id",
        ),
        pytest.param(
            {"open_orders": [{**ORDER, "side": "long"}]},
            "open_orders[0].side: 'long' is not one of the allowed values",
            id="order-side-not-buy-sell",
        ),
        pytest.param(
            {"open_orders": [{**ORDER, "status": "working"}]},
            "open_orders[0].status: 'working' is not one of the allowed values",
            id="order-unknown-status",
        ),
        pytest.param({"cash": {"balance": "100"}}, "cash.currency: missing", id="cash-missing-currency"),
        pytest.param({"cash": {"currency": "USD"}}, "cash.balance: missing", id="cash-missing-balance"),
        pytest.param({"cash": "100 USD"}, "cash: expected an object", id="cash-not-an-object"),
        pytest.param(
            {"fills": [{**FILL, "time": "2026-11-14T03:10:00"}]},
            "fills[0].time: '2026-11-14T03:10:00' has no time zone (use Z for UTC)",
            id="fill-naive-time",
        ),
        pytest.param(
            {"fills": [{**FILL, "time": "last tuesday"}]},
            "fills[0].time: 'last tuesday' is not an ISO 8601 time",
            id="fill-time-not-iso",
        ),
        pytest.param(
            {"fills": [{**FILL, "time": 1763089800}]},
            "fills[0].time: expected a non-empty string",
            id="fill-time-epoch-number",
        ),
        pytest.param(
            {"fills": [{k: v for k, v in FILL.items() if k != "fill_id"}]},
            "fills[0].fill_id: missing",
            id="fill-missing-fill-id",
        ),
        pytest.param(
            {"fills": [{**FILL, "kind": "funding"}]},
            "fills[0].kind: 'funding' is not one of the allowed values",
            id="fill-kind-funding",
        ),
        pytest.param(
            {"fills": [{**FILL, "qty": "-1"}]}, "fills[0].qty: must be positive, got '-1'", id="fill-qty-negative"
        ),
        pytest.param({"marks": [{"symbol": "BTCUSDT"}]}, "marks[0].price: missing", id="mark-missing-price"),
    ],
)
def test_a_malformed_state_fails_the_fetch_naming_the_file_and_the_field(
    write_state: WriteState, document: Any, problem: str
) -> None:
    path = write_state(document)

    assert refused(path) == f"sim state file {path}: {problem}"


def test_a_file_that_is_not_json_fails_the_fetch_naming_the_file(write_state: WriteState) -> None:
    path = write_state('{"positions": [')

    with pytest.raises(InvalidResponse) as caught:
        fetch(path)

    assert str(caught.value).startswith(f"sim state file {path}: not JSON: ")
    assert isinstance(caught.value.__cause__, json.JSONDecodeError)


def test_a_missing_state_file_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "gone.json"

    with pytest.raises(FixConfiguration) as caught:
        fetch(path)

    assert str(caught.value) == f"sim state file {path}: No such file or directory"
    assert isinstance(caught.value.__cause__, FileNotFoundError)


@pytest.mark.parametrize("path", sorted(EXAMPLE_VENUES.glob("*.json")), ids=lambda p: p.stem)
def test_every_example_venue_file_parses(path: Path) -> None:
    snapshot = fetch(path)

    assert snapshot.as_of == NOW
    assert snapshot.positions
    assert snapshot.cash is not None


def test_there_are_six_example_venue_files() -> None:
    assert len(list(EXAMPLE_VENUES.glob("*.json"))) == 6


def test_the_example_short_position_and_liquidation_are_read_as_such() -> None:
    (_, tsla) = fetch(EXAMPLE_VENUES / "shortseller_live.json").positions
    (liquidation,) = fetch(EXAMPLE_VENUES / "lxalgo_live.json").fills

    assert tsla == VenuePosition(InstrumentKey("us_equity", "TSLA"), Decimal(-240), Decimal(250), Decimal(247), "USD")
    assert liquidation.kind is FillKind.LIQUIDATION
    assert liquidation.time == datetime(2026, 11, 13, 22, 47, 5, tzinfo=UTC)


# --- once bugs, now guarded -----------------------------------------------------------


def test_a_file_that_is_not_utf8_fails_the_fetch_as_an_invalid_response(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"\xff\xfe" + json.dumps({"positions": []}).encode("utf-16-le"))

    with pytest.raises(InvalidResponse, match=str(path)):
        fetch(path)


def test_an_unknown_key_in_a_position_fails_the_fetch(write_state: WriteState) -> None:
    path = write_state({"positions": [{**LONG_BTC, "catgory": "linear"}]})

    assert "positions[0]" in refused(path)


@pytest.mark.parametrize("section", ["positions", "marks"])
def test_two_entries_for_one_instrument_fail_the_fetch_instead_of_hiding_one(
    write_state: WriteState, section: str
) -> None:
    entry = LONG_BTC if section == "positions" else {"symbol": "BTCUSDT", "price": "1"}
    path = write_state({section: [entry, dict(entry)]})

    assert f"{section}[1]: a second entry for default:BTCUSDT:0" in refused(path)


# --- the same value rules as a real venue's answers: operators rehearse incidents with this file ----------------


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        pytest.param({"positions": [{**LONG_BTC, "qty": "1e999999"}]},
                     "positions[0].qty: '1e999999' is out of range (must be below 1e20 in size)", id="qty-1e999999"),
        pytest.param({"positions": [{**LONG_BTC, "qty": "1e25"}]},
                     "positions[0].qty: '1e25' is out of range (must be below 1e20 in size)", id="qty-1e25"),
        pytest.param({"positions": [{**LONG_BTC, "qty": "1e-19"}]},
                     "positions[0].qty: '1e-19' is more than 18 decimal places", id="qty-19-places"),
        pytest.param('{"cash": {"currency": "USD", "balance": 1' + "0" * 5000 + "}}", "not JSON", id="5000-digits"),
        pytest.param('{"cash": {"currency": "USD", "balance": 1e999999999999999999}}',
                     "cash.balance: Decimal('1E+999999999999999999') is out of range", id="json-huge-exponent"),
        pytest.param({"positions": [{**LONG_BTC, "avg_price": "0"}]}, "positions[0].avg_price: must be positive",
                     id="avg-price-zero"),
        pytest.param({"positions": [{**LONG_BTC, "avg_price": "-50000"}]}, "positions[0].avg_price: must be positive",
                     id="avg-price-negative"),
        pytest.param({"positions": [{**LONG_BTC, "mark_price": "-1"}]},
                     "positions[0].mark_price: a price cannot be negative", id="mark-negative"),
        pytest.param({"marks": [{"symbol": "BTCUSDT", "price": "-1"}]}, "marks[0].price: a price cannot be negative",
                     id="marks-negative"),
        pytest.param({"fills": [{**FILL, "price": "-60000"}]}, "fills[0].price: must be positive", id="fill-price-neg"),
        pytest.param({"fills": [{**FILL, "price": "0"}]}, "fills[0].price: must be positive", id="fill-price-zero"),
        pytest.param({"open_orders": [{**ORDER, "price": "-5"}]}, "open_orders[0].price: a price cannot be negative",
                     id="order-price-negative"),
        pytest.param({"positions": [{**LONG_BTC, "symbol": "X" * 65}]},
                     f"positions[0].symbol: '{'X' * 65}' is longer than 64 characters", id="symbol-65"),
        pytest.param({"positions": [{**LONG_BTC, "category": "c" * 33}]}, "is longer than 32 characters",
                     id="category-33"),
        pytest.param({"cash": {"currency": "U" * 17, "balance": "1"}}, "cash.currency: 'UUUUUUUUUUUUUUUUU' is longer",
                     id="currency-17"),
        pytest.param({"fills": [{**FILL, "fill_id": "f" * 129}]}, "fills[0].fill_id: ", id="fill-id-129"),
        pytest.param({"open_orders": [{**ORDER, "client_order_id": "c" * 129}]}, "open_orders[0].client_order_id: ",
                     id="client-order-id-129"),
        pytest.param({"positions": [{**LONG_BTC, "symbol": "BTC\tUSDT"}]}, "contains control characters",
                     id="symbol-control-character"),
        pytest.param({"positions": [{**LONG_BTC, "leg": 2**31}]}, "positions[0].leg: 2147483648 is not between",
                     id="leg-beyond-int4"),
        pytest.param({"positions": [{**LONG_BTC, "leg": -1}]}, "positions[0].leg: -1 is not between",
                     id="leg-negative"),
        pytest.param({"fills": [{**FILL, "time": "0001-01-01T00:00:00+01:00"}]},
                     "fills[0].time: '0001-01-01T00:00:00+01:00' is a time outside any range", id="time-overflow"),
        pytest.param({"fills": [{**FILL, "time": "1999-12-31T23:59:59Z"}]},
                     "fills[0].time: '1999-12-31T23:59:59Z' is a time outside 2000..2100", id="time-1999"),
        pytest.param({"open_orders": [ORDER, {**ORDER, "symbol": "ETHUSDT"}]},
                     "open_orders[1]: a second entry for order id ord-1", id="order-id-twice"),
    ],
)  # fmt: skip
def test_a_state_the_books_could_not_hold_fails_the_fetch(write_state: WriteState, document: Any, problem: str) -> None:
    path = write_state(document)

    assert problem in refused(path)


def test_a_mark_of_zero_is_no_mark(write_state: WriteState) -> None:
    path = write_state({"positions": [{**LONG_BTC, "mark_price": 0}], "marks": [{"symbol": "ETHUSDT", "price": "0"}]})

    snapshot = fetch(path)

    assert snapshot.positions[0].mark_price is None
    assert snapshot.marks == {}


def test_a_short_at_the_edge_of_the_column_keeps_every_digit(write_state: WriteState) -> None:
    qty = "99999999999999999999.999999999999999999"
    path = write_state({"positions": [{**LONG_BTC, "side": "short", "qty": qty}]})

    assert fetch(path).positions[0].qty == Decimal(f"-{qty}")
