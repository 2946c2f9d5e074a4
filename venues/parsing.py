"""Reading venue JSON at the edge: every missing or malformed field is an ``InvalidResponse`` naming it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from reconciliation.errors import InvalidResponse
from reconciliation.values import parse_decimal


def field(item: Any, name: str, where: str) -> Any:
    """``item[name]``; a missing field or a non-object item is an invalid response naming ``where.name``."""
    if not isinstance(item, dict):
        raise InvalidResponse(f"{where}: expected an object, got {type(item).__name__}")
    if name not in item or item[name] is None:
        raise InvalidResponse(f"{where}.{name}: missing")
    return item[name]


def text(item: Any, name: str, where: str) -> str:
    """A string field."""
    value = field(item, name, where)
    if not isinstance(value, str):
        raise InvalidResponse(f"{where}.{name}: expected a string, got {type(value).__name__}")
    return value


def decimal(item: Any, name: str, where: str) -> Decimal:
    """A decimal field (venues send numbers as strings)."""
    value = field(item, name, where)
    try:
        return parse_decimal(value)
    except ValueError as error:
        raise InvalidResponse(f"{where}.{name}: {error}") from None


def optional_decimal(item: Any, name: str, where: str) -> Decimal | None:
    """A decimal field that may be absent or empty."""
    if not isinstance(item, dict) or item.get(name) in (None, ""):
        return None
    return decimal(item, name, where)


def millis(item: Any, name: str, where: str) -> datetime:
    """A time given as milliseconds since the epoch (number or string), as aware UTC."""
    value = field(item, name, where)
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError):
        raise InvalidResponse(f"{where}.{name}: {value!r} is not a time in milliseconds") from None


def iso_time(item: Any, name: str, where: str) -> datetime:
    """An ISO 8601 time field, as aware UTC."""
    value = text(item, name, where)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidResponse(f"{where}.{name}: {value!r} is not an ISO 8601 time") from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def items(document: Any, where: str) -> list[Any]:
    """A list, or an invalid response naming ``where``."""
    if not isinstance(document, list):
        raise InvalidResponse(f"{where}: expected a list, got {type(document).__name__}")
    return document
