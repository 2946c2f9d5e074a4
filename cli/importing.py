"""``recon ledger import``: a bot's existing trade history into its books (``workers.importing``), with a summary
per instrument. Bad rows are listed on stderr, one line each, and nothing is written unless ``--skip-bad``.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.options import AccountArg, BotArg, JsonFlag, console, options_of

if TYPE_CHECKING:
    from rich.console import RenderableType

    from workers.fill_file import BadRow

MAX_LISTED = 20  # bad rows listed on stderr; the rest are counted


def import_history(
    ctx: typer.Context,
    bot: BotArg,
    account: AccountArg,
    file: Annotated[Path, typer.Argument(help="The bot's trade history: CSV with a header row, or JSONL.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or jsonl (default: from the file's extension).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row and show the summary; write nothing.")
    ] = False,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Import the good rows and list the bad ones (default: import none).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Import fills from a bot's trade history, FIFO in time order; fills already in the books are left alone.

    Columns: symbol, side, qty, price, time, fill_id, fee; optional category, order_id, group, leg.
    """
    from datetime import UTC, datetime  # noqa: PLC0415 - the books' modules only when a command runs

    from cli.render import print_json  # noqa: PLC0415
    from workers.categories import checked_category  # noqa: PLC0415
    from workers.fill_file import file_format, read_fill_file  # noqa: PLC0415
    from workers.importing import BadRows, import_history, outcome_json  # noqa: PLC0415

    options = options_of(ctx)
    config = options.fleet().account(bot, account)
    now = datetime.now(UTC)
    history = read_fill_file(file, file_format(file, fmt), lambda given: checked_category(config, given), now)
    try:
        outcome = import_history(options.database(), config, history, now, dry_run=dry_run, skip_bad=skip_bad)
    except BadRows as refused:
        _list_on_stderr(refused.rows)
        raise
    _list_on_stderr(outcome.skipped)
    document = outcome_json(outcome)
    if as_json:
        print_json(console, document)
    else:
        console.print(import_view(document, f"{config.bot}/{config.account}"))


def _list_on_stderr(rows: tuple[BadRow, ...]) -> None:
    lines = [str(row) for row in rows[:MAX_LISTED]]
    if len(rows) > MAX_LISTED:
        lines.append(f"and {len(rows) - MAX_LISTED} more")
    for line in lines:
        sys.stderr.write("".join(c if c.isprintable() else repr(c)[1:-1] for c in line) + "\n")


def import_view(document: dict[str, Any], label: str) -> RenderableType:
    """The summary for people: a line of totals, then per instrument the fills imported, what stays open and the
    realized P&L (columns dropped to fit the width, gross first)."""
    from rich.console import Group  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    from cli.render import Column, FittedTable, instrument_name, price_for_reading  # noqa: PLC0415

    verb = "would import" if document["dry_run"] else "imported"
    totals = f"{label}: {verb} {document['imported']} fills; {document['already_in_books']} already in the books"
    if document["repeated_in_file"]:
        totals += f"; {document['repeated_in_file']} repeated in the file"
    if document["skipped"]:
        totals += f"; skipped {len(document['skipped'])} bad rows (listed on stderr)"
    if not document["instruments"]:
        return Text(totals)
    columns = [
        Column("instrument", fold=True), Column("fills"), Column("open qty"), Column("lots", drop=4),
        Column("avg entry", drop=3), Column("gross", drop=1), Column("fees", drop=2), Column("net P&L"),
    ]  # fmt: skip
    rows = [
        [instrument_name(i["category"], i["symbol"], i["leg"]), str(i["fills"]), i["open_qty"], str(i["open_lots"]),
         price_for_reading(i["avg_entry"]), _money(i["realized"]["gross"]), _money(i["realized"]["fees"]),
         _money(i["realized"]["net"])]
        for i in document["instruments"]
    ]  # fmt: skip
    total = document["realized"]
    rows.append(["total", str(document["imported"]), "", "", "", _money(total["gross"]), _money(total["fees"]),
                 _money(total["net"])])  # fmt: skip
    return Group(Text(totals), FittedTable(columns, rows))


def _money(value: str) -> str:
    return f"{Decimal(value):,.2f}"
