"""Importing a bot's trade history into its books: the fills of a history file (``workers.fill_file``) replayed
FIFO in time order (ties in file order) on top of the account's open lots, each recorded with source ``import``.

    outcome = import_history(database, config, read_fill_file(path, fmt, category_of, now), now)

All or nothing: one transaction holding the account's row lock, as every writer of the books does. A fill id
already in the books with the same contents (instrument, side, quantity, price, kind, fee and time) is left as
it is and counted as already there, so importing a file twice changes nothing; with other contents it is a bad
row, as ``BooksClient.record_fill`` refuses it (``ConflictingFill``). Bad rows raise ``BadRows`` and nothing is
written, unless ``skip_bad``: then the good fills are written and the outcome lists what was skipped. A dry run
checks and computes the same outcome from the books as they are, and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from models.accounts import existing_account_id, get_or_create_account, lock_account
from models.database import Database
from models.fills import recorded_differences, write_new_fills
from models.lots import OpenLots, load_open_lots
from reconciliation.errors import FixConfiguration
from reconciliation.fifo import position_of, replay
from reconciliation.names import shown
from reconciliation.values import ZERO, Fill, InstrumentKey, Position, Source, Trade, exact, plain
from workers.fill_file import BadRow, FileFill, FillFile
from workers.fleet import AccountConfig
from workers.reports import amount


class BadRows(FixConfiguration):
    """The file has rows that cannot be imported; nothing was written. ``rows`` says which and why."""

    def __init__(self, rows: Sequence[BadRow]) -> None:
        self.rows = tuple(sorted(rows, key=lambda row: row.line))
        count = len(self.rows)
        super().__init__(
            f"{count} bad row{'s' if count != 1 else ''}: nothing imported "
            "(fix them, or pass --skip-bad to import the good rows)"
        )


@dataclass(frozen=True)
class ImportOutcome:
    """What an import did (or, dry, would do): the fills written in the order applied, how many were already in
    the books or repeated in the file, the rows skipped, the trades the new fills completed and the positions
    of the instruments they touched afterwards."""

    imported: tuple[Fill, ...]
    already: int
    repeated: int
    skipped: tuple[BadRow, ...]
    trades: tuple[Trade, ...]
    positions: tuple[Position, ...]
    dry_run: bool


def import_history(
    database: Database,
    config: AccountConfig,
    history: FillFile,
    now: datetime,
    *,
    dry_run: bool = False,
    skip_bad: bool = False,
) -> ImportOutcome:
    """Import ``history`` into ``config``'s books (see the module's docstring); raises ``BadRows`` when a row is
    bad and ``skip_bad`` is not set."""
    if dry_run:
        with database.reading() as session:
            account_id = existing_account_id(session, config.bot, config.account)
            known = {} if account_id is None else recorded_differences(session, account_id, _fills(history.fills))
            fresh, already, bad = _sorted_out(history, known, skip_bad)
            fresh = _with_multipliers(fresh, config)
            lots = _open_lots(session, account_id, fresh)
        outcome = replay(lots.by_key, ((f, Source.IMPORT) for f in fresh))
        positions = tuple(position_of(key, outcome.lots.get(key, ())) for key in _keys(fresh))
        return ImportOutcome(tuple(fresh), already, history.repeated, bad, outcome.trades, positions, True)
    with database.transaction() as session:
        account_id = get_or_create_account(session, config.bot, config.account, now, config.venue).id
        lock_account(session, account_id)
        known = recorded_differences(session, account_id, _fills(history.fills))
        fresh, already, bad = _sorted_out(history, known, skip_bad)
        fresh = _with_multipliers(fresh, config)
        lots = _open_lots(session, account_id, fresh)
        trades = write_new_fills(session, account_id, [(f, Source.IMPORT) for f in fresh], lots, now)
        positions = tuple(lots.position(key) for key in _keys(fresh))
        return ImportOutcome(tuple(fresh), already, history.repeated, bad, trades, positions, False)


def _with_multipliers(fills: list[Fill], config: AccountConfig) -> list[Fill]:
    """``fills`` with their instruments' contract multipliers (a copy only where it is not 1)."""
    multipliers: dict[InstrumentKey, Decimal] = {}
    for fill in fills:
        if fill.key not in multipliers:
            multipliers[fill.key] = config.rules.multipliers.of(fill.key)
    if all(m == 1 for m in multipliers.values()):
        return fills
    return [replace(f, multiplier=multipliers[f.key]) if multipliers[f.key] != 1 else f for f in fills]


