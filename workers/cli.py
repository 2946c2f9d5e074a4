"""The ``recon`` command: reconcile accounts, read runs and reports, keep the books, run the demo.

Exit codes of ``recon reconcile``: 0 in sync, 1 discrepancies found (handled per policy), 2 usage or
configuration error, 3 the run failed (nothing changed), 4 the account was halted. Every command prints
one line on stderr for bad input, never a traceback.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import OperationalError

from models import history, ledger
from models.database import Database, open_database, upgrade
from reconciliation.errors import FixConfiguration, ReconError, RetryLater
from workers import report
from workers.backfill import backfill as run_backfill
from workers.backfill import result_json as backfill_json
from workers.backfill import result_view as backfill_view
from workers.books import BooksClient
from workers.connect import open_venue
from workers.demo import run_demo
from workers.fleet import AccountConfig, Fleet, load_fleet
from workers.orchestrator import reconcile as run_reconciliation
from workers.orchestrator import utc_now
from workers.schedule import RECONCILE_TASK, beat_schedule, queue_for
from workers.settings import Settings

EXIT_IN_SYNC, EXIT_DISCREPANCIES, EXIT_USAGE, EXIT_FAILED, EXIT_HALTED = 0, 1, 2, 3, 4
STATUS_EXIT = {
    "in_sync": EXIT_IN_SYNC,
    "resolved": EXIT_DISCREPANCIES,
    "warned": EXIT_DISCREPANCIES,
    "failed": EXIT_FAILED,
    "halted": EXIT_HALTED,
}

BACKFILL_EXIT = {"in_sync": EXIT_IN_SYNC, "resolved": EXIT_IN_SYNC, "warned": EXIT_DISCREPANCIES, "failed": EXIT_FAILED}

app = typer.Typer(
    name="recon",
    help="Reconcile trading bots' books with their venues: positions, cash and orders.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
ledger_app = typer.Typer(help="Read and write a bot's books (what bots do through workers.books.BooksClient).")
db_app = typer.Typer(help="Manage the database schema.")
venue_app = typer.Typer(help="Talk to an account's venue directly.")
app.add_typer(ledger_app, name="ledger")
app.add_typer(db_app, name="db")
app.add_typer(venue_app, name="venue")

console = Console(highlight=False)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (amounts as strings) instead of tables.")]
BotArg = Annotated[str, typer.Argument(help="Bot name, e.g. lxalgo.")]
AccountArg = Annotated[str, typer.Argument(help="Account name, e.g. paper or live.")]


@dataclass
class Options:
    """Global options, resolved lazily so commands that need no database or fleet never touch them."""

    config: Path | None
    db: str | None

    def database_url(self) -> str:
        return self.db or Settings().database_url

    def database(self) -> Database:
        return open_database(self.database_url())

    def fleet(self) -> Fleet:
        return load_fleet(self.fleet_path())

    def fleet_path(self) -> Path:
        if self.config is not None:
            return self.config
        local = Path("fleet.toml")
        if local.exists():
            return local
        from_env = Settings().fleet
        if from_env:
            return Path(from_env)
        raise FixConfiguration(
            "no fleet file: pass --config FILE, create ./fleet.toml or set RECON_FLEET (see `recon demo`)"
        )


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", help="Fleet file (default ./fleet.toml, else $RECON_FLEET).")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL (default $RECON_DATABASE_URL, else sqlite:///recon.db)."),
    ] = None,
) -> None:
    """Reconcile trading bots' books with their venues: positions, cash and orders."""
    ctx.obj = Options(config=config, db=db)


def _options(ctx: typer.Context) -> Options:
    options = ctx.find_object(Options)
    assert options is not None
    return options


# --- reconciliation -------------------------------------------------------------------------------------------


@app.command()
def reconcile(
    ctx: typer.Context,
    bot: BotArg,
    account: AccountArg,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report the plan; store a dry run; change no books.")
    ] = False,
    reason: Annotated[
        str, typer.Option(help="Why this run happens: manual, schedule, startup or large_fill.")
    ] = "manual",
    queue: Annotated[
        bool, typer.Option("--queue", help="Send the run to the Celery workers and wait for its report.")
    ] = False,
    wait: Annotated[float, typer.Option(help="With --queue: seconds to wait for the workers.")] = 300.0,
    as_json: JsonFlag = False,
) -> None:
    """Reconcile one account now and print its report.

    Exit code: 0 in sync, 1 discrepancies found, 2 usage or configuration error, 3 run failed, 4 halted.
    """
    options = _options(ctx)
    config = options.fleet().account(bot, account)
    database = options.database()
    if queue:
        run_id, status = _queued_run(options, config, reason, dry_run, wait)
    else:
        result = run_reconciliation(database, config, reason=reason, dry_run=dry_run)
        run_id, status = result.run_id, result.status
    _print_run(database, run_id, as_json)
    raise typer.Exit(STATUS_EXIT[status])


