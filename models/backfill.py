"""Backfill of exits in the books: read the estimated trades, write their real exits in the caller's transaction.

The venue fills used are inserted into ``fills`` (source ``backfill``) without being applied FIFO: the lots
they closed are already closed. Holding their ids makes a second backfill a no-op and keeps reconciliation
from reading them as fills the books do not know. Each backfilled trade gets one action row with its state
before and after; a trade whose exit was not found gets an unapplied ``exit_not_found`` row, so the run's
report says which exits stay estimated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from models import books as tables
from models.accounts import lock_account
from models.database import insert_ignoring_duplicates
from models.fills import FILLS, fill_row
from models.reading import known_fill_ids
from models.runs import Action, Run
from reconciliation.backfill import EXIT_REASONS, BackfilledExit, EstimatedTrade, ExitMatch, split_fee
from reconciliation.plan import RunStatus
from reconciliation.values import ZERO, InstrumentKey, LotSide, PositionStatus, Source, plain

ACTIONS = cast(Table, Action.__table__)
NOT_FOUND = "no venue fills found for this exit: it stays estimated"
MOVED = "deferred: the books changed during the run; it stays estimated"


def estimated_trades(session: Session, account_id: int) -> list[EstimatedTrade]:
    """The account's trades whose exit is still estimated, oldest exit first (FIFO order within one exit)."""
    exit_fill = tables.Fill
    rows = session.execute(
        select(tables.Trade, exit_fill.fee, exit_fill.qty)
        .outerjoin(
            exit_fill,
            (exit_fill.account_id == tables.Trade.account_id) & (exit_fill.fill_id == tables.Trade.exit_fill_id),
        )
        .where(tables.Trade.account_id == account_id, tables.Trade.exit_estimated.is_(True))
        .order_by(tables.Trade.exit_time, tables.Trade.id)
    ).all()
    charged = {trade.exit_fill_id: (fee, qty) for trade, fee, qty in rows if fee is not None and fee != ZERO}
    exit_fees = _exit_fee_shares(session, account_id, charged)
    return [
        EstimatedTrade(
            trade_id=trade.id,
            key=InstrumentKey(trade.category, trade.symbol, trade.leg),
            side=LotSide(trade.side),
            quantity=trade.quantity,
            entry_price=trade.entry_price,
            entry_fee=trade.fees - exit_fees.get(trade.id, ZERO),
            entry_time=trade.entry_time,
            exit_price=trade.exit_price,
            exit_time=trade.exit_time,
            multiplier=trade.multiplier,
        )
        for trade, _, _ in rows
    ]


def _exit_fee_shares(
    session: Session, account_id: int, charged: dict[str, tuple[Decimal, Decimal]]
) -> dict[int, Decimal]:
    """Per trade id, the share of its exit fill's fee in its fees, for exit fills that carry a fee.

    Reconciliation's synthetic exits carry none; the shares are recomputed as FIFO shared them (in trade order).
    """
    if not charged:
        return {}
    trades_of: dict[str, list[tuple[int, Decimal]]] = defaultdict(list)
    for trade_id, fill_id, quantity in session.execute(
        select(tables.Trade.id, tables.Trade.exit_fill_id, tables.Trade.quantity)
        .where(tables.Trade.account_id == account_id, tables.Trade.exit_fill_id.in_(sorted(charged)))
        .order_by(tables.Trade.id)
    ):
        trades_of[fill_id].append((trade_id, quantity))
    shares: dict[int, Decimal] = {}
    for fill_id, trades in trades_of.items():
        fee, qty = charged[fill_id]
        shares.update(zip((t for t, _ in trades), split_fee(fee, qty, [q for _, q in trades]), strict=True))
    return shares


@dataclass(frozen=True)
class AppliedBackfill:
    """What the backfill carried out (or, in a dry run, would): the run's status, the trades backfilled, and
    the trades that stay estimated with why."""

    status: str
    backfilled: tuple[BackfilledExit, ...]
    not_found: tuple[tuple[EstimatedTrade, str], ...]


