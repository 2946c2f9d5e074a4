"""What the books client accepts from bots: exact decimals that fit the books, times with a zone in a sane range,
names by the one naming rule and texts that fit their columns; anything else is refused before the database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from models.books import Account
from models.database import Database
from reconciliation.errors import FixConfiguration
from tests.conftest import books_for
from workers.books import BooksClient, to_decimal, to_time

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def fixed_clock() -> datetime:
    """A clock stopped at NOW."""
    return NOW


# --- to_decimal --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("0.1", "0.1", id="str"),
        pytest.param("50000.10", "50000.10", id="str-trailing-zero-kept"),
        pytest.param(3, "3", id="int"),
        pytest.param(Decimal("0.300000000000000001"), "0.300000000000000001", id="decimal-18-places"),
        pytest.param("12345678901234567890.123456789", "12345678901234567890.123456789", id="long-str"),
        pytest.param("0", "0", id="zero"),
    ],
)
def test_to_decimal_accepts_str_int_and_decimal_exactly(value: Any, expected: str) -> None:
    number = to_decimal(value, "price")

    assert isinstance(number, Decimal)
    assert str(number) == expected


@pytest.mark.parametrize("value", [0.1, 50000.0, float("nan")], ids=["0.1", "whole", "nan"])
def test_to_decimal_refuses_a_float_naming_the_field(value: float) -> None:
    with pytest.raises(FixConfiguration) as caught:
        to_decimal(value, "qty")  # type: ignore[arg-type]

    message = str(caught.value)
    assert message.startswith("qty: ")
    assert "not float" in message


def test_to_decimal_refuses_a_bool_naming_the_field() -> None:
    with pytest.raises(FixConfiguration, match=r"^fee: pass a string or Decimal, not bool \(True\)$"):
        to_decimal(True, "fee")


@pytest.mark.parametrize("value", ["abc", "", "1,5", "0x10", " 2 ", "1_000"], ids=repr)
def test_to_decimal_refuses_malformed_numbers_naming_the_field_and_value(value: Any) -> None:
    with pytest.raises(FixConfiguration) as caught:
        to_decimal(value, "price")

    assert str(caught.value) == f"price: {value!r} is not a decimal number"


@pytest.mark.parametrize(("value", "type_name"), [(None, "NoneType"), ([1], "list")], ids=repr)
def test_to_decimal_refuses_values_that_are_not_numbers_naming_the_type(value: Any, type_name: str) -> None:
    with pytest.raises(FixConfiguration) as caught:
        to_decimal(value, "price")

    assert str(caught.value) == f"price: expected a decimal number, got {type_name}"


@pytest.mark.parametrize("value", ["NaN", "sNaN", "Infinity", "-Infinity", "inf", Decimal("NaN")], ids=str)
def test_to_decimal_refuses_nan_and_infinity(value: Any) -> None:
    with pytest.raises(FixConfiguration) as caught:
        to_decimal(value, "price", signed=True)

    assert str(caught.value) == f"price: {value!r} is not a finite number"


@pytest.mark.parametrize("value", ["0", "-0", "-0.5", -1])
def test_to_decimal_positive_refuses_zero_and_negative(value: Any) -> None:
    with pytest.raises(FixConfiguration, match=r"^qty: must be positive, got "):
        to_decimal(value, "qty", positive=True)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param("1e25", "out of range (must be below 1e20 in size)", id="1e25"),
        pytest.param("-100000000000000000000", "out of range (must be below 1e20 in size)", id="-1e20"),
        pytest.param("1e999999", "out of range (must be below 1e20 in size)", id="1e999999"),
        pytest.param("1e999999999999999999", "out of range (must be below 1e20 in size)", id="exponent-beyond-context"),
        pytest.param("0.0000000000000000001", "more than 18 decimal places", id="19-places"),
        pytest.param("1e-999999999999999999", "more than 18 decimal places", id="underflow"),
        pytest.param("1234567890.1234567890123456789", "more than 18 decimal places", id="29-digits-19-places"),
    ],
)
def test_to_decimal_refuses_amounts_that_do_not_fit_numeric_38_18(value: str, problem: str) -> None:
    with pytest.raises(FixConfiguration) as caught:
        to_decimal(value, "qty", signed=True)

    assert str(caught.value) == f"qty: {value!r} is {problem}"


@pytest.mark.parametrize(
    "value", ["99999999999999999999", "0.000000000000000001", "1.500000000000000000000000", "0E-50"]
)
def test_to_decimal_accepts_the_edges_of_numeric_38_18(value: str) -> None:
    assert to_decimal(value, "qty", signed=True) == Decimal(value)


def test_to_decimal_shows_a_huge_value_shortened() -> None:
    with pytest.raises(FixConfiguration) as caught:
        to_decimal("x" * 100_000, "price")

    assert (
        str(caught.value)
        == "price: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx… (100002 characters) is not a decimal number"
    )


def test_to_decimal_positive_accepts_the_smallest_positive_amount() -> None:
    assert to_decimal("0.00000001", "qty", positive=True) == Decimal("0.00000001")


def test_to_decimal_by_default_refuses_negative_but_accepts_zero() -> None:
    assert to_decimal("0", "price") == 0
    with pytest.raises(FixConfiguration, match=r"^price: must not be negative, got -0.01$"):
        to_decimal("-0.01", "price")


def test_to_decimal_signed_accepts_negative_values_exactly() -> None:
    assert str(to_decimal("-0.01", "fee", signed=True)) == "-0.01"
    assert to_decimal(-250, "balance", signed=True) == Decimal(-250)


# --- to_time -----------------------------------------------------------------------------------------------------


def test_to_time_accepts_z_as_utc() -> None:
    moment = to_time("2026-11-14T03:10:00Z", fixed_clock)

    assert moment == datetime(2026, 11, 14, 3, 10, tzinfo=UTC)
    assert moment.tzinfo is UTC


def test_to_time_converts_an_offset_to_utc() -> None:
    assert to_time("2026-11-14T05:10:00.5+02:00", fixed_clock) == datetime(2026, 11, 14, 3, 10, 0, 500000, tzinfo=UTC)


def test_to_time_converts_an_aware_datetime_to_utc() -> None:
    new_york = timezone(timedelta(hours=-5))

    moment = to_time(datetime(2026, 11, 13, 22, 10, tzinfo=new_york), fixed_clock)

    assert moment == datetime(2026, 11, 14, 3, 10, tzinfo=UTC)
    assert moment.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [pytest.param("2026-11-14T03:10:00", id="naive-text"), pytest.param(datetime(2026, 11, 14, 3, 10), id="naive")],
)
def test_to_time_requires_a_zone(value: str | datetime) -> None:
    with pytest.raises(FixConfiguration, match=r"^time: must carry a time zone \(use Z or \+00:00 for UTC\)$"):
        to_time(value, fixed_clock)


def test_to_time_refuses_text_that_is_not_iso_8601() -> None:
    with pytest.raises(FixConfiguration, match=r"^time: 'yesterday' is not an ISO 8601 time$"):
        to_time("yesterday", fixed_clock)


def test_to_time_without_a_value_is_the_clock_now() -> None:
    assert to_time(None, fixed_clock) == NOW


def test_to_time_accepts_a_lowercase_z_and_refuses_a_number() -> None:
    def never() -> datetime:
        raise AssertionError("the clock must not be read")

    assert to_time("2026-11-20T12:00:00z", never) == datetime(2026, 11, 20, 12, tzinfo=UTC)
    with pytest.raises(FixConfiguration, match="got int"):
        to_time(1763640000, never)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("1969-12-31T23:59:59Z", id="before-1970"),
        pytest.param("0001-01-01T00:00:00+00:00", id="year-1"),
        pytest.param("0001-01-01T00:00:00+01:00", id="year-1-with-offset"),
        pytest.param("2100-01-01T00:00:00Z", id="2100"),
        pytest.param("9999-12-31T23:59:59+14:00", id="year-9999"),
        pytest.param("9999-12-31T23:59:59-14:00", id="year-9999-beyond-utc"),
    ],
)
def test_to_time_refuses_times_outside_1970_to_2100(value: str) -> None:
    with pytest.raises(FixConfiguration, match=r"^time: .* is outside 1970-01-01 to 2100-01-01$"):
        to_time(value, fixed_clock)


def test_to_time_shows_huge_text_shortened() -> None:
    with pytest.raises(FixConfiguration, match=r"^time: 'yyy.*… \(1002 characters\) is not an ISO 8601 time$"):
        to_time("y" * 1000, fixed_clock)


# --- BooksClient ---------------------------------------------------------------------------------------------------

FILL: dict[str, Any] = {"symbol": "BTCUSDT", "side": "buy", "qty": "1", "price": "100", "fill_id": "f1"}
ORDER: dict[str, Any] = {"client_order_id": "c1", "symbol": "BTCUSDT", "side": "buy", "qty": "1"}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda b: b.record_fill("evil'); DROP TABLE runs;--", "paper", **FILL),
            'invalid bot name "evil\'); DROP TABLE runs;--"',
            id="bot-sql",
        ),
        pytest.param(lambda b: b.record_fill("lxalgo", "", **FILL), "invalid account name ''", id="account-empty"),
        pytest.param(
            lambda b: b.record_fill("lxalgo", "paper", **{**FILL, "symbol": "S" * 65}),
            "symbol: 'SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS… (67 characters) is longer than 64 characters",
            id="symbol-65",
        ),
        pytest.param(
            lambda b: b.record_fill("lxalgo", "paper", **{**FILL, "symbol": ""}),
            "symbol: '' is empty",
            id="symbol-empty",
        ),
        pytest.param(
            lambda b: b.record_fill("lxalgo", "paper", **{**FILL, "fill_id": "i" * 200}),
            "fill_id: 'iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii… (202 characters) is longer than 128 characters",
            id="fill-id-200",
        ),
        pytest.param(
            lambda b: b.record_fill("lxalgo", "paper", **FILL, category="c" * 33),
            "category: 'ccccccccccccccccccccccccccccccccc' is longer than 32 characters",
            id="category-33",
        ),
        pytest.param(
            lambda b: b.record_fill("lxalgo", "paper", **FILL, group="g" * 65), "is longer than 64", id="group-65"
        ),
        pytest.param(
            lambda b: b.record_fill("lxalgo", "paper", **FILL, order_id="o\nx"),
            "order_id: 'o\\nx' contains control characters",
            id="order-id-newline",
        ),
        pytest.param(
            lambda b: b.record_fill("lxalgo", "paper", **{**FILL, "qty": "1e25"}),
            "qty: '1e25' is out of range",
            id="qty-1e25",
        ),
        pytest.param(
            lambda b: b.record_fill("lxalgo", "paper", **FILL, leg=2**31), "leg: must be a whole number", id="leg-huge"
        ),
        pytest.param(
            lambda b: b.record_fill("lxalgo", "paper", **FILL, time="0001-01-01T00:00:00Z"),
            "time: 0001-01-01T00:00:00+00:00 is outside",
            id="time-year-1",
        ),
        pytest.param(
            lambda b: b.record_order("lxalgo", "paper", **{**ORDER, "client_order_id": "c" * 129}),
            "client_order_id: ",
            id="client-order-id-129",
        ),
        pytest.param(
            lambda b: b.record_order("lxalgo", "paper", **ORDER, venue_order_id=""),
            "venue_order_id: '' is empty",
            id="venue-order-id-empty",
        ),
        pytest.param(
            lambda b: b.set_expected_cash("lxalgo", "paper", "1", "C" * 40),
            "currency: 'CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC… (42 characters) is longer than 16 characters",
            id="currency-40",
        ),
        pytest.param(
            lambda b: b.set_expected_cash("lxalgo", "paper", "0.0000000000000000001"),
            "balance: '0.0000000000000000001' is more than 18 decimal places",
            id="balance-19-places",
        ),
        pytest.param(lambda b: b.positions("LXAlgo", "paper"), "invalid bot name 'LXAlgo'", id="positions-upper"),
        pytest.param(lambda b: b.is_halted("lxalgo", "a" * 65), "invalid account name", id="is-halted-long"),
        pytest.param(lambda b: b.breaks("", "paper"), "invalid bot name ''", id="breaks-empty"),
    ],
)
def test_books_client_refuses_what_the_books_cannot_hold_and_writes_nothing(
    database: Database, call: Callable[[BooksClient], object], message: str
) -> None:
    books = books_for(database, fixed_clock)

    with pytest.raises(FixConfiguration) as caught:
        call(books)

    assert message in str(caught.value) and "\n" not in str(caught.value)
    with database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Account)) == 0
