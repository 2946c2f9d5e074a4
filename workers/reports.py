"""What runs, the fleet, the books and backfills look like as JSON: the contract scripts and the API rely on.

Quantities and money are decimal strings (negative = short); times are ISO 8601 UTC with a Z. Built from what
``models`` stored (or a backfill's result), rendered by whoever shows them (``cli.render`` for people).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from models.books import PositionGroup, Trade
from models.history import AccountStatus, RunLine, RunRecord
from models.runs import Finding
from models.summaries import AccountSummary
from reconciliation.values import ZERO, Position, exact, plain

if TYPE_CHECKING:
    from workers.backfill import BackfillResult


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, or None."""
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def amount(value: Decimal | None) -> str | None:
    """A decimal as a plain string, or None."""
    return plain(value) if value is not None else None


# --- runs -----------------------------------------------------------------------------------------------------

#: The summary figures of a run that has none stored: failed, unfinished, a backfill, or older than migration 0003.
NO_SUMMARY: dict[str, Any] = dict.fromkeys(
    ("venue_positions", "book_positions", "added", "removed", "adjusted", "venue_value_at_mark", "unvalued_positions")
)


def run_json(record: RunRecord) -> dict[str, Any]:
    """The report of one run, in the documented JSON shape."""
    run = record.run
    positions = [f for f in record.findings if f.subject.startswith("position:")]
    orders = [f for f in record.findings if f.subject.startswith("order:")]
    return {
        "run_id": run.id,
        "bot": record.bot,
        "account": record.account,
        "venue": record.venue,
        "reason": run.reason,
        "status": run.status,
        "dry_run": run.dry_run,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "error": run.error,
        "summary": {
            "matched": run.matched,
            "discrepancies": len(record.findings),
            "actions": len(record.actions),
            **(run.summary if run.summary is not None else NO_SUMMARY),
        },
        "discrepancies": [_position_finding(f) for f in positions],
        "cash": run.cash,
        "orders": [_order_finding(f) for f in orders],
        "actions": [
            {
                "kind": a.kind,
                "subject": a.subject,
                "applied": a.applied,
                "before": a.before,
                "after": a.after,
                "detail": a.detail,
            }
            for a in record.actions
        ],
    }


def _position_finding(finding: Finding) -> dict[str, Any]:
    return {
        "symbol": finding.symbol,
        "category": finding.category,
        "leg": finding.leg,
        "kind": finding.kind,
        "severity": finding.severity,
        "ledger_qty": amount(finding.ledger_value),
        "venue_qty": amount(finding.venue_value),
        "diff_pct": amount(finding.diff_pct),
        "strategy": finding.strategy,
        "outcome": finding.outcome,
        "action": finding.action,
    }


def _order_finding(finding: Finding) -> dict[str, Any]:
    detail = finding.detail or {}
    return {
        "client_order_id": detail.get("client_order_id"),
        "venue_order_id": detail.get("venue_order_id"),
        "symbol": finding.symbol,
        "category": finding.category,
        "leg": finding.leg,
        "side": detail.get("side"),
        "qty": detail.get("qty"),
        "kind": finding.kind,
        "severity": finding.severity,
        "ledger_status": detail.get("ledger_status"),
        "venue_status": detail.get("venue_status"),
        "strategy": finding.strategy,
        "outcome": finding.outcome,
        "action": finding.action,
    }


def runs_json(lines: list[RunLine]) -> list[dict[str, Any]]:
    """A run listing as JSON."""
    return [
        {
            "run_id": line.run_id,
            "bot": line.bot,
            "account": line.account,
            "reason": line.reason,
            "status": line.status,
            "dry_run": line.dry_run,
            "started_at": iso(line.started_at),
            "finished_at": iso(line.finished_at),
            "discrepancies": line.discrepancies,
        }
        for line in lines
    ]


def fleet_json(accounts: list[AccountStatus]) -> list[dict[str, Any]]:
    """Every account's state as JSON."""
    return [
        {
            "bot": a.bot,
            "account": a.account,
            "venue": a.venue,
            "halted": a.halted,
            "halted_reason": a.halted_reason,
            "last_run_id": a.last_run_id,
            "last_status": a.last_status,
            "last_finished_at": iso(a.last_finished_at),
            "open_breaks": a.open_breaks,
        }
        for a in accounts
    ]


