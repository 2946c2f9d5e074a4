"""Recording fills: each fill id once, FIFO applied, lots, trades and position groups written in a constant
number of statements however many fills there are. A fill id already in the books is never applied twice: the
insert does nothing and the call says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.orm import Session

from models import books as tables
from models.accounts import lock_account
from models.database import insert_ignoring_duplicates
from models.lots import OpenLots, load_group_ids, load_open_lots
from models.reading import fill_id_chunks
from reconciliation.fifo import FifoOutcome, apply_fill, with_remaining
from reconciliation.values import (
    ZERO,
    Fill,
    Lot,
    Position,
    PositionStatus,
    Side,
    Source,
    Trade,
    exact,
)

OPEN = PositionStatus.OPEN.value
LOTS = cast(Table, tables.Lot.__table__)
TRADES = cast(Table, tables.Trade.__table__)
GROUPS = cast(Table, tables.PositionGroup.__table__)
FILLS = cast(Table, tables.Fill.__table__)


@dataclass(frozen=True)
class FillResult:
    """What recording one fill did: whether it was new, and the position before and after it."""

    fill: Fill
    recorded: bool
    before: Position
    after: Position
    trades: tuple[Trade, ...] = ()
    opened: Lot | None = None


@dataclass
class _Changes:
    lot_updates: dict[str, Lot] = field(default_factory=dict)
    closed: dict[str, Trade] = field(default_factory=dict)
    new_lots: dict[str, Lot] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    credit: dict[str, Decimal] = field(default_factory=lambda: defaultdict(lambda: ZERO))


@exact
def write_fills(
    session: Session,
    account_id: int,
    fills: Sequence[tuple[Fill, Source]],
    lots: OpenLots,
    now: datetime,
    run_id: int | None = None,
) -> list[FillResult]:
    """Insert ``fills`` (duplicates skipped) and apply the new ones FIFO to ``lots``, in order.

    The caller holds the account lock and loaded ``lots`` inside the same transaction. ``lots`` is updated
    in place to the state after the fills. The number of statements does not grow with the number of fills.
    """
    if not fills:
        return []
    inserted = _insert_fills(session, account_id, fills, now, run_id)
    _ensure_groups(session, account_id, {f.group for f, _ in fills if f.group and f.fill_id in inserted}, lots, now)
    changes = _Changes()
    results: list[FillResult] = []
    for fill, source in fills:
        before = lots.position(fill.key)
        if fill.fill_id not in inserted:
            results.append(FillResult(fill, False, before, before))
            continue
        inserted.discard(fill.fill_id)  # a fill id repeated within one call applies once
        outcome = apply_fill(lots.by_key.get(fill.key, ()), fill, source)
        _collect(changes, lots.by_key.get(fill.key, ()), outcome, fill)
        lots.by_key[fill.key] = outcome.lots
        results.append(FillResult(fill, True, before, lots.position(fill.key), outcome.trades, outcome.opened))
    _persist(session, account_id, changes, lots, run_id)
    return results


@exact
def write_new_fills(
    session: Session, account_id: int, fills: Sequence[tuple[Fill, Source]], lots: OpenLots, now: datetime
) -> tuple[Trade, ...]:
    """Insert ``fills``, none of them in the books yet, and apply them FIFO to ``lots`` in order; the trades they
    completed. For many fills at once (an import): the caller holds the account lock and found the fill ids
    absent under it. On Postgres fills, lots and trades are written with COPY, the new lots' ids drawn from
    their sequence beforehand (an INSERT of many rows costs the driver more than the server); elsewhere as
    ``write_fills`` writes them."""
    if not fills:
        return ()
    if session.get_bind().dialect.name != "postgresql":
        return tuple(t for result in write_fills(session, account_id, fills, lots, now) for t in result.trades)
    _ensure_groups(session, account_id, {f.group for f, _ in fills if f.group}, lots, now)
    changes = _Changes()
    for fill, source in fills:
        open_lots = lots.by_key.get(fill.key, ())
        outcome = apply_fill(open_lots, fill, source)
        _collect(changes, open_lots, outcome, fill)
        lots.by_key[fill.key] = outcome.lots
    _copy_rows(session, FILLS, [fill_row(account_id, f, source, now, None) for f, source in fills])
    _persist(session, account_id, changes, lots, None, copy=True)
    # The planner's statistics must see the new rows: estimating the fills table as empty, the look-ups by fill id
    # of the next import (or run) scan it whole, each (measured: 100 look-ups went from 3 s to 120 s).
    for table in (FILLS, LOTS, TRADES):
        session.execute(text(f'ANALYZE "{table.name}"'))
    return tuple(changes.trades)


def _copy_lots_and_trades(session: Session, account_id: int, changes: _Changes, lots: OpenLots) -> None:
    if changes.new_lots:
        ids = session.scalars(_NEXT_LOT_IDS, {"n": len(changes.new_lots)}).all()
        lots.ids.update(zip(changes.new_lots, ids, strict=True))
        _copy_rows(
            session,
            LOTS,
            [
                {"id": lots.ids[fid], **_lot_row(account_id, lot, lots, _closing_columns(changes, fid))}
                for fid, lot in changes.new_lots.items()
            ],
        )
    if changes.trades:
        _copy_rows(session, TRADES, [_trade_row(account_id, t, lots.ids[t.entry_fill_id]) for t in changes.trades])


_NEXT_LOT_IDS = text("SELECT nextval(pg_get_serial_sequence('lots', 'id')) FROM generate_series(1, :n)")


def _copy_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """``rows`` into ``table`` with Postgres' COPY, in this transaction."""
    if not rows:
        return
    columns = list(rows[0])
    names = ", ".join(f'"{column}"' for column in columns)
    statement = f'COPY "{table.name}" ({names}) FROM STDIN'
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def fill_row(account_id: int, fill: Fill, source: Source, now: datetime, run_id: int | None) -> dict[str, Any]:
    """The ``fills`` row recording ``fill`` for the account."""
    return {
        "account_id": account_id,
        "fill_id": fill.fill_id,
        "order_id": fill.order_id,
        "category": fill.key.category,
        "symbol": fill.key.symbol,
        "leg": fill.key.leg,
        "side": fill.side.value,
        "qty": fill.qty,
        "price": fill.price,
        "fee": fill.fee,
        "time": fill.time,
        "kind": fill.kind.value,
        "source": source.value,
        "group_name": fill.group,
        "reason": fill.reason,
        "estimated": fill.estimated,
        "multiplier": fill.multiplier,
        "run_id": run_id,
        "recorded_at": now,
    }


