"""What the books client accepts from bots: exact decimals only (no floats), and times that carry a zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from reconciliation.errors import FixConfiguration
from workers.books import to_decimal, to_time

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
        pytest.param(Decimal("0.30000000000000000001"), "0.30000000000000000001", id="decimal"),
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
