"""Alerts: derived once per run from its breaks (opened, escalated, resolved), the halt, staleness; delivered once.

A break that persists raises nothing after it opened: only its transitions are alerts. Deriving is
idempotent (one alert per account, run, kind and subject), so a retried alerts task adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import Session

from models.books import Account, Bot
from models.books import Fill as FillRow
from models.books import Trade as TradeRow
from models.ledger import insert_ignoring_duplicates
from models.runs import Alert, Break, Finding, Run
from reconciliation.findings import Severity


@dataclass(frozen=True)
class Delivery:
    """An alert to send, with the names of its account."""

    alert: Alert
    bot: str
    account: str


def derive_run_alerts(session: Session, run_id: int, now: datetime) -> int:
    """Record the alerts a committed run raises; returns how many are new."""
    run = session.get_one(Run, run_id)
    if run.dry_run or run.status in ("failed", "running"):
        return 0
    rows = [*_transitions(session, run, now)]
    if not rows:
        return 0
    result = session.execute(insert_ignoring_duplicates(session, Alert).returning(Alert.id), rows)
    return len(result.all())


def _transitions(session: Session, run: Run, now: datetime) -> Iterable[dict[str, object]]:
    findings = {f.break_id: f for f in session.scalars(select(Finding).where(Finding.run_id == run.id))}
    touched = session.scalars(
        select(Break).where(
            Break.account_id == run.account_id,
            (Break.last_seen_run_id == run.id) | (Break.resolved_run_id == run.id),
        )
    )
    for found in touched:
        finding = findings.get(found.id)
        if found.first_seen_run_id == run.id and finding is not None:
            yield _alert(run, "break_opened", found, finding.severity, f"{found.kind} {_name(found)}: "
                         f"{finding.action}", now)  # fmt: skip
        elif finding is not None and _escalated(session, found, finding):
            yield _alert(run, "break_escalated", found, finding.severity,
                         f"{found.kind} {_name(found)} is now {finding.severity}", now)  # fmt: skip
        if found.resolved_run_id == run.id:
            how = "resolved by this run" if finding is not None else "no longer seen"
            yield _alert(run, "break_resolved", found, "info", f"{found.kind} {_name(found)}: {how}", now)


def _escalated(session: Session, found: Break, finding: Finding) -> bool:
    previous = session.scalar(
        select(Finding.severity)
        .where(Finding.break_id == found.id, Finding.run_id < finding.run_id)
        .order_by(Finding.run_id.desc())
        .limit(1)
    )
    return previous is not None and Severity(finding.severity).rank > Severity(previous).rank


def _name(found: Break) -> str:
    return found.subject.split(":", 1)[-1]


def _alert(run: Run, kind: str, found: Break, severity: str, message: str, now: datetime) -> dict[str, object]:
    return {
        "account_id": run.account_id,
        "run_id": run.id,
        "kind": kind,
        "subject": found.subject,
        "severity": severity,
        "message": message,
        "created_at": now,
    }


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


def run_resolved_breaks(session: Session, run_id: int) -> bool:
    """True when the run resolved at least one break."""
    return bool(session.scalar(select(exists().where(Break.resolved_run_id == run_id))))


def run_made_estimates(session: Session, run_id: int) -> bool:
    """True when the run closed lots at an estimated exit price (a backfill may replace it)."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    and_(
                        TradeRow.exit_estimated.is_(True),
                        FillRow.fill_id == TradeRow.exit_fill_id,
                        FillRow.account_id == TradeRow.account_id,
                        FillRow.run_id == run_id,
                    )
                )
            )
        )
    )
