"""Backfill of exits: the venue's real fills in place of the exits reconciliation could only estimate.

When reconciliation finds a position gone at the venue and no venue fill explains it, it closes the lots at
an estimated price (the venue's mark) and marks the trades ``exit_estimated``. The venue's fill history can
later say what really happened. This module matches those fills to the estimated trades and computes what
each trade becomes; it is pure (no clock, no I/O) and deterministic.

Matching, per instrument, FIFO:

- the trades are taken in the order given (oldest exit first, and FIFO order within one estimated close);
- a venue fill can close a trade when it is on the side that reduces the trade's lot (a sell for a long, a
  buy for a short), the books do not already hold its fill id, and its time lies between the lot's entry and
  the estimated exit (reconciliation saw the position gone at that moment, so the real exit came before);
- fills are consumed oldest first, across trades in order, partially when needed: one fill may close several
  trades and one trade may need several fills;
- a trade is backfilled only when its whole quantity is covered. A trade that is not keeps what it consumed
  (the venue closed the oldest lot first, so a later trade cannot claim those fills) and stays estimated.

A backfilled trade gets the quantity-weighted exit price, the time of its last fill, its share of each fill's
fee (shares of one fill add up to that fill's fee, as in FIFO lot matching) and P&L computed the way
``reconciliation.fifo`` computes it. Its exit reason names the cause: the most severe kind among its fills.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from reconciliation.fifo import PERCENT_PLACES, quantize
from reconciliation.values import ZERO, Fill, FillKind, InstrumentKey, LotSide, Side, exact

#: Exit reasons given to backfilled trades, by the kind of venue fill that closed them.
EXIT_REASONS = {
    FillKind.TRADE: "closed by hand at the venue",
    FillKind.EXPIRY: "expired",
    FillKind.ADL: "auto-deleveraged by the venue",
    FillKind.LIQUIDATION: "liquidated by the venue",
}

#: When one trade was closed by fills of several kinds, the most severe names the cause.
SEVERITY = (FillKind.TRADE, FillKind.EXPIRY, FillKind.ADL, FillKind.LIQUIDATION)


@dataclass(frozen=True)
class EstimatedTrade:
    """A completed trade whose exit reconciliation estimated, as the books hold it.

    ``entry_fee`` is the entry commission share already in the trade's fees (its fees minus the estimated
    exit's fee share, which is zero for reconciliation's synthetic fills). ``exit_price`` and ``exit_time``
    are the estimate.
    """

    trade_id: int
    key: InstrumentKey
    side: LotSide
    quantity: Decimal
    entry_price: Decimal
    entry_fee: Decimal
    entry_time: datetime
    exit_price: Decimal
    exit_time: datetime
    multiplier: Decimal = Decimal(1)

    @property
    def closing_side(self) -> Side:
        """The side of the fills that close this trade's lot: sell for a long, buy for a short."""
        return Side.SELL if self.side is LotSide.LONG else Side.BUY


@dataclass(frozen=True)
class ExitPart:
    """The part ``qty`` of venue fill ``fill`` that closed (part of) a trade, and its share of the fill's fee."""

    fill: Fill
    qty: Decimal
    fee: Decimal


@dataclass(frozen=True)
class BackfilledExit:
    """What an estimated trade becomes with its real exit: the new exit, fees and P&L, and the fills used."""

    trade: EstimatedTrade
    parts: tuple[ExitPart, ...]
    exit_price: Decimal
    exit_time: datetime
    exit_fee: Decimal
    gross_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    pnl_pct: Decimal
    kind: FillKind
    exit_reason: str

    @property
    def fill_ids(self) -> tuple[str, ...]:
        """The venue fill ids used, each once, in the order they were used."""
        return tuple(dict.fromkeys(part.fill.fill_id for part in self.parts))


@dataclass(frozen=True)
class ExitMatch:
    """The trades backfilled and the trades whose exit was not found (both in the order given)."""

    backfilled: tuple[BackfilledExit, ...]
    not_found: tuple[EstimatedTrade, ...]

    @property
    def fills(self) -> tuple[Fill, ...]:
        """The venue fills the backfilled trades used, each once, oldest first."""
        used = {part.fill.fill_id: part.fill for b in self.backfilled for part in b.parts}
        return tuple(sorted(used.values(), key=lambda f: (f.time, f.fill_id)))


