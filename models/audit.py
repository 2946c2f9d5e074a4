"""What operators did to an account by hand (halt, resume, trigger): who, when, why and with what outcome.

Recorded in the same transaction as the change it describes, so the audit never claims an action that did not
happen, nor misses one that did.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.accounts import account_id_of
from models.base import Base
from models.types import UTCDateTime

OPERATOR_ACTIONS = ("halt", "resume", "trigger")


class OperatorAction(Base):
    """One operate action on one account, by the name of the token (or person) that asked for it."""

    __tablename__ = "operator_actions"
    __table_args__ = (Index("ix_operator_actions_account_at", "account_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


@dataclass(frozen=True)
class AuditEntry:
    """An operate action as people read it."""

    action: str
    actor: str
    reason: str | None
    outcome: str
    at: datetime


def record_action(
    session: Session, account_id: int, action: str, actor: str, reason: str | None, outcome: str, now: datetime
) -> None:
    """Add an operate action to the account's audit (in the caller's transaction)."""
    if action not in OPERATOR_ACTIONS:
        raise ValueError(f"unknown operate action {action!r}")
    session.add(
        OperatorAction(account_id=account_id, action=action, actor=actor, reason=reason, outcome=outcome, at=now)
    )


def record_trigger_action(
    session: Session, bot: str, account: str, venue: str, actor: str, reason: str, outcome: str, now: datetime
) -> None:
    """Add a trigger to the account's audit in a transaction of its own that does not wait for the disk on
    Postgres (``synchronous_commit = off``): bots trigger after every large fill, and a trigger changes no books, so
    a database crash may lose its last fraction of a second of trigger entries rather than slow every trigger."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit = off"))
    record_action(session, account_id_of(session, bot, account, now, venue), "trigger", actor, reason, outcome, now)


def audit_of(session: Session, account_id: int, limit: int = 50) -> list[AuditEntry]:
    """The account's operate actions, newest first."""
    rows = session.scalars(
        select(OperatorAction)
        .where(OperatorAction.account_id == account_id)
        .order_by(OperatorAction.at.desc(), OperatorAction.id.desc())
        .limit(limit)
    )
    return [AuditEntry(r.action, r.actor, r.reason, r.outcome, r.at) for r in rows]
