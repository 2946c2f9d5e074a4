"""Reports for people: runs, the fleet, the books and backfills as rich text and tables, JSON printed plainly.

Every view is built from the JSON contract (``workers.reports``), so what people read and what scripts parse
say the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from models.history import AccountStatus, RunLine, RunRecord
from workers import reports

if TYPE_CHECKING:
    from workers.backfill import BackfillResult

STATUS_STYLE = {
    "in_sync": "green",
    "resolved": "cyan",
    "warned": "yellow",
    "halted": "bold red",
    "failed": "bold red",
    "running": "dim",
}


GAP = 2  # spaces between columns
MIN_FOLDED = 12  # a column that wraps keeps at least this width


@dataclass(frozen=True)
class Column:
    """A column of a ``FittedTable``: dropped at ``drop`` rank (lowest first; None: always shown), or folded onto
    more lines (``fold``) when the width runs out, never cut."""

    header: str
    drop: int | None = None
    fold: bool = False


Cell = str | Text


class FittedTable:
    """A table that fits the width it is printed at: the columns least worth keeping go first, then the ones that
    may fold wrap onto more lines. No cell is cut short. In a pipe the console is wide, so nothing goes."""

    def __init__(self, columns: Sequence[Column], rows: Sequence[Sequence[Cell]], title: str | None = None) -> None:
        self.columns = tuple(columns)
        self.rows = [tuple(row) for row in rows]
        self.title = title

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widths = [
            max([cell_len(column.header), *(cell_len(_plain(row[i])) for row in self.rows)])
            for i, column in enumerate(self.columns)
        ]
        shown = self._fitting(widths, options.max_width)
        too_wide = _total(widths, shown) > options.max_width
        folded = [i for i in shown if self.columns[i].fold]
        room = options.max_width - _total(widths, [i for i in shown if i not in folded]) - GAP * len(folded)
        table = Table(box=None, padding=(0, GAP // 2), pad_edge=False, title=self.title)
        for i in shown:
            column = self.columns[i]
            width = max(MIN_FOLDED, room // len(folded)) if column.fold and too_wide else None
            table.add_column(column.header, no_wrap=not column.fold, overflow="fold", width=width)
        for row in self.rows:
            table.add_row(*(row[i] for i in shown))
        yield table

    def _fitting(self, widths: list[int], width: int) -> list[int]:
        """The columns shown: all, less the droppable ones (lowest rank first) until the rest fit."""
        shown = list(range(len(self.columns)))
        droppable = sorted((c.drop, i) for i, c in enumerate(self.columns) if c.drop is not None)
        for _, i in droppable:
            if _total(widths, shown) <= width:
                break
            shown.remove(i)
        return shown


def _total(widths: list[int], shown: list[int]) -> int:
    return sum(widths[i] for i in shown) + GAP * max(len(shown) - 1, 0)


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def status_text(status: str | None) -> Text:
    """A run status, coloured."""
    return Text(status or "never run", style=STATUS_STYLE.get(status or "", "dim"))


def run_view(record: RunRecord) -> RenderableType:
    """A readable rendering of one run."""
    report = reports.run_json(record)
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
    parts.extend(Text(line, style="dim") for line in summary_lines(summary, dry_run=report["dry_run"]))
    if report["discrepancies"]:
        columns = [
            Column("instrument", fold=True),
            Column("kind"),
            Column("severity"),
            Column("ledger", drop=4),
            Column("venue", drop=3),
            Column("diff %", drop=1),
            Column("strategy"),
            Column("outcome", drop=2),
        ]
        rows: list[tuple[Cell, ...]] = [
            (instrument_name(d["category"], d["symbol"], d["leg"]), d["kind"], _severity(d["severity"]),
             d["ledger_qty"], d["venue_qty"], _short_pct(d["diff_pct"]), d["strategy"], d["outcome"])
            for d in report["discrepancies"]
        ]  # fmt: skip
        parts.append(FittedTable(columns, rows))
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
        order_columns = [
            Column("order", fold=True),
            Column("symbol"),
            Column("kind"),
            Column("books", drop=2),
            Column("venue", drop=1),
            Column("strategy"),
            Column("outcome", drop=3),
        ]
        order_rows: list[tuple[Cell, ...]] = [
            (o["client_order_id"] or o["venue_order_id"], o["symbol"], o["kind"], o["ledger_status"] or "-",
             o["venue_status"] or "-", o["strategy"], o["outcome"])
            for o in report["orders"]
        ]  # fmt: skip
        parts.append(FittedTable(order_columns, order_rows))
    if report["actions"]:
        parts.append(Text("  actions:", style="bold"))
        for a in report["actions"]:
            mark = "" if a["applied"] else " (not applied)"
            parts.append(Text(f"   - {a['kind']} {a['subject']}: {a['detail']}{mark}"))
    return Group(*parts)


def summary_lines(summary: dict[str, Any], *, dry_run: bool) -> list[str]:
    """The positions line and the value-at-mark line of a run's summary; none when the run stored no figures.

    Each line stays short (under 80 columns for up to three currencies); values are rounded to cents for reading.
    """
    if summary["venue_positions"] is None:
        return []
    verbs = ("would add", "remove", "adjust") if dry_run else ("added", "removed", "adjusted")
    keys = ("added", "removed", "adjusted")
    counts = ", ".join(f"{verb} {summary[key]}" for verb, key in zip(verbs, keys, strict=True))
    lines = [f"  positions: venue {summary['venue_positions']}, books {summary['book_positions']}; {counts}"]
    values = ", ".join(f"{_money(v)} {c}" for c, v in summary["venue_value_at_mark"].items()) or "-"
    unvalued = summary["unvalued_positions"]
    lines.append(f"  venue value at mark: {values}" + (f" ({unvalued} not valued)" if unvalued else ""))
    return lines


def instrument_name(category: str, symbol: str, leg: int) -> str:
    """``category:symbol``, with ``:leg`` only for hedge-mode legs."""
    return f"{category}:{symbol}" + (f":{leg}" if leg else "")


def _severity(severity: str) -> Text:
    return Text(severity, style={"critical": "red", "moderate": "yellow"}.get(severity, ""))


def _short_pct(pct: str | None) -> str:
    return f"{Decimal(pct):.2f}" if pct is not None else "-"


def runs_view(lines: list[RunLine]) -> RenderableType:
    """A run listing as a table."""
    columns = [Column("run"), Column("bot"), Column("account"), Column("reason", drop=2), Column("status"),
               Column("discrepancies", drop=1), Column("started (UTC)", drop=3)]  # fmt: skip
    rows: list[tuple[Cell, ...]] = []
    for line in lines:
        status = status_text(line.status)
        if line.dry_run:
            status.append(" (dry)", style="magenta")
        started = reports.iso(line.started_at)
        rows.append((str(line.run_id), line.bot, line.account, line.reason, status, str(line.discrepancies),
                     started[:19].replace("T", " ") if started else "-"))  # fmt: skip
    return FittedTable(columns, rows)


def fleet_view(accounts: list[AccountStatus]) -> RenderableType:
    """Every account's state as a table."""
    columns = [Column("bot"), Column("account"), Column("venue", drop=1), Column("last run", drop=2),
               Column("status"), Column("open breaks", drop=3), Column("halted", fold=True)]  # fmt: skip
    rows: list[tuple[Cell, ...]] = [
        (a.bot, a.account, a.venue, str(a.last_run_id or "-"), status_text(a.last_status), str(a.open_breaks),
         Text(f"HALTED: {a.halted_reason}", style="bold red") if a.halted else Text("no", style="green"))
        for a in accounts
    ]  # fmt: skip
    return FittedTable(columns, rows)