@exact
def split_fee(fee: Decimal, whole: Decimal, parts: Sequence[Decimal]) -> tuple[Decimal, ...]:
    """The shares of ``fee`` (charged on quantity ``whole``) that consecutive ``parts`` of it carry.

    Shares are cumulative differences of rounded shares, as in FIFO lot matching: parts adding up to
    ``whole`` have shares adding up to ``fee`` exactly.
    """
    shares: list[Decimal] = []
    before = ZERO
    for part in parts:
        shares.append(_share(fee, before + part, whole) - _share(fee, before, whole))
        before += part
    return tuple(shares)


def _share(total: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """The rounded share of ``total`` that ``part`` of ``whole`` carries (``reconciliation.fifo``'s rule)."""
    if part == whole:
        return total
    return quantize(total * part / whole)


class _Supply:
    """A venue fill being consumed: how much of it is used so far."""

    def __init__(self, fill: Fill) -> None:
        self.fill = fill
        self.used = ZERO

    @property
    def left(self) -> Decimal:
        return self.fill.qty - self.used

    def take(self, qty: Decimal) -> ExitPart:
        """Consume ``qty`` of the fill; the part carries its exact share of the fill's fee."""
        fee = _share(self.fill.fee, self.used + qty, self.fill.qty) - _share(self.fill.fee, self.used, self.fill.qty)
        self.used += qty
        return ExitPart(self.fill, qty, fee)


@exact
def match_exits(
    trades: Sequence[EstimatedTrade], fills: Iterable[Fill], known_fill_ids: Collection[str] = frozenset()
) -> ExitMatch:
    """Match venue ``fills`` (oldest first) to estimated ``trades`` (oldest first), FIFO per instrument.

    Fills whose id is in ``known_fill_ids`` (already in the books) are left out, as is a repeated fill id.
    """
    supplies: dict[InstrumentKey, list[_Supply]] = {}
    seen: set[str] = set()
    for fill in sorted(fills, key=lambda f: f.time):  # stable: venue order among equal times
        if fill.fill_id in known_fill_ids or fill.fill_id in seen:
            continue
        seen.add(fill.fill_id)
        supplies.setdefault(fill.key, []).append(_Supply(fill))
    backfilled: list[BackfilledExit] = []
    not_found: list[EstimatedTrade] = []
    for trade in trades:
        parts = _consume(trade, supplies.get(trade.key, []))
        if sum((part.qty for part in parts), ZERO) == trade.quantity:
            backfilled.append(_backfilled(trade, tuple(parts)))
        else:
            not_found.append(trade)
    return ExitMatch(backfilled=tuple(backfilled), not_found=tuple(not_found))


def _consume(trade: EstimatedTrade, supplies: list[_Supply]) -> list[ExitPart]:
    needed = trade.quantity
    parts: list[ExitPart] = []
    for supply in supplies:
        if needed == ZERO:
            break
        fill = supply.fill
        if fill.side is not trade.closing_side or supply.left == ZERO:
            continue
        if not trade.entry_time <= fill.time <= trade.exit_time:
            continue
        part = supply.take(min(needed, supply.left))
        parts.append(part)
        needed -= part.qty
    return parts


def _backfilled(trade: EstimatedTrade, parts: tuple[ExitPart, ...]) -> BackfilledExit:
    qty = trade.quantity
    value = sum((part.fill.price * part.qty for part in parts), ZERO)
    gross = quantize((value - trade.entry_price * qty) * trade.multiplier * trade.side.sign)
    exit_fee = sum((part.fee for part in parts), ZERO)
    fees = trade.entry_fee + exit_fee
    net = gross - fees
    cost = trade.entry_price * qty * trade.multiplier
    kind = max((part.fill.kind for part in parts), key=SEVERITY.index)
    return BackfilledExit(
        trade=trade,
        parts=parts,
        exit_price=quantize(value / qty),
        exit_time=max(part.fill.time for part in parts),
        exit_fee=exit_fee,
        gross_pnl=gross,
        fees=fees,
        net_pnl=net,
        pnl_pct=quantize(net * 100 / cost, PERCENT_PLACES) if cost != ZERO else ZERO,
        kind=kind,
        exit_reason=EXIT_REASONS[kind],
    )
