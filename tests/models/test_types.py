"""Money stays exact to the last decimal and time stays UTC on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from models import ExpectedCash
from models.accounts import get_or_create_account
from models.database import Database

EXACT_AMOUNTS = [
    "0.000000000000000001",
    "12345678901234567890.123456789012345678",
    "-0.1",
    "0.1",
    "100",
]


@pytest.mark.parametrize("amount", EXACT_AMOUNTS)
def test_amounts_come_back_exactly_as_written(database: Database, amount: str) -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    with database.sessions.begin() as session:
        account_id = get_or_create_account(session, "bot", "paper", now).id
        session.add(ExpectedCash(account_id=account_id, currency="USD", balance=Decimal(amount), updated_at=now))

    with database.sessions() as session:
        stored = session.scalars(select(ExpectedCash.balance)).one()

    assert stored == Decimal(amount)


def test_times_are_stored_in_utc_and_come_back_aware(database: Database) -> None:
    tokyo = timezone(timedelta(hours=9))
    written = datetime(2026, 11, 20, 21, 0, tzinfo=tokyo)
    with database.sessions.begin() as session:
        get_or_create_account(session, "bot", "paper", written)

    with database.sessions() as session:
        account = get_or_create_account(session, "bot", "paper", written)

    assert account.created_at == written
    assert account.created_at.utcoffset() == timedelta(0)


def test_a_naive_time_is_refused_rather_than_guessed(database: Database) -> None:
    with pytest.raises(Exception, match="naive datetime"), database.sessions.begin() as session:
        get_or_create_account(session, "bot", "paper", datetime(2026, 11, 20, 12, 0))


def test_a_float_amount_is_refused(database: Database) -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    with pytest.raises(Exception, match="must be Decimal"), database.sessions.begin() as session:
        account_id = get_or_create_account(session, "bot", "paper", now).id
        session.add(ExpectedCash(account_id=account_id, currency="USD", balance=0.1, updated_at=now))  # type: ignore[arg-type]
        session.flush()