def _insert_fills(
    session: Session, account_id: int, fills: Sequence[tuple[Fill, Source]], now: datetime, run_id: int | None
) -> set[str]:
    rows = [fill_row(account_id, f, source, now, run_id) for f, source in fills]
    # Core, not the ORM class: ORM bulk inserts start a new statement whenever the set of NULL columns changes.
    statement = insert_ignoring_duplicates(session, FILLS).returning(FILLS.c.fill_id)
    return set(session.execute(statement, rows).scalars())


def _ensure_groups(session: Session, account_id: int, names: set[Any], lots: OpenLots, now: datetime) -> None:
    missing = sorted(n for n in names if n not in lots.group_ids)
    if not missing:
        return
    session.execute(
        insert_ignoring_duplicates(session, GROUPS),
        [
            {"account_id": account_id, "name": n, "status": OPEN, "net_entry_credit": ZERO, "opened_at": now}
            for n in missing
        ],
    )
    lots.group_ids.update(load_group_ids(session, account_id))


def _collect(changes: _Changes, before: tuple[Lot, ...], outcome: FifoOutcome, fill: Fill) -> None:
    after = {lot.entry_fill_id: lot for lot in outcome.lots}
    last_trade = {t.entry_fill_id: t for t in outcome.trades}
    for lot in before:
        kept = after.get(lot.entry_fill_id)
        if kept is lot or (kept is not None and kept == lot):  # FIFO keeps an untouched lot as the same object
            continue
        target = changes.new_lots if lot.entry_fill_id in changes.new_lots else changes.lot_updates
        target[lot.entry_fill_id] = kept if kept is not None else with_remaining(lot, ZERO)
        if lot.entry_fill_id not in after:
            changes.closed[lot.entry_fill_id] = last_trade[lot.entry_fill_id]
    if outcome.opened is not None:
        changes.new_lots[outcome.opened.entry_fill_id] = outcome.opened
        if outcome.opened.group:
            sign = Decimal(1) if fill.side is Side.SELL else Decimal(-1)
            changes.credit[outcome.opened.group] += sign * outcome.opened.quantity * fill.price * fill.multiplier
    changes.trades.extend(outcome.trades)