def books_view(document: dict[str, Any]) -> RenderableType:
    """The books as tables: positions with lots, completed trades, groups."""
    parts: list[RenderableType] = []
    positions = Table("instrument", "qty", "avg entry", "lots (remaining @ price, source)", box=None, title="positions")
    for p in document["positions"]:
        lots = ", ".join(f"{lot['remaining']} @ {lot['entry_price']} ({lot['source']})" for lot in p["lots"])
        name = instrument_name(p["category"], p["symbol"], p["leg"])
        positions.add_row(name, p["qty"], price_for_reading(p["avg_entry"]), lots)
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
    if document["trades"]:
        parts.append(realized_view(document["realized_pnl"]))
    if document["groups"]:
        groups = Table("group", "status", "net entry credit", "exit reason", box=None, title="position groups")
        for g in document["groups"]:
            groups.add_row(g["name"], g["status"], _money(g["net_entry_credit"]), g["exit_reason"] or "")
        parts.append(groups)
    return Group(*parts)


def realized_view(realized: dict[str, Any]) -> Table:
    """Realized P&L per instrument and for the account; a count of estimated exits where there are any."""
    table = Table("instrument", "trades", "gross", "fees", "net", box=None, title="realized P&L")

    def add(name: str, sums: dict[str, Any]) -> None:
        estimated = f" ({sums['estimated_exits']} est.)" if sums["estimated_exits"] else ""
        table.add_row(name, f"{sums['trades']}{estimated}", _money(sums["gross"]), _money(sums["fees"]),
                      _money(sums["net"]))  # fmt: skip

    for line in realized["by_instrument"]:
        add(instrument_name(line["category"], line["symbol"], line["leg"]), line)
    add("account total", realized["total"])
    return table


