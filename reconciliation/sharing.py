"""One venue account traded by several bots: each bot's share of what the venue reports, and whose a difference is.

The venue reports the whole account. A run of one bot compares its own books with its share of the venue:

    share = venue − the other bots' books        (positions per instrument; their orders and fills left out)

so the sum of all the bots' books is what is compared with the venue. A difference on an instrument is the
bot's own when its books are the only ones that hold it; it belongs to another bot when only that bot's books
hold it (that bot's own run decides it); it is unattributed when none or several of the bots hold it. An
unattributed difference is reported and never acted on: following the venue or sending orders for it could
book one bot's trade into another's books. Cash is compared as the venue's less what the other bots' books
expect; a cash difference cannot be told apart by bot, so it is always unattributed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum

from reconciliation.values import ZERO, Cash, InstrumentKey, Snapshot, VenuePosition, exact, order_name


@dataclass(frozen=True)
class SharedAccount:
    """A shared venue account as one bot's run sees it: its own name (``bot/account``), the other bots', and what
    their books hold.

    ``positions``: per instrument, each other bot's signed open quantity (``bot/account`` → quantity, flat left
    out). ``order_names``: client and venue order ids of their live orders. ``fill_ids``: which of the venue's
    fills their books hold. ``expected_cash``: the sum of the cash their books expect, when any do.
    """

    venue_account: str
    own: str
    others: tuple[str, ...]
    positions: Mapping[InstrumentKey, Mapping[str, Decimal]] = field(default_factory=dict)
    order_names: frozenset[str] = frozenset()
    fill_ids: frozenset[str] = frozenset()
    expected_cash: Cash | None = None


class Owner(StrEnum):
    """Whose a difference on one instrument is, in a shared venue account."""

    OWN = "own"
    OTHER = "other"
    UNATTRIBUTED = "unattributed"


@dataclass(frozen=True)
class Attribution:
    """Whose a difference is, and in words why (``holders``: the bots whose books hold the instrument)."""

    owner: Owner
    holders: tuple[str, ...]

    def describe(self, shared: SharedAccount) -> str:
        """``unattributed in shared venue account V: held by none of its bots' books (a, b)`` and the like."""
        where = f"shared venue account {shared.venue_account!r}"
        if not self.holders:
            members = ", ".join((shared.own, *shared.others))
            return f"unattributed in {where}: held by none of its bots' books ({members})"
        return f"unattributed in {where}: held by several bots' books ({', '.join(self.holders)})"


@exact
def own_share(snapshot: Snapshot, others: SharedAccount) -> Snapshot:
    """``snapshot`` less what the other bots' books hold: their quantities, their open orders, their fills."""
    positions = []
    for position in snapshot.positions:
        theirs = sum(others.positions.get(position.key, {}).values(), ZERO)
        positions.append(replace(position, qty=position.qty - theirs))
    held_elsewhere = {p.key for p in snapshot.positions}
    for key, holders in others.positions.items():
        if key not in held_elsewhere:  # the others hold it, the venue shows nothing: our share is short of it
            theirs = sum(holders.values(), ZERO)
            if theirs != ZERO:
                positions.append(_flat_row(snapshot, key, -theirs))
    orders = tuple(
        o
        for o in snapshot.open_orders
        if order_name(o) not in others.order_names and (o.venue_order_id or "") not in others.order_names
    )
    fills = tuple(f for f in snapshot.fills if f.fill_id not in others.fill_ids)
    cash = snapshot.cash
    if cash is not None and others.expected_cash is not None and others.expected_cash.currency == cash.currency:
        cash = Cash(cash.currency, cash.balance - others.expected_cash.balance)
    return replace(snapshot, positions=tuple(positions), open_orders=orders, fills=fills, cash=cash)


def _flat_row(snapshot: Snapshot, key: InstrumentKey, qty: Decimal) -> VenuePosition:
    """A row for an instrument the venue shows flat, so that the share can be short of it."""
    return VenuePosition(key, qty, ZERO, snapshot.marks.get(key))


def attribute(key: InstrumentKey, own_qty: Decimal, shared: SharedAccount) -> Attribution:
    """Whose a difference on ``key`` is: the one bot whose books hold it, else nobody's."""
    holders = sorted(label for label, qty in shared.positions.get(key, {}).items() if qty != ZERO)
    if own_qty != ZERO:
        holders.insert(0, shared.own)
    if len(holders) == 1:
        return Attribution(Owner.OWN if holders[0] == shared.own else Owner.OTHER, tuple(holders))
    return Attribution(Owner.UNATTRIBUTED, tuple(holders))


def unattributed(shared: SharedAccount, what: str) -> str:
    """Why a cash or order difference in a shared venue account is reported and not acted on."""
    return f"unattributed in shared venue account {shared.venue_account!r}: {what}"
