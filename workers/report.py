"""Reports: runs, the fleet and the books as JSON (a contract scripts rely on) and as readable tables.

Quantities and money in JSON are decimal strings (negative = short); times are ISO 8601 UTC with a Z.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from models.books import PositionGroup, Trade
from models.history import AccountStatus, RunLine, RunRecord
from models.runs import Finding
from reconciliation.values import Position, plain

STATUS_STYLE = {
    "in_sync": "green",
    "resolved": "cyan",
    "warned": "yellow",
    "halted": "bold red",
    "failed": "bold red",
    "running": "dim",
}


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, or None."""
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def amount(value: Decimal | None) -> str | None:
    """A decimal as a plain string, or None."""
    return plain(value) if value is not None else None


# --- runs -----------------------------------------------------------------------------------------------------


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
        "summary": {"matched": run.matched, "discrepancies": len(record.findings), "actions": len(record.actions)},
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


def status_text(status: str | None) -> Text:
    """A run status, coloured."""
    return Text(status or "never run", style=STATUS_STYLE.get(status or "", "dim"))


def run_view(record: RunRecord) -> RenderableType:
    """A readable rendering of one run."""
    report = run_json(record)
    title = Text.assemble(
        (f"run {report['run_id']}  ", "bold"),
        f"{report['bot']}/{report['account']} on {report['venue']}  ",
        status_text(report["status"]),
        (" (dry run)" if report["dry_run"] else "", "magenta"),
        f"  {report['reason']}, {report['started_at']}",
    )
    parts: list[RenderableType] = [title]
    if report["error"]:
        parts.append(Text(f"  error: {report['error']}", style="red"))
    summary = report["summary"]
    parts.append(
        Text(
            f"  matched {summary['matched']}, discrepancies {summary['discrepancies']}, actions {summary['actions']}",
            style="dim",
        )
    )
    if report["discrepancies"]:
        table = Table("instrument", "kind", "severity", "ledger", "venue", "diff %", "strategy", "outcome", box=None)
        for d in report["discrepancies"]:
            table.add_row(
                instrument_name(d["category"], d["symbol"], d["leg"]),
                d["kind"],
                _severity(d["severity"]),
                d["ledger_qty"],
                d["venue_qty"],
                _short_pct(d["diff_pct"]),
                d["strategy"],
                d["outcome"],
            )
        parts.append(table)
    cash = report["cash"]
    if cash:
        expected = cash["expected"] if cash["expected"] is not None else "not set"
        line = f"  cash {cash['currency']}: expected {expected}, venue {cash['venue']}"
        if cash["diff_pct"] is not None:
            line += f", diff {_short_pct(cash['diff_pct'])} % (tolerance {cash['tolerance_pct']} %)"
        if cash["action"]:
            line += f" -> {cash['strategy']}: {cash['action']}"
        parts.append(Text(line, style="yellow" if cash["severity"] else ""))
    if report["orders"]:
        table = Table("order", "symbol", "kind", "books", "venue", "strategy", "outcome", box=None)
        for o in report["orders"]:
            table.add_row(
                o["client_order_id"] or o["venue_order_id"],
                o["symbol"],
                o["kind"],
                o["ledger_status"] or "-",
                o["venue_status"] or "-",
                o["strategy"],
                o["outcome"],
            )
        parts.append(table)
    if report["actions"]:
        parts.append(Text("  actions:", style="bold"))
        for a in report["actions"]:
            mark = "" if a["applied"] else " (not applied)"
            parts.append(Text(f"   - {a['kind']} {a['subject']}: {a['detail']}{mark}"))
    return Group(*parts)


def instrument_name(category: str, symbol: str, leg: int) -> str:
    """``category:symbol``, with ``:leg`` only for hedge-mode legs."""
    return f"{category}:{symbol}" + (f":{leg}" if leg else "")


def _severity(severity: str) -> Text:
    return Text(severity, style={"critical": "red", "moderate": "yellow"}.get(severity, ""))


def _short_pct(pct: str | None) -> str:
    return f"{Decimal(pct):.2f}" if pct is not None else "-"


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


def runs_view(lines: list[RunLine]) -> RenderableType:
    """A run listing as a table."""
    table = Table("run", "bot", "account", "reason", "status", "discrepancies", "started (UTC)", box=None)
    for line in lines:
        status = status_text(line.status)
        if line.dry_run:
            status.append(" (dry)", style="magenta")
        table.add_row(
            str(line.run_id), line.bot, line.account, line.reason, status, str(line.discrepancies), iso(line.started_at)
        )
    return table


# --- fleet ----------------------------------------------------------------------------------------------------


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


def fleet_view(accounts: list[AccountStatus]) -> RenderableType:
    """Every account's state as a table."""
    table = Table("bot", "account", "venue", "last run", "status", "open breaks", "halted", box=None)
    for a in accounts:
        halted = Text(f"HALTED: {a.halted_reason}", style="bold red") if a.halted else Text("no", style="green")
        table.add_row(
            a.bot,
            a.account,
            a.venue,
            str(a.last_run_id or "-"),
            status_text(a.last_status),
            str(a.open_breaks),
            halted,
        )
    return table


# --- books ----------------------------------------------------------------------------------------------------


def books_json(positions: list[Position], trades: list[Trade], groups: list[PositionGroup]) -> dict[str, Any]:
    """Positions with their lots, completed trades with P&L, and position groups, as JSON."""
    return {
        "positions": [
            {
                "category": p.key.category,
                "symbol": p.key.symbol,
                "leg": p.key.leg,
                "qty": plain(p.qty),
                "avg_entry": amount(p.avg_entry),
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
            }
            for t in trades
        ],
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


def books_view(document: dict[str, Any]) -> RenderableType:
    """The books as tables: positions with lots, completed trades, groups."""
    parts: list[RenderableType] = []
    positions = Table("instrument", "qty", "avg entry", "lots (remaining @ price, source)", box=None, title="positions")
    for p in document["positions"]:
        lots = ", ".join(f"{lot['remaining']} @ {lot['entry_price']} ({lot['source']})" for lot in p["lots"])
        positions.add_row(instrument_name(p["category"], p["symbol"], p["leg"]), p["qty"], _money(p["avg_entry"]), lots)
    parts.append(positions if document["positions"] else Text("no open positions", style="dim"))
    if document["trades"]:
        trades = Table(
            "instrument",
            "side",
            "qty",
            "entry",
            "exit",
            "net P&L",
            "P&L %",
            "status",
            "reason",
            box=None,
            title="completed trades",
        )
        for t in document["trades"]:
            exit_price = t["exit_price"] + (" (est.)" if t["exit_estimated"] else "")
            trades.add_row(
                f"{t['category']}:{t['symbol']}:{t['leg']}",
                t["side"],
                t["quantity"],
                t["entry_price"],
                exit_price,
                _money(t["net_pnl"]),
                _short_pct(t["pnl_pct"]),
                t["status"],
                t["exit_reason"] or "",
            )
        parts.append(trades)
    if document["groups"]:
        groups = Table("group", "status", "net entry credit", "exit reason", box=None, title="position groups")
        for g in document["groups"]:
            groups.add_row(g["name"], g["status"], _money(g["net_entry_credit"]), g["exit_reason"] or "")
        parts.append(groups)
    return Group(*parts)


def _money(value: str | None) -> str:
    return f"{Decimal(value):,.2f}" if value is not None else "-"


def print_json(console: Console, document: Any) -> None:
    """Print ``document`` as JSON without colour or wrapping, so scripts can parse it."""
    console.file.write(json.dumps(document, indent=2) + "\n")
