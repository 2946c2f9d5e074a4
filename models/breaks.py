"""Findings, breaks and their alerts: what one run saw, written in the run's transaction.

A finding is one discrepancy of one run. A break is the same discrepancy across consecutive runs: extended
while seen, resolved when a run resolves it or no longer sees it. The alerts are the breaks' transitions
(opened, escalated, resolved), recorded here, once, in the same transaction: a break that persists raises
nothing after it opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from models.runs import Alert, Break, Finding
from reconciliation.findings import CashFinding, OrderDiscrepancy, PositionDiscrepancy, Severity
from reconciliation.plan import Decision, Plan, Resolution
from reconciliation.values import Order, plain

BREAKS = cast(Table, Break.__table__)
FINDINGS = cast(Table, Finding.__table__)
ALERTS = cast(Table, Alert.__table__)
_OPEN_BREAKS = select(BREAKS.c.id, BREAKS.c.subject, BREAKS.c.kind, BREAKS.c.severity, BREAKS.c.occurrences).where(
    BREAKS.c.account_id == bindparam("account_id"), BREAKS.c.resolved_at.is_(None)
)


@dataclass(frozen=True)
class BreakChanges:
    """The subjects whose breaks this run opened, escalated and resolved, and the alerts they raised."""

    opened: tuple[str, ...] = ()
    escalated: tuple[str, ...] = ()
    resolved: tuple[str, ...] = ()
    alerts: int = 0


def order_json(order: Order) -> dict[str, Any]:
    """An order as the reports show it (amounts as strings)."""
    return {
        "client_order_id": order.client_order_id,
        "venue_order_id": order.venue_order_id,
        "symbol": order.key.symbol,
        "side": order.side.value,
        "qty": plain(order.qty),
        "price": plain(order.price) if order.price is not None else None,
        "status": order.status.value,
    }


def record_findings(
    session: Session, run_id: int, account_id: int, plan: Plan, now: datetime, dry_run: bool
) -> tuple[dict[int | None, int | None], BreakChanges]:
    """Insert the run's findings, linked to their breaks unless dry; returns the finding id per decision index,
    and what became of the account's breaks (a dry run changes none)."""
    rows = [_finding_row(run_id, d) for d in plan.decisions]
    changes = BreakChanges()
    if not dry_run:
        break_ids, changes = _update_breaks(session, account_id, run_id, plan.decisions, now)
        for row in rows:
            row["break_id"] = break_ids[row["subject"]]
    ids: dict[int | None, int | None] = {None: None}
    if rows:
        # One finding per subject per run, so ids are matched by subject: asking for RETURNING in parameter
        # order would make SQLite insert row by row.
        inserted = session.execute(FINDINGS.insert().returning(FINDINGS.c.subject, FINDINGS.c.id), rows)
        by_subject = {subject: finding_id for subject, finding_id in inserted}
        ids.update((index, by_subject[d.finding.subject]) for index, d in enumerate(plan.decisions))
    return ids, changes


def _severity(decision: Decision) -> str:
    severity = decision.finding.severity
    return severity.value if severity else Severity.MINOR.value


def _finding_row(run_id: int, decision: Decision) -> dict[str, Any]:
    finding = decision.finding
    row: dict[str, Any] = {
        "run_id": run_id,
        "subject": finding.subject,
        "kind": finding.kind.value,
        "severity": _severity(decision),
        "strategy": decision.strategy.value,
        "outcome": decision.outcome.value,
        "action": decision.action,
        "category": None,
        "symbol": None,
        "leg": None,
        "ledger_value": None,
        "venue_value": None,
        "diff_pct": None,
        "detail": None,
        "break_id": None,
    }
    if isinstance(finding, PositionDiscrepancy):
        key = finding.key
        row.update(category=key.category, symbol=key.symbol, leg=key.leg, ledger_value=finding.ledger_qty)
        row.update(venue_value=finding.venue_qty, diff_pct=finding.diff_pct)
    elif isinstance(finding, CashFinding):
        row.update(ledger_value=finding.expected, venue_value=finding.venue, diff_pct=finding.diff_pct)
        row.update(detail={"currency": finding.currency})
    elif isinstance(finding, OrderDiscrepancy):
        order = finding.order
        row.update(category=order.key.category, symbol=order.key.symbol, leg=order.key.leg)
        row.update(
            detail={
                **order_json(order),
                "ledger_status": finding.ledger.status.value if finding.ledger else None,
                "venue_status": finding.venue.status.value if finding.venue else None,
            }
        )
    return row


