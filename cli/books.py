"""Commands on a bot's books, as bots write them through ``workers.books.BooksClient``: record a fill, an order,
the expected cash; show positions, lots, trades and groups. And the database's schema.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.options import AccountArg, BotArg, JsonFlag, console, options_of


def fill(
    ctx: typer.Context,
    bot: BotArg,
    account: AccountArg,
    symbol: Annotated[str, typer.Option(help="Instrument symbol, e.g. BTCUSDT.")],
    side: Annotated[str, typer.Option(help="buy or sell.")],
    qty: Annotated[str, typer.Option(help="Quantity filled (positive decimal).")],
    price: Annotated[str, typer.Option(help="Execution price.")],
    fill_id: Annotated[
        str, typer.Option(help="The venue's execution id; the same fill twice is a no-op, other contents refused.")
    ],
    fee: Annotated[str | None, typer.Option(help="Fee paid (negative for a rebate); default 0.")] = None,
    time: Annotated[
        str | None, typer.Option(help="Execution time, ISO 8601 with zone (default now; at most 60 s ahead).")
    ] = None,
    category: Annotated[
        str | None,
        typer.Option(help="Venue category, e.g. linear, us_equity; required when the account's venue has several."),
    ] = None,
    leg: Annotated[int, typer.Option(min=0, help="Position leg (hedge mode index), default 0.")] = 0,
    group: Annotated[str | None, typer.Option(help="Multi-leg position group, e.g. a spread's name.")] = None,
    order_id: Annotated[str | None, typer.Option(help="The venue's order id.")] = None,
    kind: Annotated[str, typer.Option(help="trade, liquidation, adl or expiry.")] = "trade",
    as_json: JsonFlag = False,
) -> None:
    """Record a fill; FIFO closes the oldest lots it reduces and opens a lot with the rest."""
    from cli.render import print_json  # noqa: PLC0415 - the books' modules only when a command runs
    from workers.books import BooksClient  # noqa: PLC0415
    from workers.reports import amount  # noqa: PLC0415

    options = options_of(ctx)
    client = BooksClient(options.database(), fleet=options.fleet())
    result = client.record_fill(
        bot, account, symbol=symbol, side=side, qty=qty, price=price, fill_id=fill_id, fee=fee, time=time,
        category=category, leg=leg, group=group, order_id=order_id, kind=kind,
    )  # fmt: skip
    document: dict[str, Any] = {
        "fill_id": fill_id,
        "recorded": result.recorded,
        "position_before": amount(result.before.qty),
        "position_after": amount(result.after.qty),
        "avg_entry_after": amount(result.after.avg_entry),
        "trades": [
            {"quantity": amount(t.quantity), "entry_price": amount(t.entry_price),
             "exit_price": amount(t.exit_price), "net_pnl": amount(t.net_pnl)}
            for t in result.trades
        ],
    }  # fmt: skip
    if as_json:
        print_json(console, document)
        return
    if not result.recorded:
        console.print(f"fill {fill_id} is already in the books: nothing changed")
        return
    console.print(
        f"recorded {fill_id}: {symbol} position {document['position_before']} -> {document['position_after']}"
        + (f" (avg entry {document['avg_entry_after']})" if document["avg_entry_after"] else "")
    )
    for trade in document["trades"]:
        console.print(f"  closed {trade['quantity']} @ {trade['entry_price']} -> {trade['exit_price']}: "
                      f"net P&L {trade['net_pnl']}")  # fmt: skip


def order(
    ctx: typer.Context,
    bot: BotArg,
    account: AccountArg,
    client_order_id: Annotated[str, typer.Option(help="The bot's client order id (unique per account).")],
    symbol: Annotated[str, typer.Option(help="Instrument symbol.")],
    side: Annotated[str, typer.Option(help="buy or sell.")],
    qty: Annotated[str, typer.Option(help="Order quantity.")],
    price: Annotated[str | None, typer.Option(help="Limit price (omit for market).")] = None,
    status: Annotated[str, typer.Option(help="open, partially_filled, filled, cancelled, rejected, expired.")] = "open",
    venue_order_id: Annotated[str | None, typer.Option(help="The venue's order id, once known.")] = None,
    category: Annotated[
        str | None, typer.Option(help="Venue category; required when the account's venue has several.")
    ] = None,
    leg: Annotated[int, typer.Option(min=0, help="Position leg.")] = 0,
) -> None:
    """Record a pending order, or update the status of one already recorded (by client order id)."""
    from workers.books import BooksClient  # noqa: PLC0415

    options = options_of(ctx)
    client = BooksClient(options.database(), fleet=options.fleet())
    new = client.record_order(
        bot, account, client_order_id=client_order_id, symbol=symbol, side=side, qty=qty, price=price,
        status=status, venue_order_id=venue_order_id, category=category, leg=leg,
    )  # fmt: skip
    console.print(f"order {client_order_id} {'recorded' if new else 'updated'}: {status}")


def cash(
    ctx: typer.Context,
    bot: BotArg,
    account: AccountArg,
    balance: Annotated[str, typer.Option(help="The cash the bot expects the venue to hold.")],
    currency: Annotated[str, typer.Option(help="Currency of the balance.")] = "USD",
) -> None:
    """Set the cash a bot expects its account to hold."""
    from workers.books import BooksClient  # noqa: PLC0415
    from workers.reports import amount  # noqa: PLC0415

    options = options_of(ctx)
    client = BooksClient(options.database(), fleet=options.fleet())
    before = client.set_expected_cash(bot, account, balance, currency)
    was = f"{amount(before.balance)} {before.currency}" if before else "not set"
    console.print(f"expected cash for {bot}/{account}: {balance} {currency.strip().upper()} (was {was})")


def show(ctx: typer.Context, bot: BotArg, account: AccountArg, as_json: JsonFlag = False) -> None:
    """Positions with their lots, completed trades with P&L, and position groups."""
    from cli.render import books_view, print_json  # noqa: PLC0415
    from models.accounts import find_account  # noqa: PLC0415
    from models.reading import completed_trades  # noqa: PLC0415
    from models.reading import groups as position_groups  # noqa: PLC0415
    from models.reading import positions as book_positions  # noqa: PLC0415
    from workers.reports import books_json  # noqa: PLC0415

    database = options_of(ctx).database()
    with database.reading() as session:
        account_id = find_account(session, bot, account).id
        document = books_json(
            book_positions(session, account_id),
            completed_trades(session, account_id),
            position_groups(session, account_id),
        )
    if as_json:
        print_json(console, document)
    else:
        console.print(books_view(document))


def upgrade(ctx: typer.Context) -> None:
    """Bring the database schema to the newest migration (SQLite does this by itself)."""
    from models.database import Database, upgrade  # noqa: PLC0415

    database = Database(options_of(ctx).database_url())
    upgrade(database.engine)
    console.print(f"database {database.url} is at the newest schema")
