"""Alerts as stored: recorded by a run's transaction (break transitions, a halt, see ``models.breaks``), by the
staleness check, a lost worker or a failed follow-up; delivered once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from models.books import Account, Bot
from models.runs import Alert, Run


@dataclass(frozen=True)
class Delivery:
    """An alert to send, with the names of its account."""

    alert: Alert
    bot: str
    account: str


def undelivered(session: Session, run_id: int | None = None) -> list[Delivery]:
    """Alerts not yet sent (of one run, or all), oldest first."""
    query = (
        select(Alert, Bot.name, Account.name)
        .join(Account, Account.id == Alert.account_id)
        .join(Bot, Bot.id == Account.bot_id)
        .where(Alert.delivered_at.is_(None))
        .order_by(Alert.id)
    )
    if run_id is not None:
        query = query.where(Alert.run_id == run_id)
    return [Delivery(alert, bot, account) for alert, bot, account in session.execute(query)]


def mark_delivered(session: Session, alert_ids: Sequence[int], now: datetime) -> None:
    """Record that these alerts were sent."""
    if alert_ids:
        session.execute(update(Alert).where(Alert.id.in_(alert_ids)).values(delivered_at=now))


def record_run_alert(session: Session, run_id: int, kind: str, severity: str, message: str, now: datetime) -> None:
    """Record one alert about run ``run_id``, on its account (e.g. a follow-up task that failed for good)."""
    account_id = session.execute(select(Run.account_id).where(Run.id == run_id)).scalar_one()
    record_alert(session, account_id, kind, severity, message, now, run_id=run_id)


def record_alert(
    session: Session, account_id: int, kind: str, severity: str, message: str, now: datetime, run_id: int | None = None
) -> None:
    """Record one alert (e.g. a follow-up task that failed)."""
    session.add(
        Alert(account_id=account_id, run_id=run_id, kind=kind, subject="account", severity=severity,
              message=message, created_at=now)
    )  # fmt: skip


def stale_since(session: Session, account_id: int, window: timedelta, now: datetime) -> datetime | None:
    """When the account last had a successful run, if that is longer ago than ``window`` and no staleness
    alert was raised since; None when the account is fresh or already alerted."""
    last_good = session.scalar(
        select(Run.finished_at)
        .where(Run.account_id == account_id, Run.dry_run.is_(False), Run.status.notin_(("failed", "running")))
        .order_by(Run.finished_at.desc())
        .limit(1)
    )
    first = session.scalar(select(Run.started_at).where(Run.account_id == account_id).order_by(Run.id).limit(1))
    reference = last_good or first
    if reference is None or now - reference <= window:
        return None
    already = session.scalar(
        select(exists().where(Alert.account_id == account_id, Alert.kind == "stale", Alert.created_at >= reference))
    )
    return None if already else reference
