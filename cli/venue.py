"""``recon venue check``: connect with the configured credentials and show what the venue reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

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
