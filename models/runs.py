"""Tables of what reconciliation saw and did: runs, findings, actions, breaks and alerts."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.types import Amount, UTCDateTime


class Run(Base):
    """One reconciliation of one account: why it ran, what it saw, how it ended."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_account_started", "account_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    reason: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    dry_run: Mapped[bool] = mapped_column(Boolean)
    epoch: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    snapshot_as_of: Mapped[datetime | None] = mapped_column(UTCDateTime())
    matched: Mapped[int] = mapped_column(Integer, default=0)
    cash: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    #: position counts and value at mark, as ``summary_json`` writes them; null for a failed or unfinished run,
    #: a backfill, and runs recorded before migration 0003
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Finding(Base):
    """One discrepancy seen in a run (position, cash or order), with the strategy chosen and its outcome."""

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    break_id: Mapped[int | None] = mapped_column(ForeignKey("breaks.id"))
    subject: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(32))
    symbol: Mapped[str | None] = mapped_column(String(64))
    leg: Mapped[int | None] = mapped_column(Integer)
    ledger_value: Mapped[Decimal | None] = mapped_column(Amount())
    venue_value: Mapped[Decimal | None] = mapped_column(Amount())
    diff_pct: Mapped[Decimal | None] = mapped_column(Amount())
    strategy: Mapped[str] = mapped_column(String(24))
    outcome: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Action(Base):
    """One change reconciliation made (or, in a dry run, would make), with the state before and after."""

    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    finding_id: Mapped[int | None] = mapped_column(ForeignKey("findings.id"))
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(256))
    applied: Mapped[bool] = mapped_column(Boolean)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    detail: Mapped[str] = mapped_column(Text)


class Break(Base):
    """The same discrepancy across consecutive runs: open until a run no longer sees it."""

    __tablename__ = "breaks"
    __table_args__ = (Index("ix_breaks_account_open", "account_id", "resolved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    subject: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    first_seen_run_id: Mapped[int] = mapped_column(Integer)
    last_seen_run_id: Mapped[int] = mapped_column(Integer)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    occurrences: Mapped[int] = mapped_column(Integer)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_run_id: Mapped[int | None] = mapped_column(Integer)


class Alert(Base):
    """Something people or bots must hear about, e.g. an account halted by reconciliation."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("account_id", "run_id", "kind", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(256), default="account")
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