#: A price for reading keeps this many significant digits when 2 decimals would show fewer.
PRICE_DIGITS = 4


def price_for_reading(value: str | None) -> str:
    """A price rounded for reading, with thousands separators: 2 decimals, or as many as it takes to show
    ``PRICE_DIGITS`` significant digits, zeros past the second decimal dropped (50,333.33; 4.10; 1.235;
    0.0001234). The JSON keeps full precision."""
    if value is None:
        return "-"
    number = Decimal(value)
    decimals = 2 if number.is_zero() else max(2, PRICE_DIGITS - 1 - number.adjusted())
    text = f"{number:,.{decimals}f}"
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction[:2]}{fraction[2:].rstrip('0')}"


def _money(value: str | None) -> str:
    return f"{Decimal(value):,.2f}" if value is not None else "-"


def json_text(document: Any) -> str:
    """``document`` as indented JSON ending with a newline, as every ``--json`` prints it."""
    return json.dumps(document, indent=2) + "\n"


def print_json(console: Console, document: Any) -> None:
    """Print ``document`` as JSON without colour or wrapping, so scripts can parse it."""
    console.file.write(json_text(document))


def backfill_view(result: BackfillResult) -> RenderableType:
    """The outcome of a backfill for people: counts, then the exits that stay estimated."""
    document = reports.backfill_json(result)
    style = {"in_sync": "green", "resolved": "cyan", "warned": "yellow", "failed": "bold red"}
    title = Text.assemble(
        (f"backfill run {result.run_id}  ", "bold"),
        (result.status, style.get(result.status, "")),
        (" (dry run)" if result.dry_run else "", "magenta"),
    )
    parts: list[RenderableType] = [title]
    if result.error:
        parts.append(Text(f"  error: {result.error}", style="red"))
        return Group(*parts)
    verb = "would replace" if result.dry_run else "replaced"
    parts.append(Text(f"  estimated exits {result.candidates}, {verb} with venue fills {result.backfilled}"))
    if document["not_found"]:
        table = Table("instrument", "side", "qty", "estimated exit", "at (UTC)", box=None, title="still estimated")
        for n in document["not_found"]:
            table.add_row(
                f"{n['category']}:{n['symbol']}:{n['leg']}",
                n["side"],
                n["quantity"],
                n["estimated_exit_price"],
                n["estimated_exit_time"],
            )
        parts.append(table)
    return Group(*parts)


def summary_view(document: dict[str, Any]) -> RenderableType:
    """Each account over a window (``workers.reports.summary_json``): a table that fits 80 columns, then each
    account's last run and open breaks on lines of their own."""
    title = Text(f"since {document['since']} (until {document['until']})", style="bold")
    if not document["accounts"]:
        return Group(title, Text("no accounts yet", style="dim"))
    columns = [
        Column("account", fold=True),
        Column("runs"),
        Column("failed"),
        Column("found", drop=2),
        Column("actions", drop=1),
        Column("breaks +/-/open"),
        Column("halts", drop=3),
        Column("last run"),
    ]
    rows: list[tuple[Cell, ...]] = []
    details: list[RenderableType] = []
    for a in document["accounts"]:
        breaks = a["breaks"]
        counts = "/".join(str(sum(breaks[k].values())) for k in ("opened", "resolved", "open"))
        last = a["last_run"]
        runs = a["runs"]
        rows.append((f"{a['bot']}/{a['account']}", str(runs["total"]), str(runs["by_status"].get("failed", 0)),
                     str(a["discrepancies"]), str(a["actions"]), counts, str(a["halts"]),
                     status_text(last["status"] if last else None)))  # fmt: skip
        details.extend(_account_details(a))
    return Group(title, FittedTable(columns, rows), *details)


def _account_details(account: dict[str, Any]) -> list[RenderableType]:
    """The lines under the table for one account: its last run with its figures, open breaks, estimated exits."""
    last = account["last_run"]
    if last is None:
        return []
    name = f"{account['bot']}/{account['account']}"
    lines: list[RenderableType] = [
        Text.assemble(
            (f"{name}: ", "bold"),
            f"last run {last['run_id']} ",
            status_text(last["status"]),
            f" {last['reason']}, {last['started_at']}",
        )
    ]
    lines.extend(Text(line, style="dim") for line in summary_lines(last["summary"], dry_run=False))
    open_breaks = ", ".join(f"{sev} {n}" for sev, n in account["breaks"]["open"].items())
    if open_breaks:
        lines.append(Text(f"  open breaks: {open_breaks}", style="yellow"))
    exits = account["estimated_exits"]
    if exits["backfilled"] or exits["still_estimated"]:
        lines.append(Text(f"  estimated exits: {exits['backfilled']} backfilled, {exits['still_estimated']} left"))
    return lines
