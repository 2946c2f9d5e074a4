"""A venue account shared by several bots: what the other bots' books hold, read in the run's transaction, and the
transaction lock that makes runs on one shared venue account take turns in Postgres (the Redis lock only saves
work)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import books as tables
from models.accounts import existing_account_id
from models.lots import load_open_lots
from models.orders import live_orders
from models.reading import known_fill_ids
from reconciliation.sharing import SharedAccount
from reconciliation.values import ZERO, Cash, InstrumentKey, exact


def lock_venue_account(session: Session, venue_account: str) -> None:
    """Hold the shared venue account until the transaction ends (Postgres); SQLite has one writer at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"recon:venue:{venue_account}", 0))))


@exact
def read_shared_account(
    session: Session,
    venue_account: str,
    own: tuple[str, str],
    others: Sequence[tuple[str, str]],
    venue_fill_ids: Iterable[str] = (),
) -> SharedAccount:
    """What the books of ``others`` (bot, account) hold, as ``own``'s run of ``venue_account`` needs it."""
    wanted = list(venue_fill_ids)
    positions: dict[InstrumentKey, dict[str, Decimal]] = defaultdict(dict)
    order_names: set[str] = set()
    fill_ids: set[str] = set()
    cash: Cash | None = None
    for bot, account in others:
        account_id = existing_account_id(session, bot, account)
        if account_id is None:
            continue  # no books yet: it holds nothing
        label = f"{bot}/{account}"
        for key, lots in load_open_lots(session, account_id).by_key.items():
            qty = sum((lot.signed_remaining for lot in lots), ZERO)
            if qty != ZERO:
                positions[key][label] = qty
        for order in live_orders(session, account_id):
            order_names.update(name for name in (order.client_order_id, order.venue_order_id) if name)
        fill_ids |= known_fill_ids(session, account_id, wanted)
        expected = session.get(tables.ExpectedCash, account_id)
        if expected is not None and (cash is None or cash.currency == expected.currency):
            cash = Cash(expected.currency, (cash.balance if cash else ZERO) + expected.balance)
    return SharedAccount(
        venue_account=venue_account,
        own=f"{own[0]}/{own[1]}",
        others=tuple(f"{bot}/{account}" for bot, account in others),
        positions=dict(positions),
        order_names=frozenset(order_names),
        fill_ids=frozenset(fill_ids),
        expected_cash=cash,
    )


def fill_ids_held_by(session: Session, accounts: Sequence[tuple[str, str]], fill_ids: Iterable[str]) -> frozenset[str]:
    """Which of ``fill_ids`` the books of ``accounts`` (bot, account) hold."""
    wanted = list(fill_ids)
    held: set[str] = set()
    for bot, account in accounts:
        account_id = existing_account_id(session, bot, account)
        if account_id is not None:
            held |= known_fill_ids(session, account_id, wanted)
    return frozenset(held)
