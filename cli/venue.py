"""``recon venue check`` and ``recon venue snapshot``: connect with the configured credentials and show what the
venue reports, or capture it as a sim venue's state file to rehearse an incident on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

from cli.files import ForceFlag, OutOption, refuse_existing, write_atomically
from cli.options import EXIT_FAILED, AccountArg, BotArg, JsonFlag, console, options_of
from reconciliation.errors import FixConfiguration, ReconError


def check(ctx: typer.Context, bot: BotArg, account: AccountArg, as_json: JsonFlag = False) -> None:
    """Connect with the configured credentials and show what the venue reports; changes nothing.

    Exit code: 0 when the venue answered, 2 for a configuration problem (a missing key variable, refused keys),
    3 when the venue could not be read (the reason is printed).
    """
    from cli.app import complain  # noqa: PLC0415
    from cli.render import print_json  # noqa: PLC0415
    from workers.connect import open_venue  # noqa: PLC0415 - the venue's SDK only when it is opened
    from workers.reports import amount  # noqa: PLC0415

    config = options_of(ctx).fleet().account(bot, account)
    venue = open_venue(config)
    try:
        snapshot = venue.fetch_snapshot(datetime.now(UTC))
    except FixConfiguration:
        raise
    except ReconError as error:
        failure = {"bot": bot, "account": account, "venue": venue.describe(), "ok": False, "error": str(error)}
        if as_json:
            print_json(console, failure)
        else:
            console.print(f"{venue.describe()}: cannot read the account: {error}")
        complain(f"cannot read the account: {error}")
        raise typer.Exit(EXIT_FAILED) from None
    document: dict[str, Any] = {
        "bot": bot,
        "account": account,
        "venue": venue.describe(),
        "ok": True,
        "positions": len(snapshot.positions),
        "open_orders": len(snapshot.open_orders),
        "recent_fills": len(snapshot.fills),
        "cash": {"currency": snapshot.cash.currency, "balance": amount(snapshot.cash.balance)}
        if snapshot.cash
        else None,
        "live": config.is_live,
    }
    if as_json:
        print_json(console, document)
        return
    cash = document["cash"]
    console.print(
        f"{venue.describe()}{' (LIVE)' if config.is_live else ''}: {document['positions']} positions, "
        f"{document['open_orders']} open orders, {document['recent_fills']} fills in the lookback window, "
        + (f"cash {cash['balance']} {cash['currency']}" if cash else "no cash reported")
    )


def snapshot(
    ctx: typer.Context, bot: BotArg, account: AccountArg, out: OutOption = None, force: ForceFlag = False
) -> None:
    """Capture what the venue reports now as a sim venue state file (no credentials in it), to rehearse with
    ``venue = "sim"`` and ``--dry-run``; printed, or written to --out.

    Exit code: 0 when captured, 2 for a configuration problem or an --out file that exists (without --force),
    3 when the venue could not be read (nothing is written).
    """
    from cli.app import complain  # noqa: PLC0415
    from cli.render import json_text  # noqa: PLC0415
    from workers.snapshots import captured_state  # noqa: PLC0415 - the venue's SDK only when it is opened

    if out is not None:
        refuse_existing(out, force)
    config = options_of(ctx).fleet().account(bot, account)
    try:
        document = captured_state(config, datetime.now(UTC))
    except FixConfiguration:
        raise
    except ReconError as error:
        complain(f"cannot read the account: {error}")
        raise typer.Exit(EXIT_FAILED) from None
    if out is None:
        console.file.write(json_text(document))
        return
    write_atomically(out, json_text(document), force)
    console.print(
        f"wrote {out}: {len(document['positions'])} positions, {len(document['open_orders'])} open orders, "
        f"{len(document['fills'])} fills, {len(document['marks'])} marks, "
        + (f"cash {document['cash']['balance']} {document['cash']['currency']}" if document["cash"] else "no cash"),
        soft_wrap=True,
    )
