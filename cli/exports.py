"""A run's report as a file: plain text as printed, the JSON contract, or CSV rows for spreadsheets.

Every form is built from the JSON contract (``workers.reports.run_json``), so the three say the same thing.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich.console import Console, RenderableType

from reconciliation.errors import FixConfiguration

FORMATS = ("text", "json", "csv")
TEXT_WIDTH = 100  # a report file reads like the terminal it was not printed on

#: the CSV header, documented in docs/reports.md; one row per position finding, cash finding, order finding, action
CSV_COLUMNS = (
    "section", "run_id", "bot", "account", "subject", "category", "symbol", "leg", "kind", "severity",
    "ledger", "venue", "diff_pct", "strategy", "outcome", "applied", "detail", "before", "after",
)  # fmt: skip


def chosen_format(format_name: str | None, as_json: bool) -> str:
    """The output format: ``--format``, else json with ``--json``, else text; a contradiction is a usage error."""
    if format_name is not None and format_name not in FORMATS:
        raise FixConfiguration(f"--format: unknown format {format_name!r}: use {', '.join(FORMATS)}")
    if as_json and format_name not in (None, "json"):
        raise FixConfiguration(f"--json and --format {format_name} disagree: pass one of them")
    return format_name or ("json" if as_json else "text")


def plain_text(renderable: RenderableType, width: int = TEXT_WIDTH) -> str:
    """``renderable`` as plain text ``width`` columns wide: no colour codes, as a pipe would get it."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False, highlight=False)
    console.print(renderable, soft_wrap=True)  # tables fit the width; a long line of prose stays one line
    return "".join(f"{line.rstrip()}\n" for line in buffer.getvalue().splitlines())


def run_csv(report: dict[str, Any]) -> str:
    """A run report (``run_json``) as CSV: ``CSV_COLUMNS``, one row per finding or action, amounts as strings."""
    run = {"run_id": report["run_id"], "bot": report["bot"], "account": report["account"]}
    rows = [_position_row(d) for d in report["discrepancies"]]
    cash = report["cash"]
    if cash and cash["severity"]:
        rows.append(_cash_row(cash))
    rows += [_order_row(o) for o in report["orders"]]
    rows += [_action_row(a) for a in report["actions"]]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**dict.fromkeys(CSV_COLUMNS, ""), **run, **{k: v for k, v in row.items() if v is not None}})
    return buffer.getvalue()


def _position_row(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "section": "position", "subject": f"position:{d['category']}:{d['symbol']}:{d['leg']}",
        "category": d["category"], "symbol": d["symbol"], "leg": d["leg"], "kind": d["kind"],
        "severity": d["severity"], "ledger": d["ledger_qty"], "venue": d["venue_qty"], "diff_pct": d["diff_pct"],
        "strategy": d["strategy"], "outcome": d["outcome"], "detail": d["action"],
    }  # fmt: skip


def _cash_row(cash: dict[str, Any]) -> dict[str, Any]:
    return {
        "section": "cash", "subject": f"cash:{cash['currency']}", "kind": "cash_mismatch",
        "severity": cash["severity"], "ledger": cash["expected"], "venue": cash["venue"],
        "diff_pct": cash["diff_pct"], "strategy": cash["strategy"], "outcome": cash["outcome"],
        "detail": cash["action"],
    }  # fmt: skip


def _order_row(o: dict[str, Any]) -> dict[str, Any]:
    return {
        "section": "order", "subject": _order_subject(o),
        "category": o["category"], "symbol": o["symbol"], "leg": o["leg"], "kind": o["kind"],
        "severity": o["severity"], "ledger": o["ledger_status"], "venue": o["venue_status"],
        "strategy": o["strategy"], "outcome": o["outcome"], "detail": o["action"],
    }  # fmt: skip


def _order_subject(o: dict[str, Any]) -> str:
    """The finding's subject as the books' breaks name it: book orders sharing one venue order id are named by it."""
    if o["kind"] == "duplicate_venue_order_id":
        return f"order:venue:{o['venue_order_id']}"
    return f"order:{o['client_order_id'] or o['venue_order_id']}"


def _action_row(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "section": "action", "subject": a["subject"], "kind": a["kind"], "applied": str(a["applied"]).lower(),
        "detail": a["detail"], "before": _compact(a["before"]), "after": _compact(a["after"]),
    }  # fmt: skip


def _compact(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)
