"""What the books can hold, so that anything read at an edge is refused there rather than by the database.

Amounts are stored as NUMERIC(38, 18): at most 20 digits before the point and 18 after. Names and ids have
the column lengths below. An adapter or an input parser checks values against these before they go further.
"""

from __future__ import annotations

import re
from decimal import Decimal

MAX_SYMBOL = 64
MAX_CATEGORY = 32
MAX_ID = 128
MAX_CURRENCY = 16
MAX_GROUP = 64
AMOUNT_PLACES = 18
INTEGER_DIGITS = 20
AMOUNT_LIMIT = Decimal(10) ** INTEGER_DIGITS
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def amount_problem(value: Decimal) -> str | None:
    """Why ``value`` cannot be stored exactly as an amount, or None when it can.

    Decided from the digits alone, never through a decimal context (which would round a 38-digit value or
    overflow on a huge exponent). A zero counts too: Postgres refuses ``0E-9999999999``.
    """
    if not value.is_finite():
        return "not a finite number"
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if value.adjusted() >= INTEGER_DIGITS:
        return "out of range (must be below 1e20 in size)"
    if exponent >= -AMOUNT_PLACES:  # the usual case, decided without looking at the digits
        return None
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    if -(exponent + trailing_zeros) > AMOUNT_PLACES:
        return f"more than {AMOUNT_PLACES} decimal places"
    return None


def text_problem(value: str, limit: int) -> str | None:
    """Why ``value`` cannot be stored as a name or id of at most ``limit`` characters, or None."""
    if not value:
        return "empty"
    if len(value) > limit:
        return f"longer than {limit} characters"
    if _CONTROL.search(value):
        return "contains control characters"
    return None
