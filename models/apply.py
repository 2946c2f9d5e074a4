"""Writing one run's plan: books, findings, breaks, actions and the run's outcome, in ONE transaction.

The transaction first locks the account and checks the run still owns it (fencing epoch): a run that lost
the account writes nothing. It then re-reads what it will change (lots, expected cash, order statuses); a
decision planned on books that changed since (a bot recorded a fill meanwhile) is deferred rather than
applied to books it did not see. A dry run computes the same actions against the same lots and writes only
the run, its findings and its (unapplied) actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from models import books as tables
from models import ledger
from models.runs import Action, Alert, Break, Finding, Run
from reconciliation.errors import StaleRun
from reconciliation.fifo import apply_fill
from reconciliation.findings import CashFinding, OrderDiscrepancy, PositionDiscrepancy
from reconciliation.plan import (
    AdoptOrder,
    BookFill,
    CancelOrder,
    CloseGroup,
    Decision,
    Effect,
    Outcome,
    PlaceOrder,
    Plan,
    SetExpectedCash,
    SetOrderStatus,
)
from reconciliation.values import ZERO, Cash, Position, PositionStatus, Source, plain

ACTIONS = cast(Table, Action.__table__)
BREAKS = cast(Table, Break.__table__)
FINDINGS = cast(Table, Finding.__table__)
GROUPS = cast(Table, tables.PositionGroup.__table__)
MOVED = "deferred: the books changed during the run"


@dataclass(frozen=True)
class AppliedRun:
    """The plan as finally carried out (decisions may have been deferred), the run's status, and whether the
    account is halted after it (by an operator before, or by this plan; in a dry run: would be)."""

    plan: Plan
    status: str
    halted: bool


def apply_run(
    session: Session,
    *,
    account_id: int,
    run_id: int,
    epoch: int,
    plan: Plan,
    now: datetime,
    dry_run: bool,
    snapshot_as_of: datetime | None = None,
) -> AppliedRun:
    """Carry out ``plan`` for run ``run_id`` and record everything about it. The caller commits."""
    account = ledger.lock_account(session, account_id)
    if not dry_run and account.epoch != epoch:
        raise StaleRun(f"run {run_id} lost the account to a newer run (epoch {epoch} < {account.epoch})")
    current = _Current.read(session, account_id, plan)
    plan = replace(plan, decisions=tuple(current.recheck(d) for d in plan.decisions))
    if account.halted and not dry_run:
        plan = replace(plan, decisions=tuple(_already_halted(d, account.halted_reason) for d in plan.decisions))
    writer = _Writer(session, account, run_id, now, dry_run)
    rows = writer.carry_out(plan, current.lots)
    if plan.halt_reason and not dry_run and not account.halted:
        rows.append(writer.halt(plan.halt_reason))
    finding_ids = _record_findings(session, run_id, account_id, plan, now, dry_run)
    if rows:
        session.execute(
            ACTIONS.insert(),
            [{**row, "run_id": run_id, "finding_id": finding_ids[row.pop("decision")]} for row in rows],
        )
    run = session.get_one(Run, run_id)
    run.status = plan.status.value
    run.finished_at = now
    run.matched = len(plan.matched)
    run.cash = cash_json(plan)
    run.snapshot_as_of = snapshot_as_of
    return AppliedRun(plan=plan, status=run.status, halted=account.halted or plan.halt_reason is not None)


@dataclass(frozen=True)
class _Current:
    """The books a plan will change, as they are now, read under the account lock in a constant number of queries."""

    lots: ledger.OpenLots
    cash: Cash | None
    order_statuses: dict[str, str]

    @classmethod
    def read(cls, session: Session, account_id: int, plan: Plan) -> _Current:
        effects = [e for d in plan.decisions for e in d.effects]
        keys = {e.fill.key for e in effects if isinstance(e, BookFill)} | {
            e.key for e in effects if isinstance(e, PlaceOrder)
        }
        names = {_order_name(e.order) for e in effects if isinstance(e, SetOrderStatus | AdoptOrder)}
        row = (
            session.get(tables.ExpectedCash, account_id)
            if any(isinstance(e, SetExpectedCash) for e in effects)
            else None
        )
        return cls(
            lots=ledger.load_open_lots(session, account_id, keys=keys),
            cash=Cash(row.currency, row.balance) if row else None,
            order_statuses=ledger.order_statuses(session, account_id, names) if names else {},
        )

    def recheck(self, decision: Decision) -> Decision:
        """``decision`` if the books it was planned on are unchanged, else the same decision deferred."""
        if not decision.effects or self._unchanged(decision):
            return decision
        return replace(decision, outcome=Outcome.DEFERRED, action=MOVED, effects=())

    def _unchanged(self, decision: Decision) -> bool:
        finding = decision.finding
        if isinstance(finding, PositionDiscrepancy):
            return self.lots.position(finding.key).qty == finding.ledger_qty
        if isinstance(finding, CashFinding):
            return self.cash == Cash(finding.expected_currency or "", finding.expected or ZERO)
        if isinstance(finding, OrderDiscrepancy):
            status = self.order_statuses.get(_order_name(finding.order))
            return status == (finding.ledger.status.value if finding.ledger else None)
        return True


def _order_name(order: Any) -> str:
    return str(order.client_order_id or order.venue_order_id)


def _already_halted(decision: Decision, reason: str | None) -> Decision:
    if decision.outcome is not Outcome.HALTED:
        return decision
    return replace(decision, action=f"account already halted ({reason})")


def _position_json(position: Position) -> dict[str, Any]:
    return {
        "qty": plain(position.qty),
        "avg_entry": plain(position.avg_entry) if position.avg_entry is not None else None,
    }


class _Writer:
    """Carries out effects and describes each as an action row (state before and after)."""

    def __init__(self, session: Session, account: tables.Account, run_id: int, now: datetime, dry_run: bool) -> None:
        self.session = session
        self.account = account
        self.run_id = run_id
        self.now = now
        self.dry_run = dry_run

    def carry_out(self, plan: Plan, lots: ledger.OpenLots) -> list[dict[str, Any]]:
        rows = self._book_fills(plan, lots)
        closed_groups: set[str] = set()
        for index, decision in enumerate(plan.decisions):
            for effect in decision.effects:
                if isinstance(effect, BookFill):
                    continue
                if isinstance(effect, CloseGroup):
                    if effect.group in closed_groups:
                        continue
                    closed_groups.add(effect.group)
                rows.append({"decision": index, **self._other(effect)})
        return rows

    def _book_fills(self, plan: Plan, lots: ledger.OpenLots) -> list[dict[str, Any]]:
        indexed = [
            (index, effect)
            for index, decision in enumerate(plan.decisions)
            for effect in decision.effects
            if isinstance(effect, BookFill)
        ]
        fills = [(effect.fill, Source.RECONCILIATION) for _, effect in indexed]
        if self.dry_run:
            results = _preview(fills, lots)
        else:
            results = ledger.write_fills(self.session, self.account.id, fills, lots, self.now, self.run_id)
        return [
            {
                "decision": index,
                "kind": "record_venue_fill" if effect.from_venue else "correct_position",
                "subject": f"position:{result.fill.key}",
                "applied": result.recorded and not self.dry_run,
                "before": _position_json(result.before),
                "after": _position_json(result.after),
                "detail": _fill_detail(result.fill, result.recorded),
            }
            for (index, effect), result in zip(indexed, results, strict=True)
        ]

    def _other(self, effect: Effect) -> dict[str, Any]:
        if isinstance(effect, CloseGroup):
            return self._close_group(effect)
        if isinstance(effect, SetExpectedCash):
            return self._set_cash(effect.cash)
        if isinstance(effect, SetOrderStatus):
            return self._set_order_status(effect)
        if isinstance(effect, AdoptOrder):
            return self._adopt_order(effect)
        if isinstance(effect, PlaceOrder | CancelOrder):
            return _planned_order(effect)
        raise TypeError(f"unknown effect {effect!r}")

    def _close_group(self, effect: CloseGroup) -> dict[str, Any]:
        status = self.session.scalar(
            select(tables.PositionGroup.status).where(
                tables.PositionGroup.account_id == self.account.id, tables.PositionGroup.name == effect.group
            )
        )
        after = PositionStatus.CLOSED_EXTERNALLY.value if status == PositionStatus.OPEN.value else status
        if not self.dry_run and status == PositionStatus.OPEN.value:
            self.session.execute(
                update(GROUPS)
                .where(GROUPS.c.account_id == self.account.id, GROUPS.c.name == effect.group)
                .values(status=after, exit_reason=effect.reason, closed_at=self.now)
            )
        return {
            "kind": "close_group",
            "subject": f"group:{effect.group}",
            "applied": not self.dry_run and status == PositionStatus.OPEN.value,
            "before": {"status": status},
            "after": {"status": after, "exit_reason": effect.reason},
            "detail": f"group {effect.group} {after}: {effect.reason}",
        }

    def _set_cash(self, cash: Cash) -> dict[str, Any]:
        row = self.session.get(tables.ExpectedCash, self.account.id)
        before = {"currency": row.currency, "balance": plain(row.balance)} if row else None
        if not self.dry_run:
            ledger.set_expected_cash(self.session, self.account.id, cash, self.now)
        return {
            "kind": "set_expected_cash",
            "subject": "cash",
            "applied": not self.dry_run,
            "before": before,
            "after": {"currency": cash.currency, "balance": plain(cash.balance)},
            "detail": f"expected cash set to {plain(cash.balance)} {cash.currency}",
        }

    def _set_order_status(self, effect: SetOrderStatus) -> dict[str, Any]:
        if not self.dry_run:
            ledger.set_order_status(self.session, self.account.id, effect.order, effect.status, self.now)
        name = effect.order.client_order_id or effect.order.venue_order_id
        return {
            "kind": "set_order_status",
            "subject": f"order:{name}",
            "applied": not self.dry_run,
            "before": {"status": effect.order.status.value},
            "after": {"status": effect.status.value},
            "detail": f"order {name} status {effect.order.status} -> {effect.status}",
        }

    def _adopt_order(self, effect: AdoptOrder) -> dict[str, Any]:
        if not self.dry_run:
            ledger.record_order(self.session, self.account.id, effect.order, self.now, Source.RECONCILIATION)
        order = effect.order
        name = order.client_order_id or order.venue_order_id
        return {
            "kind": "adopt_order",
            "subject": f"order:{name}",
            "applied": not self.dry_run,
            "before": None,
            "after": _order_json(order),
            "detail": f"adopted venue order {name}: {order.side} {plain(order.qty)} {order.key.symbol}",
        }

    def halt(self, reason: str) -> dict[str, Any]:
        before = {"halted": self.account.halted, "reason": self.account.halted_reason}
        self.account.halted, self.account.halted_reason, self.account.halted_at = True, reason, self.now
        self.session.add(
            Alert(
                account_id=self.account.id,
                run_id=self.run_id,
                kind="halted",
                severity="critical",
                message=f"account halted by reconciliation: {reason}",
                created_at=self.now,
            )
        )
        return {
            "decision": None,
            "kind": "halt",
            "subject": "account",
            "applied": True,
            "before": before,
            "after": {"halted": True, "reason": reason},
            "detail": f"halted: {reason}",
        }


def _preview(fills: Sequence[tuple[Any, Source]], lots: ledger.OpenLots) -> list[ledger.FillResult]:
    """What recording ``fills`` would do, computed on a copy of the lots (dry run)."""
    current = dict(lots.by_key)
    results = []
    for fill, source in fills:
        before = ledger.OpenLots(current, {}, {}).position(fill.key)
        outcome = apply_fill(current.get(fill.key, ()), fill, source)
        current[fill.key] = outcome.lots
        after = ledger.OpenLots(current, {}, {}).position(fill.key)
        results.append(ledger.FillResult(fill, True, before, after, outcome.trades, outcome.opened))
    return results


def _fill_detail(fill: Any, recorded: bool) -> str:
    price = f"{plain(fill.price)}{' (estimated)' if fill.estimated else ''}"
    text = f"{fill.side} {plain(fill.qty)} {fill.key.symbol} @ {price}, fill {fill.fill_id}"
    return text if recorded else text + " (already in the books: nothing changed)"


def _order_json(order: Any) -> dict[str, Any]:
    return {
        "client_order_id": order.client_order_id,
        "venue_order_id": order.venue_order_id,
        "symbol": order.key.symbol,
        "side": order.side.value,
        "qty": plain(order.qty),
        "price": plain(order.price) if order.price is not None else None,
        "status": order.status.value,
    }


def _planned_order(effect: PlaceOrder | CancelOrder) -> dict[str, Any]:
    if isinstance(effect, PlaceOrder):
        detail = (
            f"planned {effect.side} {plain(effect.qty)} {effect.key.symbol}"
            f"{' reduce-only' if effect.reduce_only else ''} as {effect.client_order_id}"
        )
        subject = f"position:{effect.key}"
        after: dict[str, Any] = {
            "side": effect.side.value,
            "qty": plain(effect.qty),
            "reduce_only": effect.reduce_only,
            "client_order_id": effect.client_order_id,
        }
    else:
        name = effect.order.client_order_id or effect.order.venue_order_id
        detail = f"planned cancel of venue order {name}"
        subject, after = f"order:{name}", {"cancel": effect.order.venue_order_id}
    return {
        "kind": "planned_order",
        "subject": subject,
        "applied": False,
        "before": None,
        "after": after,
        "detail": detail,
    }


def cash_json(plan: Plan) -> dict[str, Any] | None:
    """The run's cash finding as JSON (amounts as strings), with the decision taken if it was a discrepancy."""
    cash = plan.cash
    if cash is None:
        return None
    decision = next((d for d in plan.decisions if isinstance(d.finding, CashFinding)), None)
    return {
        "currency": cash.currency,
        "expected_currency": cash.expected_currency,
        "expected": plain(cash.expected) if cash.expected is not None else None,
        "venue": plain(cash.venue),
        "diff_pct": plain(cash.diff_pct) if cash.diff_pct is not None else None,
        "tolerance_pct": plain(cash.tolerance_pct),
        "severity": cash.severity.value if cash.severity else None,
        "strategy": decision.strategy.value if decision else None,
        "outcome": decision.outcome.value if decision else None,
        "action": decision.action if decision else None,
    }