def _queued_run(options: Options, config: AccountConfig, reason: str, dry_run: bool, wait: float) -> tuple[int, str]:
    """Send a run to the workers (on the account's queue) and wait for its last run."""
    from workers.celery import create_app  # noqa: PLC0415 - Celery is imported only by the commands that use it

    settings = Settings(fleet=str(options.fleet_path()), database_url=options.database_url())
    pending = create_app(settings).send_task(
        RECONCILE_TASK, args=[config.bot, config.account, reason, dry_run], queue=queue_for(config)
    )
    try:
        outcome = pending.get(timeout=wait, propagate=True)
    except TimeoutError as error:
        raise RetryLater(f"no worker finished the run within {wait:.0f} s (task {pending.id})") from error
    if not outcome["runs"]:
        raise RetryLater("another worker holds the account; it will run once more before releasing it")
    last = outcome["runs"][-1]
    return int(last["run_id"]), str(last["status"])


def _print_run(database: Database, run_id: int, as_json: bool) -> None:
    with database.sessions() as session:
        record = history.run_record(session, run_id)
    if as_json:
        report.print_json(console, report.run_json(record))
    else:
        console.print(report.run_view(record))


@app.command()
def runs(
    ctx: typer.Context,
    bot: Annotated[str | None, typer.Argument(help="Only this bot's runs.")] = None,
    account: Annotated[str | None, typer.Argument(help="Only this account's runs.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List recent runs, newest first."""
    database = _options(ctx).database()
    with database.sessions() as session:
        lines = history.list_runs(session, bot, account, limit)
    if as_json:
        report.print_json(console, report.runs_json(lines))
    else:
        console.print(report.runs_view(lines) if lines else "no runs yet")


@app.command("report")
def show_report(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="The run's id (see `recon runs`).")],
    as_json: JsonFlag = False,
) -> None:
    """Show what one run saw and did."""
    _print_run(_options(ctx).database(), run_id, as_json)


@app.command()
def fleet(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every bot and account: last run, its status, open breaks, halted or not."""
    options = _options(ctx)
    database = options.database()
    with database.sessions() as session:
        accounts = history.fleet_status(session)
    if options.config is not None or Path("fleet.toml").exists() or Settings().fleet:
        accounts = _with_unrun_accounts(accounts, options.fleet())
    if as_json:
        report.print_json(console, report.fleet_json(accounts))
    else:
        console.print(report.fleet_view(accounts) if accounts else "no accounts yet")


def _with_unrun_accounts(accounts: list[history.AccountStatus], fleet_config: Fleet) -> list[history.AccountStatus]:
    """``accounts`` plus the fleet file's accounts the database has never seen, by bot and account."""
    known = {(a.bot, a.account) for a in accounts}
    unrun = [
        history.AccountStatus(c.bot, c.account, c.venue, False, None, None, None, None, 0)
        for c in fleet_config.accounts
        if (c.bot, c.account) not in known
    ]
    return sorted(accounts + unrun, key=lambda a: (a.bot, a.account))


@app.command()
def halt(
    ctx: typer.Context,
    bot: BotArg,
    account: AccountArg,
    reason: Annotated[str, typer.Option(help="Why the account is halted (shown to bots and people).")],
) -> None:
    """Halt an account: its bot must not open new risk until it is resumed."""
    _set_halted(ctx, bot, account, True, reason)


@app.command()
def resume(ctx: typer.Context, bot: BotArg, account: AccountArg) -> None:
    """Lift a halt."""
    _set_halted(ctx, bot, account, False, None)


def _set_halted(ctx: typer.Context, bot: str, account: str, halted: bool, reason: str | None) -> None:
    database = _options(ctx).database()
    with database.sessions.begin() as session:
        account_id = ledger.find_account(session, bot, account).id
        unchanged = history.set_halted(session, account_id, halted, reason, utc_now())
    state = "halted" if halted else "resumed"
    console.print(f"{bot}/{account} {'was already' if unchanged else 'is now'} {state}")


# --- the books ------------------------------------------------------------------------------------------------


@ledger_app.command("fill")
def ledger_fill(
    ctx: typer.Context,
    bot: BotArg,
    account: AccountArg,
    symbol: Annotated[str, typer.Option(help="Instrument symbol, e.g. BTCUSDT.")],
    side: Annotated[str, typer.Option(help="buy or sell.")],
    qty: Annotated[str, typer.Option(help="Quantity filled (positive decimal).")],
    price: Annotated[str, typer.Option(help="Execution price.")],
    fill_id: Annotated[str, typer.Option(help="The venue's execution id; recording it twice is a no-op.")],
    fee: Annotated[str, typer.Option(help="Fee paid (negative for a rebate).")] = "0",
    time: Annotated[str | None, typer.Option(help="Execution time, ISO 8601 with zone (default now).")] = None,
    category: Annotated[str, typer.Option(help="Venue category, e.g. linear, us_equity.")] = "default",
    leg: Annotated[int, typer.Option(help="Position leg (hedge mode index), default 0.")] = 0,
    group: Annotated[str | None, typer.Option(help="Multi-leg position group, e.g. a spread's name.")] = None,
    order_id: Annotated[str | None, typer.Option(help="The venue's order id.")] = None,
    kind: Annotated[str, typer.Option(help="trade, liquidation, adl or expiry.")] = "trade",
    as_json: JsonFlag = False,
) -> None:
    """Record a fill; FIFO closes the oldest lots it reduces and opens a lot with the rest."""
    client = BooksClient(_options(ctx).database())
    result = client.record_fill(
        bot, account, symbol=symbol, side=side, qty=qty, price=price, fill_id=fill_id, fee=fee, time=time,
        category=category, leg=leg, group=group, order_id=order_id, kind=kind,
    )  # fmt: skip
    document: dict[str, Any] = {
        "fill_id": fill_id,
        "recorded": result.recorded,
        "position_before": report.amount(result.before.qty),
        "position_after": report.amount(result.after.qty),
        "avg_entry_after": report.amount(result.after.avg_entry),
        "trades": [
            {"quantity": report.amount(t.quantity), "entry_price": report.amount(t.entry_price),
             "exit_price": report.amount(t.exit_price), "net_pnl": report.amount(t.net_pnl)}
            for t in result.trades
        ],
    }  # fmt: skip
    if as_json:
        report.print_json(console, document)
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


@ledger_app.command("order")
def ledger_order(
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
    category: Annotated[str, typer.Option(help="Venue category.")] = "default",
    leg: Annotated[int, typer.Option(help="Position leg.")] = 0,
) -> None:
    """Record a pending order, or update the status of one already recorded (by client order id)."""
    client = BooksClient(_options(ctx).database())
    new = client.record_order(
        bot, account, client_order_id=client_order_id, symbol=symbol, side=side, qty=qty, price=price,
        status=status, venue_order_id=venue_order_id, category=category, leg=leg,
    )  # fmt: skip
    console.print(f"order {client_order_id} {'recorded' if new else 'updated'}: {status}")


@ledger_app.command("cash")
def ledger_cash(
    ctx: typer.Context,
    bot: BotArg,
    account: AccountArg,
    balance: Annotated[str, typer.Option(help="The cash the bot expects the venue to hold.")],
    currency: Annotated[str, typer.Option(help="Currency of the balance.")] = "USD",
) -> None:
    """Set the cash a bot expects its account to hold."""
    before = BooksClient(_options(ctx).database()).set_expected_cash(bot, account, balance, currency)
    was = f"{report.amount(before.balance)} {before.currency}" if before else "not set"
    console.print(f"expected cash for {bot}/{account}: {balance} {currency} (was {was})")


@ledger_app.command("show")
def ledger_show(ctx: typer.Context, bot: BotArg, account: AccountArg, as_json: JsonFlag = False) -> None:
    """Positions with their lots, completed trades with P&L, and position groups."""
    database = _options(ctx).database()
    with database.sessions() as session:
        account_id = ledger.find_account(session, bot, account).id
        document = report.books_json(
            ledger.positions(session, account_id),
            ledger.completed_trades(session, account_id),
            ledger.groups(session, account_id),
        )
    if as_json:
        report.print_json(console, document)
    else:
        console.print(report.books_view(document))


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Bring the database schema to the newest migration (SQLite does this by itself)."""
    database = Database(_options(ctx).database_url())
    upgrade(database.engine)
    console.print(f"database {database.url} is at the newest schema")


@app.command()
def schedule(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Beat's entries from the fleet file: one reconciliation per bot and account at its interval."""
    entries = beat_schedule(_options(ctx).fleet())
    if as_json:
        report.print_json(
            console,
            [
                {"name": name, "task": e["task"], "every_seconds": e["schedule"], "args": list(e["args"]),
                 "queue": e["options"]["queue"], "expires_seconds": e["options"]["expires"]}
                for name, e in entries.items()
            ],
        )  # fmt: skip
        return
    table = Table("entry", "every (s)", "queue", "expires (s)", box=None)
    for name, e in entries.items():
        table.add_row(name, f"{e['schedule']:g}", e["options"]["queue"], f"{e['options']['expires']:g}")
    console.print(table)


@app.command()
def trigger(
    ctx: typer.Context,
    bot: BotArg,
    account: AccountArg,
    reason: Annotated[str, typer.Option(help="large_fill, startup, manual or schedule.")] = "manual",
) -> None:
    """Ask the workers for a run of the account (coalesced with any request already queued)."""
    from workers.bot_client import BotClient  # noqa: PLC0415 - imports Celery, which only this command needs

    options = _options(ctx)
    settings = Settings(fleet=str(options.fleet_path()), database_url=options.database_url())
    queued = BotClient(settings).request_reconciliation(bot, account, reason)
    console.print(f"{bot}/{account}: " + ("run queued" if queued else "a run is already queued; this request joins it"))


@app.command("backfill")
def backfill_exits(
    ctx: typer.Context,
    bot: BotArg,
    account: AccountArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be replaced; change nothing.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Replace estimated exit prices with the venue's real exit fills (price, time, fees, cause).

    Exit code: 0 when nothing was left estimated, 1 when some exits stay estimated, 3 when the venue's
    fills could not be fetched (nothing changed).
    """
    options = _options(ctx)
    config = options.fleet().account(bot, account)
    result = run_backfill(options.database(), config, dry_run=dry_run)
    if as_json:
        report.print_json(console, backfill_json(result))
    else:
        console.print(backfill_view(result))
    raise typer.Exit(BACKFILL_EXIT[result.status])


@venue_app.command("check")
def venue_check(ctx: typer.Context, bot: BotArg, account: AccountArg, as_json: JsonFlag = False) -> None:
    """Connect with the configured credentials and show what the venue reports; changes nothing.

    Exit code: 0 when the venue answered, 2 for a configuration problem (a missing key variable, refused keys),
    3 when the venue could not be read (the reason is printed).
    """
    config = _options(ctx).fleet().account(bot, account)
    venue = open_venue(config)
    try:
        snapshot = venue.fetch_snapshot(utc_now())
    except FixConfiguration:
        raise
    except ReconError as error:
        failure = {"bot": bot, "account": account, "venue": venue.describe(), "ok": False, "error": str(error)}
        if as_json:
            report.print_json(console, failure)
        else:
            console.print(f"{venue.describe()}: cannot read the account: {error}")
        raise typer.Exit(EXIT_FAILED) from None
    document: dict[str, Any] = {
        "bot": bot,
        "account": account,
        "venue": venue.describe(),
        "ok": True,
        "positions": len(snapshot.positions),
        "open_orders": len(snapshot.open_orders),
        "recent_fills": len(snapshot.fills),
        "cash": {"currency": snapshot.cash.currency, "balance": report.amount(snapshot.cash.balance)}
        if snapshot.cash
        else None,
        "live": config.is_live,
    }
    if as_json:
        report.print_json(console, document)
        return
    cash = document["cash"]
    console.print(
        f"{venue.describe()}{' (LIVE)' if config.is_live else ''}: {document['positions']} positions, "
        f"{document['open_orders']} open orders, {document['recent_fills']} fills in the lookback window, "
        + (f"cash {cash['balance']} {cash['currency']}" if cash else "no cash reported")
    )


# --- the demo -------------------------------------------------------------------------------------------------


@app.command()
def demo(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the demo workspace (fleet file, venue states, database) goes.")
    ] = Path("recon-demo"),
) -> None:
    """Reconcile the example fleet (LXAlgo, Momentum, ShortSeller; paper and live) on simulated venues."""
    run_demo(console, directory, _options(ctx).db)


# --- entry point ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the command line; map errors to one line on stderr and an exit code."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="recon", standalone_mode=False)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        _fail("aborted", EXIT_FAILED)
    except typer.TyperException as error:
        _fail(f"{error.format_message()} (see `recon --help`)", EXIT_USAGE)
    except FixConfiguration as error:
        _fail(str(error), EXIT_USAGE)
    except ReconError as error:
        _fail(str(error), EXIT_FAILED)
    except OperationalError as error:
        _fail(f"database unavailable: {str(error.orig).strip().splitlines()[0]}", EXIT_FAILED)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"recon: error: {message}\n")
    sys.exit(code)


if __name__ == "__main__":
    main()