def _closing_columns(changes: _Changes, entry_fill_id: str) -> dict[str, Any]:
    trade = changes.closed.get(entry_fill_id)
    if trade is None:
        return {"status": OPEN, "exit_reason": None, "closed_at": None}
    return {"status": trade.status.value, "exit_reason": trade.exit_reason, "closed_at": trade.exit_time}


def _persist(
    session: Session, account_id: int, changes: _Changes, lots: OpenLots, run_id: int | None, copy: bool = False
) -> None:
    written = changes
    if copy:
        _copy_lots_and_trades(session, account_id, changes, lots)
        changes = replace(changes, new_lots={}, trades=[])  # written; the rest below still applies
    if changes.lot_updates:
        session.connection().execute(
            update(LOTS).where(LOTS.c.id == bindparam("lot_id")),
            [
                {"lot_id": lots.ids[fid], "remaining": lot.remaining, **_closing_columns(changes, fid)}
                for fid, lot in changes.lot_updates.items()
            ],
        )
    if changes.new_lots:
        rows = [
            _lot_row(account_id, lot, lots, _closing_columns(changes, fid)) for fid, lot in changes.new_lots.items()
        ]
        inserted = session.execute(LOTS.insert().returning(LOTS.c.id, LOTS.c.entry_fill_id), rows)
        lots.ids.update({fid: lot_id for lot_id, fid in inserted})
    if changes.trades:
        session.execute(
            TRADES.insert(),
            [_trade_row(account_id, t, lots.ids[t.entry_fill_id]) for t in changes.trades],
        )
    if changes.credit:
        session.connection().execute(
            update(GROUPS)
            .where(GROUPS.c.id == bindparam("group_id"))
            .values(net_entry_credit=GROUPS.c.net_entry_credit + bindparam("delta")),
            [{"group_id": lots.group_ids[name], "delta": delta} for name, delta in changes.credit.items()],
        )
    _close_finished_groups(session, account_id, lots, written)


def _close_finished_groups(session: Session, account_id: int, lots: OpenLots, changes: _Changes) -> None:
    """A group whose lots this write closed, and which has no open lot left, takes its last close's status."""
    closing = {t.group: t for t in changes.trades if t.group}
    if not closing:
        return
    still_open = set(
        session.scalars(
            select(tables.Lot.group_id).where(
                tables.Lot.account_id == account_id,
                tables.Lot.status == OPEN,
                tables.Lot.group_id.in_([lots.group_ids[g] for g in closing]),
            )
        )
    )
    finished = [
        {
            "group_id": lots.group_ids[g],
            "status": t.status.value,
            "exit_reason": t.exit_reason,
            "closed_at": t.exit_time,
        }
        for g, t in closing.items()
        if lots.group_ids[g] not in still_open
    ]
    if finished:
        session.connection().execute(
            update(GROUPS).where(GROUPS.c.id == bindparam("group_id"), GROUPS.c.status == OPEN), finished
        )


def _lot_row(account_id: int, lot: Lot, lots: OpenLots, closing: dict[str, Any]) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "category": lot.key.category,
        "symbol": lot.key.symbol,
        "leg": lot.key.leg,
        "side": lot.side.value,
        "quantity": lot.quantity,
        "remaining": lot.remaining,
        "entry_price": lot.entry_price,
        "entry_time": lot.entry_time,
        "entry_fill_id": lot.entry_fill_id,
        "commission": lot.commission,
        "source": lot.source.value,
        "group_id": lots.group_ids.get(lot.group) if lot.group else None,
        "multiplier": lot.multiplier,
        **closing,
    }


