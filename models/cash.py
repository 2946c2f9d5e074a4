"""The cash a bot expects its venue account to hold."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from models import books as tables
from reconciliation.values import (
    Cash,
)


def set_expected_cash(session: Session, account_id: int, cash: Cash, now: datetime) -> Cash | None:
    """Set the cash the books expect; returns what they expected before."""
    row = session.get(tables.ExpectedCash, account_id, with_for_update=True)
    if row is None:
        session.add(
            tables.ExpectedCash(account_id=account_id, currency=cash.currency, balance=cash.balance, updated_at=now)
        )
        return None
    before = Cash(row.currency, row.balance)
    row.currency, row.balance, row.updated_at = cash.currency, cash.balance, now
    return before
