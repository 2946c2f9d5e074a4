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
    """One planned order's fate. A sent new order carries the venue's id and joins the books as pending; a
    sent cancel (``cancel`` true) changes nothing in the books."""

    order: Order
    sent: bool
    detail: str
    cancel: bool = False

    @property
    def planned_as(self) -> str | None:
        """The name the run's planned-order action gave this order."""
        return self.order.venue_order_id if self.cancel else self.order.client_order_id


def record_order_outcomes(
    session: Session, account_id: int, run_id: int, outcomes: Sequence[OrderOutcome], now: datetime
) -> None:
    """Mark the run's planned-order actions with their outcome and book the sent orders as pending."""
    by_name = {o.planned_as: o for o in outcomes}
    actions = session.scalars(select(Action).where(Action.run_id == run_id, Action.kind == "planned_order"))
    for action in actions:
        after = action.after or {}
        outcome = by_name.get(after.get("cancel") or after.get("client_order_id"))
        if outcome is None:
            continue
        action.applied = outcome.sent
        action.detail = f"{action.detail}: {outcome.detail}"
        action.after = {**after, "venue_order_id": outcome.order.venue_order_id}
    for outcome in outcomes:
        if outcome.sent and not outcome.cancel:
            ledger.record_order(session, account_id, outcome.order, now, Source.RECONCILIATION)
