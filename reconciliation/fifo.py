"""FIFO lot matching: how one fill changes the open lots of an instrument, and the trades it completes.

A fill on the side that reduces the position closes the oldest lots first (a sell against longs, a buy
against shorts); what is left of it after every lot is closed opens a lot on the other side. Fees are
shared out so that the parts of any fee always add up to the whole fee, to the last decimal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from reconciliation.values import (
    WIDE,
    ZERO,
    Fill,
    FillKind,
    InstrumentKey,
    Lot,
    LotSide,
    Position,
    PositionStatus,
    Source,
    Trade,
    exact,
)

#: Money and quantities are stored with 18 decimal places; computed shares are rounded to that.
PLACES = Decimal("1e-18")
PERCENT_PLACES = Decimal("1e-6")

_DEFAULT_EXIT_REASONS = {
    FillKind.LIQUIDATION: "liquidated by the venue",
    FillKind.ADL: "auto-deleveraged by the venue",
    FillKind.EXPIRY: "expired",
}


def quantize(value: Decimal, places: Decimal = PLACES) -> Decimal:
    """Round ``value`` half-even to ``places`` without losing integer digits."""
    return WIDE.quantize(value, places)


def _share(total: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """The rounded share of ``total`` that ``part`` of ``whole`` carries; equals ``total`` when part == whole."""
    if part == whole:
        return total
    return quantize(total * part / whole)


@dataclass(frozen=True)
class FifoOutcome:
    """Open lots of the instrument after one fill (oldest first), the trades it completed, the lot it opened."""

    lots: tuple[Lot, ...]
    trades: tuple[Trade, ...]
    opened: Lot | None


@exact
def apply_fill(lots: Sequence[Lot], fill: Fill, source: Source) -> FifoOutcome:
    """Apply ``fill`` to the open ``lots`` of its instrument (oldest first), FIFO.

    ``source`` says who records the fill: it becomes the opened lot's source, and a lot closed by anyone but
    the bot (live or imported) is ``CLOSED_EXTERNALLY``.
    """
    unmatched = fill.qty
    kept: list[Lot] = []
    trades: list[Trade] = []
    for lot in lots:
        if unmatched == ZERO or lot.side.sign == fill.side.sign:
            kept.append(lot)
            continue
        closing = min(lot.remaining, unmatched)
        trades.append(_trade(lot, fill, closing, fill.qty - unmatched, source))
        unmatched -= closing
        if closing < lot.remaining:
            kept.append(with_remaining(lot, lot.remaining - closing))
    opened = None
    if unmatched > ZERO:
        fee_used = _share(fill.fee, fill.qty - unmatched, fill.qty)
        opened = Lot(
            entry_fill_id=fill.fill_id,
            key=fill.key,
            side=LotSide.opened_by(fill.side),
            quantity=unmatched,
            remaining=unmatched,
            entry_price=fill.price,
            entry_time=fill.time,
            commission=fill.fee - fee_used,
            source=source,
            group=fill.group,
            multiplier=fill.multiplier,
        )
        kept.append(opened)
    return FifoOutcome(lots=tuple(kept), trades=tuple(trades), opened=opened)


def with_remaining(lot: Lot, remaining: Decimal) -> Lot:
    """``lot`` with ``remaining`` left open: ``dataclasses.replace`` without its per-call field checks, which cost
    a third of an import's FIFO time."""
    return Lot(lot.entry_fill_id, lot.key, lot.side, lot.quantity, remaining, lot.entry_price, lot.entry_time,
               lot.commission, lot.source, lot.group, lot.multiplier)  # fmt: skip


def _trade(lot: Lot, fill: Fill, closing: Decimal, fill_matched_before: Decimal, source: Source) -> Trade:
    closed_before = lot.quantity - lot.remaining
    entry_fee = _share(lot.commission, closed_before + closing, lot.quantity) - _share(
        lot.commission, closed_before, lot.quantity
    )
    exit_fee = _share(fill.fee, fill_matched_before + closing, fill.qty) - _share(
        fill.fee, fill_matched_before, fill.qty
    )
    gross = quantize((fill.price - lot.entry_price) * closing * lot.multiplier * lot.side.sign)
    fees = entry_fee + exit_fee
    net = gross - fees
    cost = lot.entry_price * closing * lot.multiplier
    pnl_pct = quantize(net * 100 / cost, PERCENT_PLACES) if cost != ZERO else ZERO
    return Trade(
        key=lot.key,
        side=lot.side,
        quantity=closing,
        entry_fill_id=lot.entry_fill_id,
        exit_fill_id=fill.fill_id,
        entry_price=lot.entry_price,
        exit_price=fill.price,
        entry_time=lot.entry_time,
        exit_time=fill.time,
        gross_pnl=gross,
        fees=fees,
        net_pnl=net,
        pnl_pct=pnl_pct,
        status=_closing_status(fill, source),
        exit_reason=fill.reason or _default_exit_reason(fill, source),
        exit_estimated=fill.estimated,
        group=lot.group,
        multiplier=lot.multiplier,
    )


def _closing_status(fill: Fill, source: Source) -> PositionStatus:
    if fill.kind is FillKind.EXPIRY:
        return PositionStatus.EXPIRED
    return PositionStatus.CLOSED if source.is_bots_own else PositionStatus.CLOSED_EXTERNALLY


def _default_exit_reason(fill: Fill, source: Source) -> str | None:
    if fill.kind in _DEFAULT_EXIT_REASONS:
        return _DEFAULT_EXIT_REASONS[fill.kind]
    return None if source.is_bots_own else "closed at the venue outside the bot"


@dataclass(frozen=True)
class ReplayOutcome:
    """Open lots per instrument after a sequence of fills, and every trade they completed, in order."""

    lots: dict[InstrumentKey, tuple[Lot, ...]]
    trades: tuple[Trade, ...]
    opened: tuple[Lot, ...]


def replay(lots: dict[InstrumentKey, tuple[Lot, ...]], fills: Iterable[tuple[Fill, Source]]) -> ReplayOutcome:
    """Apply ``fills`` in the given order to a copy of ``lots``; the input is left as it was."""
    current = dict(lots)
    trades: list[Trade] = []
    opened: list[Lot] = []
    for fill, source in fills:
        outcome = apply_fill(current.get(fill.key, ()), fill, source)
        current[fill.key] = outcome.lots
        trades.extend(outcome.trades)
        if outcome.opened is not None:
            opened.append(outcome.opened)
    return ReplayOutcome(
        lots={key: value for key, value in current.items() if value},
        trades=tuple(trades),
        opened=tuple(opened),
    )


@exact
def position_of(key: InstrumentKey, lots: Sequence[Lot]) -> Position:
    """Signed quantity and weighted average entry price of the open ``lots`` of one instrument."""
    open_lots = tuple(lot for lot in lots if lot.remaining > ZERO)
    size = sum((lot.remaining for lot in open_lots), ZERO)
    if size == ZERO:
        return Position(key=key, qty=ZERO, avg_entry=None, lots=())
    cost = sum((lot.entry_price * lot.remaining for lot in open_lots), ZERO)
    signed = sum((lot.signed_remaining for lot in open_lots), ZERO)
    return Position(key=key, qty=signed, avg_entry=quantize(cost / size), lots=open_lots)
