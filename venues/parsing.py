"""Reading venue JSON at the edge: every missing or malformed field is an ``InvalidResponse`` naming it.

What passes is what the books can hold: numbers are finite and fit NUMERIC(38, 18), names and ids fit their
columns (``reconciliation.limits``), times lie between 2000 and 2100, and JSON types are the expected ones.
The value rules are also offered without the ``InvalidResponse`` wrapping (``amount``, ``moment_problem``) for
readers with their own error type, such as the sim venue's state file.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from reconciliation.errors import InvalidResponse
from reconciliation.limits import amount_problem, text_problem
from reconciliation.values import ZERO, parse_decimal

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SHOWN = 80  # characters of a refused value repeated in an error message
_MILLIS = re.compile(r"[0-9]{1,16}")


def shown(value: Any) -> str:
    """``repr(value)``, cut short: a refused value is named, never copied whole into an error."""
    text = repr(value)
    return text if len(text) <= SHOWN else f"{text[:SHOWN]}…"


def field(item: Any, name: str, where: str) -> Any:
    """``item[name]``; a missing field or a non-object item is an invalid response naming ``where.name``."""
    if not isinstance(item, dict):
        raise InvalidResponse(f"{where}: expected an object, got {type(item).__name__}")
    if name not in item or item[name] is None:
        raise InvalidResponse(f"{where}.{name}: missing")
    return item[name]


def text(item: Any, name: str, where: str, limit: int | None = None) -> str:
    """A string field; with ``limit``, also non-empty, at most ``limit`` characters and free of control characters."""
    value = field(item, name, where)
    if not isinstance(value, str):
        raise InvalidResponse(f"{where}.{name}: expected a string, got {type(value).__name__}")
    problem = text_problem(value, limit) if limit is not None else None
    if problem is not None:
        raise InvalidResponse(f"{where}.{name}: {shown(value)} is {problem}")
    return value


def optional_text(item: Any, name: str, where: str, limit: int) -> str | None:
    """A string field that may be absent, null or empty (None); otherwise as ``text`` with ``limit``."""
    if not isinstance(item, dict) or item.get(name) in (None, ""):
        return None
    return text(item, name, where, limit)


def amount(value: Any) -> Decimal:
    """An exact decimal the books can store (finite, below 1e20 in size, at most 18 places); raises ValueError.

    Zero comes back as plain ``0`` whatever its exponent: ``0E-9999999999`` is zero, and Postgres cannot store it.
    """
    try:
        number = parse_decimal(value)
    except ArithmeticError:  # an exponent beyond what Decimal can hold
        raise ValueError(f"{shown(value)} is out of range") from None
    if number.is_zero():
        return ZERO
    problem = amount_problem(number)
    if problem is not None:
        raise ValueError(f"{shown(value)} is {problem}")
    return number


def decimal(item: Any, name: str, where: str) -> Decimal:
    """A decimal field (venues send numbers as strings) that the books can store."""
    value = field(item, name, where)
    try:
        return amount(value)
    except ValueError as error:
        raise InvalidResponse(f"{where}.{name}: {error}") from None


def optional_decimal(item: Any, name: str, where: str) -> Decimal | None:
    """A decimal field that may be absent or empty."""
    if not isinstance(item, dict) or item.get(name) in (None, ""):
        return None
    return decimal(item, name, where)


def positive(item: Any, name: str, where: str) -> Decimal:
    """A decimal field that must be above zero (a quantity or a price that is not a sign)."""
    number = decimal(item, name, where)
    if number <= ZERO:
        raise InvalidResponse(f"{where}.{name}: must be positive, got {shown(item[name])}")
    return number


def non_negative(item: Any, name: str, where: str) -> Decimal:
    """A decimal field that may be zero but not below."""
    number = decimal(item, name, where)
    if number < ZERO:
        raise InvalidResponse(f"{where}.{name}: must not be negative, got {shown(item[name])}")
    return number


def signed(number: Decimal, sign: int) -> Decimal:
    """``number`` with ``sign`` (+1 or -1), exactly: ``number * -1`` rounds to the context's 28 digits."""
    return number if sign > 0 else number.copy_negate()


def optional_price(item: Any, name: str, where: str) -> Decimal | None:
    """A price that may be missing: absent, empty or zero is no price (None); a negative one is refused."""
    number = optional_decimal(item, name, where)
    if number is None or number == ZERO:
        return None
    if number < ZERO:
        raise InvalidResponse(f"{where}.{name}: a price cannot be negative, got {shown(item[name])}")
    return number


def moment_problem(moment: datetime) -> str | None:
    """Why ``moment`` is not a time a venue could report (outside 2000..2100), or None."""
    if not EARLIEST <= moment < LATEST:
        return f"outside {EARLIEST.year}..{LATEST.year}"
    return None


def millis(item: Any, name: str, where: str) -> datetime:
    """A time given as milliseconds since the epoch (an integer, or a string of digits), as aware UTC."""
    value = field(item, name, where)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidResponse(f"{where}.{name}: {shown(value)} is not a time in milliseconds")
    if isinstance(value, str) and not _MILLIS.fullmatch(value):
        raise InvalidResponse(f"{where}.{name}: {shown(value)} is not a time in milliseconds")
    count = int(value)
    if not _ms(EARLIEST) <= count < _ms(LATEST):
        raise InvalidResponse(f"{where}.{name}: {shown(value)} is a time outside {EARLIEST.year}..{LATEST.year}")
    return EPOCH + timedelta(milliseconds=count)


def _ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def iso_time(item: Any, name: str, where: str) -> datetime:
    """An ISO 8601 time field, as aware UTC (a time without offset is taken as UTC)."""
    value = text(item, name, where)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except ValueError:
        raise InvalidResponse(f"{where}.{name}: {shown(value)} is not an ISO 8601 time") from None
    except OverflowError:  # 0001-01-01T00:00:00+01:00 has no UTC equivalent
        raise InvalidResponse(f"{where}.{name}: {shown(value)} is a time outside any range") from None
    problem = moment_problem(moment)
    if problem is not None:
        raise InvalidResponse(f"{where}.{name}: {shown(value)} is a time {problem}")
    return moment


def items(document: Any, where: str) -> list[Any]:
    """A list, or an invalid response naming ``where``."""
    if not isinstance(document, list):
        raise InvalidResponse(f"{where}: expected a list, got {type(document).__name__}")
    return document


def refuse_duplicates(keys: Iterable[Hashable], where: str, what: str) -> None:
    """Refuse a listing that names one ``what`` twice: which of two rows is true cannot be known."""
    seen: set[Hashable] = set()
    for key in keys:
        if key in seen:
            raise InvalidResponse(f"{where}: a second row for {what} {key}")
        seen.add(key)
