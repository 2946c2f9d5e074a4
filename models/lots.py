"""Open lots: read as engine values, with the row ids and group names needed to write them back."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, and_, bindparam, or_, select
from sqlalchemy.orm import Session

from models import books as tables
from reconciliation.fifo import position_of
from reconciliation.values import (
    InstrumentKey,
    Lot,
    LotSide,
    Position,
    PositionStatus,
    Source,
)

OPEN = PositionStatus.OPEN.value
LOTS = cast(Table, tables.Lot.__table__)
GROUPS = cast(Table, tables.PositionGroup.__table__)


def key_of(row: Any) -> InstrumentKey:
    """The instrument key of a row with category, symbol and leg columns."""
    return InstrumentKey(row.category, row.symbol, row.leg)


@dataclass
class OpenLots:
    """Open lots of an account as engine values, with the row ids needed to write them back and the ids of the
    position groups known so far (those of the lots read; writing a fill of another group looks it up)."""

    by_key: dict[InstrumentKey, tuple[Lot, ...]]
    ids: dict[str, int]
    group_ids: dict[str, int]

    def position(self, key: InstrumentKey) -> Position:
        """The current position on ``key``."""
        return position_of(key, self.by_key.get(key, ()))


def load_open_lots(
    session: Session,
    account_id: int,
    keys: Iterable[InstrumentKey] | None = None,
    groups: Iterable[str] = (),
) -> OpenLots:
    """Open lots of the account, oldest first: all of them (one query), or those on ``keys`` and in ``groups``."""
    condition: ColumnElement[bool] = and_(LOTS.c.account_id == bindparam("account_id"), LOTS.c.status == OPEN)
    wanted_keys: set[InstrumentKey] | None = None
    wanted_groups: set[int] = set()
    group_ids: dict[str, int] = {}
    query = _ALL_OPEN_LOTS
    if keys is not None:
        group_ids = load_group_ids(session, account_id)
        wanted_keys = set(keys)
        wanted_groups = {group_ids[g] for g in groups if g in group_ids}
        if not wanted_keys and not wanted_groups:
            return OpenLots({}, {}, group_ids)
        # symbol IN (...) is hashed by Postgres; a (category, symbol, leg) IN list is not. Exact keys below.
        condition = and_(
            condition,
            or_(LOTS.c.symbol.in_(sorted({k.symbol for k in wanted_keys})), LOTS.c.group_id.in_(sorted(wanted_groups))),
        )
        query = _open_lots_where(condition)
    interned: dict[tuple[str, str, int], InstrumentKey] = {}
    by_key: dict[InstrumentKey, list[Lot]] = defaultdict(list)
    ids: dict[str, int] = {}
    for row in session.execute(query, {"account_id": account_id}):
        lot_id, category, symbol, leg, side, quantity, remaining, price, time, fill_id, fee, source, group_id = row[:13]
        multiplier, group = row[13], row[14]
        key = interned.setdefault((category, symbol, leg), InstrumentKey(category, symbol, leg))
        if wanted_keys is not None and key not in wanted_keys and group_id not in wanted_groups:
            continue
        if group is not None:
            group_ids[group] = group_id
        lot = Lot(fill_id, key, _LOT_SIDES[side], quantity, remaining, price, time, fee, _SOURCES[source], group,
                  multiplier)  # fmt: skip
        by_key[key].append(lot)
        ids[fill_id] = lot_id
    return OpenLots({k: tuple(v) for k, v in by_key.items()}, ids, group_ids)


_LOT_COLUMNS = (
    "category", "symbol", "leg", "side", "quantity", "remaining", "entry_price", "entry_time", "entry_fill_id",
    "commission", "source", "group_id", "multiplier",
)  # fmt: skip
_LOT_SIDES = {side.value: side for side in LotSide}


def _open_lots_where(condition: ColumnElement[bool]) -> Select[Any]:
    columns = (LOTS.c.id, *(LOTS.c[name] for name in _LOT_COLUMNS), GROUPS.c.name)
    query = select(*columns).outerjoin(GROUPS, GROUPS.c.id == LOTS.c.group_id).where(condition)
    return query.order_by(LOTS.c.entry_time, LOTS.c.id)


# Built once: a run reads every open lot of its account each time, and building a statement costs more than
# running it.
_ALL_OPEN_LOTS = _open_lots_where(and_(LOTS.c.account_id == bindparam("account_id"), LOTS.c.status == OPEN))
_SOURCES = {source.value: source for source in Source}


def load_group_ids(session: Session, account_id: int) -> dict[str, int]:
    """Every position group of the account: its id by name."""
    rows = session.execute(
        select(tables.PositionGroup.name, tables.PositionGroup.id).where(tables.PositionGroup.account_id == account_id)
    )
    return {name: gid for name, gid in rows}