def _fills(rows: Sequence[FileFill]) -> list[Fill]:
    return [row.fill for row in rows]


def _sorted_out(
    history: FillFile, known: dict[str, tuple[str, ...]], skip_bad: bool
) -> tuple[list[Fill], int, tuple[BadRow, ...]]:
    """The fills to write in time order (ties in file order), how many are in the books already, and the bad
    rows: the file's and those conflicting with the books. Raises ``BadRows`` unless ``skip_bad``."""
    conflicts = [
        BadRow(row.line, f"fill_id {shown(row.fill.fill_id)} is already in the books with other contents: "
                         + "; ".join(known[row.fill.fill_id]))
        for row in history.fills
        if known.get(row.fill.fill_id)
    ]  # fmt: skip
    bad = tuple(sorted((*history.bad, *conflicts), key=lambda row: row.line))
    if bad and not skip_bad:
        raise BadRows(bad)
    fresh = [row.fill for row in history.fills if row.fill.fill_id not in known]
    fresh.sort(key=lambda fill: fill.time)  # stable: equal times keep the file's order
    already = sum(1 for row in history.fills if row.fill.fill_id in known and not known[row.fill.fill_id])
    return fresh, already, bad


def _open_lots(session: Any, account_id: int | None, fills: Sequence[Fill]) -> OpenLots:
    if account_id is None or not fills:
        return OpenLots({}, {}, {})
    groups = sorted({fill.group for fill in fills if fill.group})
    return load_open_lots(session, account_id, keys=_keys(fills), groups=groups)


def _keys(fills: Sequence[Fill]) -> list[InstrumentKey]:
    return sorted({fill.key for fill in fills})


@exact
def outcome_json(outcome: ImportOutcome) -> dict[str, Any]:
    """The outcome as JSON (amounts as strings): per instrument the fills imported, open quantity, open lots,
    average entry and the realized P&L of the trades the import completed; and the totals."""
    counts: dict[InstrumentKey, int] = {}
    for fill in outcome.imported:
        counts[fill.key] = counts.get(fill.key, 0) + 1
    trades: dict[InstrumentKey, list[Trade]] = {}
    for trade in outcome.trades:
        trades.setdefault(trade.key, []).append(trade)
    instruments = [
        {
            "category": p.key.category,
            "symbol": p.key.symbol,
            "leg": p.key.leg,
            "fills": counts.get(p.key, 0),
            "open_qty": plain(p.qty),
            "open_lots": len(p.lots),
            "avg_entry": amount(p.avg_entry),
            "realized": _realized(trades.get(p.key, [])),
        }
        for p in outcome.positions
    ]
    return {
        "dry_run": outcome.dry_run,
        "imported": len(outcome.imported),
        "already_in_books": outcome.already,
        "repeated_in_file": outcome.repeated,
        "skipped": [{"line": row.line, "problem": row.problem} for row in outcome.skipped],
        "instruments": instruments,
        "realized": _realized(list(outcome.trades)),
    }


def _realized(trades: list[Trade]) -> dict[str, Any]:
    return {
        "trades": len(trades),
        "gross": plain(sum((t.gross_pnl for t in trades), ZERO)),
        "fees": plain(sum((t.fees for t in trades), ZERO)),
        "net": plain(sum((t.net_pnl for t in trades), ZERO)),
    }