def _name(subject: str) -> str:
    return subject.split(":", 1)[-1]


def _update_breaks(
    session: Session, account_id: int, run_id: int, decisions: Sequence[Decision], now: datetime
) -> tuple[dict[str, int], BreakChanges]:
    """Extend, open and resolve breaks for what this run saw, and record their transitions as alerts."""
    open_breaks = {row.subject: row for row in session.execute(_OPEN_BREAKS, {"account_id": account_id})}
    seen = {d.finding.subject: d for d in decisions}
    resolved_now = {s for s, d in seen.items() if d.outcome is Resolution.RESOLVED}
    alerts: list[dict[str, Any]] = []

    def alert(kind: str, subject: str, break_kind: str, severity: str, message: str) -> None:
        alerts.append({"account_id": account_id, "run_id": run_id, "kind": kind, "subject": subject,
                       "severity": severity, "message": f"{break_kind} {_name(subject)}{message}",
                       "created_at": now, "delivered_at": None})  # fmt: skip

    extended, escalated = [], []
    for subject, decision in seen.items():
        if subject not in open_breaks:
            continue
        found = open_breaks[subject]
        severity = _severity(decision)
        if Severity(severity).rank > Severity(found.severity).rank:
            escalated.append(subject)
            alert("break_escalated", subject, decision.finding.kind.value, severity, f" is now {severity}")
        extended.append({
            "break_id": found.id, "kind": decision.finding.kind.value, "severity": severity,
            "last_seen_run_id": run_id, "last_seen_at": now, "occurrences": found.occurrences + 1,
            "resolved_at": now if subject in resolved_now else None,
            "resolved_run_id": run_id if subject in resolved_now else None,
        })  # fmt: skip
    gone = [
        {"break_id": b.id, "resolved_at": now, "resolved_run_id": run_id}
        for s, b in open_breaks.items()
        if s not in seen
    ]
    if extended:
        session.connection().execute(update(BREAKS).where(BREAKS.c.id == bindparam("break_id")), extended)
    if gone:
        session.connection().execute(update(BREAKS).where(BREAKS.c.id == bindparam("break_id")), gone)
    ids = {s: b.id for s, b in open_breaks.items() if s in seen}
    opened = [s for s in seen if s not in open_breaks]
    new = [
        {
            "account_id": account_id, "subject": s, "kind": seen[s].finding.kind.value, "severity": _severity(seen[s]),
            "first_seen_run_id": run_id, "last_seen_run_id": run_id, "first_seen_at": now, "last_seen_at": now,
            "occurrences": 1, "resolved_at": now if s in resolved_now else None,
            "resolved_run_id": run_id if s in resolved_now else None,
        }
        for s in opened
    ]  # fmt: skip
    if new:
        inserted = session.execute(BREAKS.insert().returning(BREAKS.c.id, BREAKS.c.subject), new)
        ids.update({subject: break_id for break_id, subject in inserted})
    for subject in opened:
        decision = seen[subject]
        alert("break_opened", subject, decision.finding.kind.value, _severity(decision), f": {decision.action}")
    resolved = [s for s in seen if s in resolved_now] + [s for s in open_breaks if s not in seen]
    for subject in resolved:
        kind = seen[subject].finding.kind.value if subject in seen else open_breaks[subject].kind
        how = "resolved by this run" if subject in seen else "no longer seen"
        alert("break_resolved", subject, kind, "info", f": {how}")
    if alerts:
        session.execute(ALERTS.insert(), alerts)
    changes = BreakChanges(tuple(opened), tuple(escalated), tuple(resolved), len(alerts))
    return ids, changes