def _finding_row(run_id: int, decision: Decision) -> dict[str, Any]:
    finding = decision.finding
    row: dict[str, Any] = {
        "run_id": run_id,
        "subject": finding.subject,
        "kind": finding.kind.value,
        "severity": finding.severity.value if finding.severity else "minor",
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
                **_order_json(order),
                "ledger_status": finding.ledger.status.value if finding.ledger else None,
                "venue_status": finding.venue.status.value if finding.venue else None,
            }
        )
    return row


def _record_findings(
    session: Session, run_id: int, account_id: int, plan: Plan, now: datetime, dry_run: bool
) -> dict[int | None, int | None]:
    """Insert the run's findings (linked to their breaks unless dry); returns finding id per decision index."""
    rows = [_finding_row(run_id, d) for d in plan.decisions]
    if not dry_run:
        break_ids = _update_breaks(session, account_id, run_id, plan.decisions, now)
        for row in rows:
            row["break_id"] = break_ids[row["subject"]]
    ids: dict[int | None, int | None] = {None: None}
    if rows:
        # One finding per subject per run, so ids are matched by subject: asking for RETURNING in parameter
        # order would make SQLite insert row by row.
        inserted = session.execute(FINDINGS.insert().returning(FINDINGS.c.subject, FINDINGS.c.id), rows)
        by_subject = {subject: finding_id for subject, finding_id in inserted}
        ids.update((index, by_subject[d.finding.subject]) for index, d in enumerate(plan.decisions))
    return ids