def _trade_row(account_id: int, trade: Trade, lot_id: int) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "lot_id": lot_id,
        "category": trade.key.category,
        "symbol": trade.key.symbol,
        "leg": trade.key.leg,
        "side": trade.side.value,
        "quantity": trade.quantity,
        "entry_fill_id": trade.entry_fill_id,
        "exit_fill_id": trade.exit_fill_id,
        "entry_price": trade.entry_price,
        "exit_price": trade.exit_price,
        "entry_time": trade.entry_time,
        "exit_time": trade.exit_time,
        "gross_pnl": trade.gross_pnl,
        "fees": trade.fees,
        "net_pnl": trade.net_pnl,
        "pnl_pct": trade.pnl_pct,
        "status": trade.status.value,
        "exit_reason": trade.exit_reason,
        "exit_estimated": trade.exit_estimated,
        "multiplier": trade.multiplier,
    }


def record_fill(
    session: Session, account_id: int, fill: Fill, now: datetime, source: Source = Source.BOT
) -> FillResult:
    """Record one fill for a bot: lock the account, apply FIFO, write. A known fill id changes nothing."""
    lock_account(session, account_id)
    lots = load_open_lots(session, account_id, keys=[fill.key], groups=[fill.group] if fill.group else [])
    return write_fills(session, account_id, [(fill, source)], lots, now)[0]


def differences_from_recorded(
    session: Session, account_id: int, fill: Fill, *, with_fee: bool, with_time: bool
) -> tuple[str, ...]:
    """How ``fill`` differs from the fill recorded under its id, one ``field given (recorded …)`` each: the
    instrument, side, quantity, price and kind, and the fee and time when asked. Amounts compare by value."""
    row = session.execute(
        select(FILLS).where(FILLS.c.account_id == account_id, FILLS.c.fill_id == fill.fill_id)
    ).one_or_none()
    return () if row is None else _differences(fill, row, with_fee=with_fee, with_time=with_time)


def recorded_differences(session: Session, account_id: int, fills: Sequence[Fill]) -> dict[str, tuple[str, ...]]:
    """For each of ``fills`` whose id is already in the account's books: how it differs from the recorded one
    (as ``differences_from_recorded`` says it, fee and time included); empty when it is the same fill. Ids not in
    the books are left out. One query per chunk of ids (``models.reading.fill_id_chunks``)."""
    by_id = {fill.fill_id: fill for fill in fills}
    ids = sorted(by_id)
    found: dict[str, tuple[str, ...]] = {}
    for chunk in fill_id_chunks(session, ids):
        rows = session.execute(select(FILLS).where(FILLS.c.account_id == account_id, chunk))
        for row in rows:
            found[row.fill_id] = _differences(by_id[row.fill_id], row, with_fee=True, with_time=True)
    return found


def _differences(fill: Fill, row: Any, *, with_fee: bool, with_time: bool) -> tuple[str, ...]:
    given: dict[str, object] = {
        "instrument": str(fill.key), "side": fill.side.value, "qty": fill.qty, "price": fill.price,
        "kind": fill.kind.value,
    }  # fmt: skip
    recorded: dict[str, object] = {
        "instrument": f"{row.category}:{row.symbol}:{row.leg}", "side": row.side, "qty": row.qty,
        "price": row.price, "kind": row.kind,
    }  # fmt: skip
    if with_fee:
        given["fee"], recorded["fee"] = fill.fee, row.fee
    if with_time:
        given["time"], recorded["time"] = fill.time, row.time
    return tuple(
        f"{name} {_shown(given[name])} (recorded {_shown(recorded[name])})"
        for name in given
        if given[name] != recorded[name]
    )


def _shown(value: object) -> str:
    if isinstance(value, Decimal):
        return f"{value.normalize():f}" if value else "0"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
