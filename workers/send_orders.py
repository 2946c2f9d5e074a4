"""``sync_to_local``'s orders leave the run: sent after it committed, by run id, safe to repeat.

A run records the orders and cancels its plan calls for, each screened by the guards, as ``planned_order``
actions with a deterministic client order id (``to_send``, or ``refused`` with the reason). Then, holding the
account's lock (``recon.send_orders`` on the workers; the same function in-process):

    dropped   all of them, when the run is no longer the account's latest real run, ended longer ago than
              ``RECON_ORDER_MAX_AGE_SECONDS``, or the account is halted now: an order planned on a stale
              snapshot is worse than none, and the next run plans again from what the venue shows then
    sent      each one the venue took; a new order joins the books as pending, so the next run follows it
    sent      also when the venue says it already has that client order id: an earlier attempt got through
    failed    any other venue error; the next run decides again

Each answer is recorded in its own transaction as soon as it is known, so a repeat sends only what is left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from models.database import Database
from models.orders import DROPPED, FAILED, SENT, PlannedOrder, orders_to_send, record_sending, sending_context
from reconciliation.effects import CancelOrder, PlaceOrder
from reconciliation.errors import DuplicateClientOrderId, ReconError
from venues.base import Venue
from workers.connect import open_venue
from workers.counters import VenueCounter, counted
from workers.fleet import AccountConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendReport:
    """How many planned orders were sent, failed or dropped (and why they were dropped)."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0
    why_dropped: str | None = None


def send_planned_orders(
    database: Database,
    config: AccountConfig,
    run_id: int,
    *,
    now: datetime,
    max_age_seconds: int,
    venue: Venue | None = None,
    count: VenueCounter | None = None,
) -> SendReport:
    """Send what run ``run_id`` planned and has not sent yet, unless it is too late to (see the module)."""
    with database.reading() as session:
        context = sending_context(session, run_id)
        planned = orders_to_send(session, run_id)
    if not planned:
        return SendReport()
    too_late = _too_late(context.latest, context.halted, context.finished_at, now, max_age_seconds)
    if too_late is not None:
        for order in planned:
            _record(database, context.account_id, order, DROPPED, f"dropped: {too_late}", None, now)
        log.warning("orders of run %s dropped: %s", run_id, too_late,
                    extra={"bot": config.bot, "account": config.account, "run_id": run_id})  # fmt: skip
        return SendReport(dropped=len(planned), why_dropped=too_late)
    venue = counted(venue or open_venue(config), config.venue, count)
    sent = failed = 0
    for order in planned:
        state, outcome, venue_id = _send(venue, order)
        _record(database, context.account_id, order, state, outcome, venue_id, now)
        sent, failed = sent + (state == SENT), failed + (state == FAILED)
    return SendReport(sent=sent, failed=failed)


def _too_late(latest: bool, halted: bool, finished_at: datetime | None, now: datetime, max_age: int) -> str | None:
    if halted:
        return "the account is halted"
    if not latest:
        return "a newer run of the account decides"
    if finished_at is None or (now - finished_at).total_seconds() > max_age:
        return f"the run ended more than {max_age} s ago (RECON_ORDER_MAX_AGE_SECONDS)"
    return None


def _send(venue: Venue, planned: PlannedOrder) -> tuple[str, str, str | None]:
    """The state, the outcome in words and the venue's order id of sending one planned order."""
    effect = planned.effect
    try:
        if isinstance(effect, CancelOrder):
            venue.cancel_order(effect.order)
            return SENT, "cancelled", effect.order.venue_order_id
        assert isinstance(effect, PlaceOrder)
        venue_id = venue.place_order(effect.key, effect.side, effect.qty, effect.reduce_only, effect.client_order_id)
    except DuplicateClientOrderId:
        return SENT, "already sent by an earlier attempt (the venue knows its client id)", None
    except ReconError as error:
        return FAILED, f"failed: {error}", None
    return SENT, f"sent as {venue_id}", venue_id


def _record(
    database: Database,
    account_id: int,
    order: PlannedOrder,
    state: str,
    outcome: str,
    venue_id: str | None,
    now: datetime,
) -> None:
    with database.transaction() as session:
        record_sending(session, account_id, order, state=state, outcome=outcome, venue_order_id=venue_id, now=now)
