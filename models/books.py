"""Tables of the books: bots, accounts, fills, lots, completed trades, position groups, pending orders, cash."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.types import Amount, UTCDateTime


class Bot(Base):
    """A trading program that owns books."""

    __tablename__ = "bots"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Account(Base):
    """One bot's account at one venue. ``epoch`` fences off runs that lost the account to a newer run."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("bot_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bots.id"))
    name: Mapped[str] = mapped_column(String(64))
    venue: Mapped[str] = mapped_column(String(32))
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    halted: Mapped[bool] = mapped_column(Boolean, default=False)
    halted_reason: Mapped[str | None] = mapped_column(Text)
    halted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Fill(Base):
    """One execution in the books. The venue fill id is unique per account: recording it twice is a no-op."""

    __tablename__ = "fills"
    __table_args__ = (
        UniqueConstraint("account_id", "fill_id"),
        Index("ix_fills_account_instrument", "account_id", "category", "symbol", "leg"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    fill_id: Mapped[str] = mapped_column(String(128))
    order_id: Mapped[str | None] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    leg: Mapped[int] = mapped_column(Integer)
    side: Mapped[str] = mapped_column(String(8))
    qty: Mapped[Decimal] = mapped_column(Amount())
    price: Mapped[Decimal] = mapped_column(Amount())
    fee: Mapped[Decimal] = mapped_column(Amount())
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    group_name: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    estimated: Mapped[bool] = mapped_column(Boolean)
    multiplier: Mapped[Decimal] = mapped_column(Amount(), server_default="1")
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PositionGroup(Base):
    """A multi-leg position (e.g. an option spread). Net entry credit: short legs credit, long legs debit."""

    __tablename__ = "position_groups"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24))
    net_entry_credit: Mapped[Decimal] = mapped_column(Amount())
    exit_reason: Mapped[str | None] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Lot(Base):
    """A FIFO position entry, long or short, identified per account by the fill that opened it."""

    __tablename__ = "lots"
    __table_args__ = (
        UniqueConstraint("account_id", "entry_fill_id"),
        Index("ix_lots_account_status", "account_id", "status"),
        Index("ix_lots_account_instrument", "account_id", "category", "symbol", "leg"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    category: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    leg: Mapped[int] = mapped_column(Integer)
    side: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal] = mapped_column(Amount())
    remaining: Mapped[Decimal] = mapped_column(Amount())
    entry_price: Mapped[Decimal] = mapped_column(Amount())
    entry_time: Mapped[datetime] = mapped_column(UTCDateTime())
    entry_fill_id: Mapped[str] = mapped_column(String(128))
    commission: Mapped[Decimal] = mapped_column(Amount())
    source: Mapped[str] = mapped_column(String(16))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("position_groups.id"))
    status: Mapped[str] = mapped_column(String(24))
    exit_reason: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    multiplier: Mapped[Decimal] = mapped_column(Amount(), server_default="1")


class Trade(Base):
    """A completed trade: part or all of one lot closed by one fill, with its P&L."""

    __tablename__ = "trades"
    __table_args__ = (UniqueConstraint("account_id", "entry_fill_id", "exit_fill_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"))
    category: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    leg: Mapped[int] = mapped_column(Integer)
    side: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal] = mapped_column(Amount())
    entry_fill_id: Mapped[str] = mapped_column(String(128))
    exit_fill_id: Mapped[str] = mapped_column(String(128))
    entry_price: Mapped[Decimal] = mapped_column(Amount())
    exit_price: Mapped[Decimal] = mapped_column(Amount())
    entry_time: Mapped[datetime] = mapped_column(UTCDateTime())
    exit_time: Mapped[datetime] = mapped_column(UTCDateTime())
    gross_pnl: Mapped[Decimal] = mapped_column(Amount())
    fees: Mapped[Decimal] = mapped_column(Amount())
    net_pnl: Mapped[Decimal] = mapped_column(Amount())
    pnl_pct: Mapped[Decimal] = mapped_column(Amount())
    status: Mapped[str] = mapped_column(String(24))
    exit_reason: Mapped[str | None] = mapped_column(Text)
    exit_estimated: Mapped[bool] = mapped_column(Boolean)
    multiplier: Mapped[Decimal] = mapped_column(Amount(), server_default="1")


class PendingOrder(Base):
    """An order the bot placed (or reconciliation adopted), with its last known status."""

    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("account_id", "client_order_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    client_order_id: Mapped[str | None] = mapped_column(String(128))
    venue_order_id: Mapped[str | None] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    leg: Mapped[int] = mapped_column(Integer)
    side: Mapped[str] = mapped_column(String(8))
    qty: Mapped[Decimal] = mapped_column(Amount())
    price: Mapped[Decimal | None] = mapped_column(Amount())
    status: Mapped[str] = mapped_column(String(24))
    source: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExpectedCash(Base):
    """The cash a bot expects its account to hold."""

    __tablename__ = "expected_cash"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(16))
    balance: Mapped[Decimal] = mapped_column(Amount())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