def apply_backfill(
    session: Session, account_id: int, run_id: int, result: ExitMatch, now: datetime, dry_run: bool
) -> AppliedBackfill:
    """Write ``result`` for run ``run_id`` and finish the run. The caller commits.

    Under the account lock, a trade is written only if it is still estimated as matched and none of its fills
    has reached the books meanwhile. A trade another run backfilled meanwhile is left alone and not reported;
    one whose fills reached the books is deferred and stays estimated, and so is every later trade on its
    instrument (their FIFO matching assumed it). A dry run writes only the run and its unapplied actions.
    """
    lock_account(session, account_id)
    ids = sorted({b.trade.trade_id for b in result.backfilled} | {t.trade_id for t in result.not_found})
    query = select(tables.Trade).where(tables.Trade.account_id == account_id, tables.Trade.id.in_(ids))
    trades = {t.id: t for t in session.scalars(query)} if ids else {}

    def still_estimated(trade: EstimatedTrade) -> bool:
        row = trades.get(trade.trade_id)
        return row is not None and row.exit_estimated and row.exit_time == trade.exit_time

    known = known_fill_ids(session, account_id, (f.fill_id for f in result.fills))
    moved: set[InstrumentKey] = set()
    applied: list[BackfilledExit] = []
    deferred: list[EstimatedTrade] = []
    for exit_ in result.backfilled:
        key = exit_.trade.key
        if not still_estimated(exit_.trade):  # another run backfilled it meanwhile: nothing left to do
            moved.add(key)
        elif key in moved or known.intersection(exit_.fill_ids):
            moved.add(key)
            deferred.append(exit_.trade)
        else:
            applied.append(exit_)
    rows = [_action(exit_, trades[exit_.trade.trade_id], dry_run) for exit_ in applied]
    if not dry_run and applied:
        _write(session, account_id, run_id, applied, trades, now)
    not_found = [(t, NOT_FOUND) for t in result.not_found if still_estimated(t)] + [(t, MOVED) for t in deferred]
    rows.extend(_not_found_action(trade, why) for trade, why in not_found)
    if rows:
        session.execute(ACTIONS.insert(), [{**row, "run_id": run_id, "finding_id": None} for row in rows])
    status = _status(len(applied), len(not_found))
    run = session.get_one(Run, run_id)
    run.status, run.finished_at, run.matched = status.value, now, len(applied)
    return AppliedBackfill(status.value, tuple(applied), tuple(not_found))


def _status(backfilled: int, not_found: int) -> RunStatus:
    if not_found:
        return RunStatus.WARNED
    return RunStatus.RESOLVED if backfilled else RunStatus.IN_SYNC


def _write(
    session: Session,
    account_id: int,
    run_id: int,
    applied: Sequence[BackfilledExit],
    trades: dict[int, tables.Trade],
    now: datetime,
) -> None:
    match = ExitMatch(backfilled=tuple(applied), not_found=())
    session.execute(
        insert_ignoring_duplicates(session, FILLS),
        [
            fill_row(account_id, replace(f, reason=EXIT_REASONS[f.kind], estimated=False), Source.BACKFILL, now, run_id)
            for f in match.fills
        ],
    )
    lots = {
        lot.id: lot
        for lot in session.scalars(
            select(tables.Lot).where(tables.Lot.id.in_(sorted({trades[b.trade.trade_id].lot_id for b in applied})))
        )
    }
    for exit_ in applied:
        trade = trades[exit_.trade.trade_id]
        lot = lots[trade.lot_id]
        if lot.status != PositionStatus.OPEN.value and lot.closed_at == trade.exit_time:
            lot.exit_reason, lot.closed_at = exit_.exit_reason, exit_.exit_time  # this trade closed the lot
        trade.exit_price, trade.exit_time = exit_.exit_price, exit_.exit_time
        trade.gross_pnl, trade.fees, trade.net_pnl, trade.pnl_pct = (
            exit_.gross_pnl,
            exit_.fees,
            exit_.net_pnl,
            exit_.pnl_pct,
        )
        trade.exit_estimated, trade.exit_reason = False, exit_.exit_reason
    session.flush()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _trade_json(trade: tables.Trade) -> dict[str, Any]:
    return {
        "exit_price": plain(trade.exit_price),
        "exit_time": _iso(trade.exit_time),
        "fees": plain(trade.fees),
        "net_pnl": plain(trade.net_pnl),
        "exit_reason": trade.exit_reason,
        "exit_estimated": trade.exit_estimated,
    }


def _action(exit_: BackfilledExit, trade: tables.Trade, dry_run: bool) -> dict[str, Any]:
    estimate = exit_.trade
    after = {
        "exit_price": plain(exit_.exit_price),
        "exit_time": _iso(exit_.exit_time),
        "fees": plain(exit_.fees),
        "net_pnl": plain(exit_.net_pnl),
        "exit_reason": exit_.exit_reason,
        "exit_estimated": False,
    }
    fills = ", ".join(
        f"{part.fill.fill_id} ({plain(part.qty)} @ {plain(part.fill.price)}, {part.fill.kind})" for part in exit_.parts
    )
    return {
        "kind": "backfill_exit",
        "subject": f"position:{estimate.key}",
        "applied": not dry_run,
        "before": _trade_json(trade),
        "after": after,
        "detail": (
            f"{estimate.side} {plain(estimate.quantity)} {estimate.key.symbol} exit at {plain(exit_.exit_price)}"
            f" instead of {plain(estimate.exit_price)} (estimated), from venue fill(s) {fills}: {exit_.exit_reason}"
        ),
    }


def _not_found_action(trade: EstimatedTrade, why: str) -> dict[str, Any]:
    estimate = {
        "exit_price": plain(trade.exit_price),
        "exit_time": _iso(trade.exit_time),
        "exit_estimated": True,
    }
    return {
        "kind": "exit_not_found",
        "subject": f"position:{trade.key}",
        "applied": False,
        "before": estimate,
        "after": estimate,
        "detail": (
            f"{trade.side} {plain(trade.quantity)} {trade.key.symbol} closed at {plain(trade.exit_price)}"
            f" (estimated) on {_iso(trade.exit_time)}: {why}"
        ),
    }