def _update_breaks(
    session: Session, account_id: int, run_id: int, decisions: Sequence[Decision], now: datetime
) -> dict[str, int]:
    """Extend, open and resolve breaks for what this run saw; returns the break id per subject seen."""
    open_breaks = {
        b.subject: b
        for b in session.scalars(select(Break).where(Break.account_id == account_id, Break.resolved_at.is_(None)))
    }
    seen = {d.finding.subject: d for d in decisions}
    resolved_now = {s for s, d in seen.items() if d.outcome is Outcome.RESOLVED}
    extended = [
        {
            "break_id": open_breaks[s].id,
            "kind": d.finding.kind.value,
            "severity": (d.finding.severity.value if d.finding.severity else "minor"),
            "last_seen_run_id": run_id,
            "last_seen_at": now,
            "occurrences": open_breaks[s].occurrences + 1,
            "resolved_at": now if s in resolved_now else None,
            "resolved_run_id": run_id if s in resolved_now else None,
        }
        for s, d in seen.items()
        if s in open_breaks
    ]
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
    new = [
        {
            "account_id": account_id,
            "subject": s,
            "kind": d.finding.kind.value,
            "severity": d.finding.severity.value if d.finding.severity else "minor",
            "first_seen_run_id": run_id,
            "last_seen_run_id": run_id,
            "first_seen_at": now,
            "last_seen_at": now,
            "occurrences": 1,
            "resolved_at": now if s in resolved_now else None,
            "resolved_run_id": run_id if s in resolved_now else None,
        }
        for s, d in seen.items()
        if s not in open_breaks
    ]
    if new:
        inserted = session.execute(BREAKS.insert().returning(BREAKS.c.id, BREAKS.c.subject), new)
        ids.update({subject: break_id for break_id, subject in inserted})
    return ids
