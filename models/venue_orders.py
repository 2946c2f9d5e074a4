"""What became of the orders a ``sync_to_local`` run planned: sent, refused by a guard, or failed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import ledger
from models.runs import Action
from reconciliation.values import Order, Source


@dataclass(frozen=True)
class OrderOutcome:
    """One planned order's fate. ``sent`` orders carry the venue's id and join the books as pending."""

    order: Order
    sent: bool
    detail: str


def record_order_outcomes(
    session: Session, account_id: int, run_id: int, outcomes: Sequence[OrderOutcome], now: datetime
) -> None:
    """Mark the run's planned-order actions with their outcome and book the sent orders as pending."""
    by_client_id = {o.order.client_order_id: o for o in outcomes}
    actions = session.scalars(select(Action).where(Action.run_id == run_id, Action.kind == "planned_order"))
    for action in actions:
        outcome = by_client_id.get((action.after or {}).get("client_order_id"))
        if outcome is None:
            continue
        action.applied = outcome.sent
        action.detail = f"{action.detail}: {outcome.detail}"
        action.after = {**(action.after or {}), "venue_order_id": outcome.order.venue_order_id}
    for outcome in outcomes:
        if outcome.sent:
            ledger.record_order(session, account_id, outcome.order, now, Source.RECONCILIATION)