def books_json(positions: list[Position], trades: list[Trade], groups: list[PositionGroup]) -> dict[str, Any]:
    """Positions with their lots, completed trades with P&L, realized P&L, and position groups, as JSON."""
    return {
        "positions": [
            {
                "category": p.key.category,
                "symbol": p.key.symbol,
                "leg": p.key.leg,
                "qty": plain(p.qty),
                "avg_entry": amount(p.avg_entry),
                "multiplier": plain(p.lots[0].multiplier) if p.lots else "1",
                "lots": [
                    {
                        "entry_fill_id": lot.entry_fill_id,
                        "side": lot.side.value,
                        "quantity": plain(lot.quantity),
                        "remaining": plain(lot.remaining),
                        "entry_price": plain(lot.entry_price),
                        "entry_time": iso(lot.entry_time),
                        "commission": plain(lot.commission),
                        "source": lot.source.value,
                        "group": lot.group,
                        "multiplier": plain(lot.multiplier),
                    }
                    for lot in p.lots
                ],
            }
            for p in positions
        ],
        "trades": [
            {
                "category": t.category,
                "symbol": t.symbol,
                "leg": t.leg,
                "side": t.side,
                "quantity": plain(t.quantity),
                "entry_price": plain(t.entry_price),
                "exit_price": plain(t.exit_price),
                "entry_time": iso(t.entry_time),
                "exit_time": iso(t.exit_time),
                "gross_pnl": plain(t.gross_pnl),
                "fees": plain(t.fees),
                "net_pnl": plain(t.net_pnl),
                "pnl_pct": plain(t.pnl_pct),
                "status": t.status,
                "exit_reason": t.exit_reason,
                "exit_estimated": t.exit_estimated,
                "entry_fill_id": t.entry_fill_id,
                "exit_fill_id": t.exit_fill_id,
                "multiplier": plain(t.multiplier),
            }
            for t in trades
        ],
        "realized_pnl": realized_pnl_json(trades),
        "groups": [
            {
                "name": g.name,
                "status": g.status,
                "net_entry_credit": plain(g.net_entry_credit),
                "exit_reason": g.exit_reason,
            }
            for g in groups
        ],
    }


@exact
def realized_pnl_json(trades: list[Trade]) -> dict[str, Any]:
    """Realized P&L of completed ``trades``: per instrument (by instrument key) and for the account, full precision.

    The books hold no currency per instrument: the total adds the instruments' P&L as they are, which is
    one currency only when every instrument is quoted in the same one.
    """
    by_key: dict[tuple[str, str, int], list[Trade]] = {}
    for trade in trades:
        by_key.setdefault((trade.category, trade.symbol, trade.leg), []).append(trade)
    return {
        "by_instrument": [
            {"category": category, "symbol": symbol, "leg": leg, **_pnl_sums(group)}
            for (category, symbol, leg), group in sorted(by_key.items())
        ],
        "total": _pnl_sums(trades),
    }


def _pnl_sums(trades: list[Trade]) -> dict[str, Any]:
    """Gross, fees and net summed over ``trades``, how many they are and how many exits were estimated."""
    return {
        "trades": len(trades),
        "estimated_exits": sum(1 for t in trades if t.exit_estimated),
        "gross": plain(sum((t.gross_pnl for t in trades), ZERO)),
        "fees": plain(sum((t.fees for t in trades), ZERO)),
        "net": plain(sum((t.net_pnl for t in trades), ZERO)),
    }


def backfill_json(result: BackfillResult) -> dict[str, Any]:
    """The outcome of a backfill as JSON (amounts as strings, times ISO 8601 UTC with a Z), for the CLI."""
    return {
        "run_id": result.run_id,
        "status": result.status,
        "dry_run": result.dry_run,
        "error": result.error,
        "estimated_exits": result.candidates,
        "backfilled": result.backfilled,
        "not_found": [
            {
                "category": n.trade.key.category,
                "symbol": n.trade.key.symbol,
                "leg": n.trade.key.leg,
                "side": n.trade.side.value,
                "quantity": plain(n.trade.quantity),
                "estimated_exit_price": plain(n.trade.exit_price),
                "estimated_exit_time": n.trade.exit_time.isoformat().replace("+00:00", "Z"),
                "why": n.why,
            }
            for n in result.not_found
        ],
    }


# --- summaries over a window ------------------------------------------------------------------------------------


def summary_json(summaries: list[AccountSummary], since: datetime, until: datetime) -> dict[str, Any]:
    """Each account over the window from ``since`` to ``until``: runs by status, findings, actions, breaks by
    severity, halts, estimated exits and the last run's figures (amounts as strings, times ISO UTC with a Z)."""
    return {
        "since": iso(since),
        "until": iso(until),
        "accounts": [_account_summary(s) for s in summaries],
    }


def _account_summary(s: AccountSummary) -> dict[str, Any]:
    last = s.last_run
    return {
        "bot": s.bot,
        "account": s.account,
        "venue": s.venue,
        "runs": {"total": sum(s.runs.values()), "by_status": dict(sorted(s.runs.items()))},
        "dry_runs": s.dry_runs,
        "discrepancies": s.discrepancies,
        "actions": s.actions,
        "breaks": {
            "opened": dict(sorted(s.breaks_opened.items())),
            "resolved": dict(sorted(s.breaks_resolved.items())),
            "open": dict(sorted(s.breaks_open.items())),
        },
        "halts": s.halts,
        "estimated_exits": {"backfilled": s.exits_backfilled, "still_estimated": s.estimated_exits},
        "last_run": None
        if last is None
        else {
            "run_id": last.run_id,
            "status": last.status,
            "reason": last.reason,
            "started_at": iso(last.started_at),
            "finished_at": iso(last.finished_at),
            "summary": {
                "matched": last.matched,
                "discrepancies": last.discrepancies,
                "actions": last.actions,
                **(last.summary if last.summary is not None else NO_SUMMARY),
            },
        },
    }
