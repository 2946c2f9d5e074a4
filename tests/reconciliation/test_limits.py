"""What the books can hold is decided exactly, from the digits, for any decimal a venue or a person sends."""

from __future__ import annotations

from decimal import Decimal

import pytest

from reconciliation.limits import amount_problem, text_problem


@pytest.mark.parametrize(
    "text",
    ["0", "0.000", "-5.5", "1e-18", "12.3400", "1.000000000000000000000000", "1E+19",
     "99999999999999999999.999999999999999999", "-99999999999999999999.999999999999999999"],
)  # fmt: skip
def test_amounts_that_fit_numeric_38_18_are_taken(text: str) -> None:
    assert amount_problem(Decimal(text)) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("1e20", "out of range"),
        ("100000000000000000000", "out of range"),
        ("1e25", "out of range"),
        ("1e999999999999999999", "out of range"),
        ("1e-19", "more than 18 decimal places"),
        ("1e-999999999999999999", "more than 18 decimal places"),
        ("1234567890.1234567890123456789", "more than 18 decimal places"),
        ("0E-50", "more than 18 decimal places"),
        ("0E+30", "out of range"),
        ("1.0000000000000000000000000001", "more than 18 decimal places"),
        ("NaN", "not a finite number"),
        ("-Infinity", "not a finite number"),
    ],
)
def test_amounts_the_books_cannot_hold_exactly_are_named(text: str, problem: str) -> None:
    assert problem in str(amount_problem(Decimal(text)))


def test_names_and_ids_must_fit_their_column_and_hold_no_control_characters() -> None:
    assert text_problem("BTCUSDT", 64) is None
    assert text_problem("", 64) == "empty"
    assert text_problem("X" * 65, 64) == "longer than 64 characters"
    assert text_problem("BTC\nUSDT", 64) == "contains control characters"
