"""The ``recon`` command: reconcile accounts, read runs and reports, keep the books, run the demo.

Exit codes: 0 in sync, 1 discrepancies found (handled per policy), 2 usage or configuration error, 3 the run
failed or a dependency (database, Redis, venue) was unavailable (nothing changed), 4 the account was halted,
5 internal error (a bug). Every error is one line on stderr, never a traceback (``RECON_DEBUG=1`` adds it).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DataError, DBAPIError, IntegrityError, OperationalError, SQLAlchemyError

from models import history
from models.accounts import find_account
from models.database import Database, open_database, upgrade
from models.reading import completed_trades
from models.reading import groups as position_groups
from models.reading import positions as book_positions
from reconciliation.errors import FixConfiguration, ReconError, RetryLater
from reconciliation.names import check_name, shown
from reconciliation.plan import RECONCILE_REASONS
from workers import report
from workers.books import BooksClient, to_text
from workers.fleet import AccountConfig, Fleet, load_fleet
from workers.schedule import RECONCILE_TASK, beat_schedule, queue_for
from workers.settings import Settings

# The run pipeline, backfill, venues and demo are imported by the commands that use them: they load the venue
# SDKs (about 0.5 s), which every other command, and every refused input, would otherwise wait for.

EXIT_IN_SYNC, EXIT_DISCREPANCIES, EXIT_USAGE, EXIT_FAILED, EXIT_HALTED, EXIT_INTERNAL = 0, 1, 2, 3, 4, 5
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

MAX_RUN_ID = 2**31 - 1  # runs.id is a 32-bit INTEGER on Postgres
MAX_LIST = 10_000
MAX_REASON = 500
MAX_WAIT = 86_400.0
MAX_LINE = 500
MAX_INTERNAL = 200
REDIS_SCHEMES = ("redis", "rediss", "unix")

console = Console(highlight=False)


def _bot_name(value: str) -> str:
    return check_name(value, "bot")


def _account_name(value: str) -> str:
    return check_name(value, "account")


def _optional_bot_name(value: str | None) -> str | None:
    return None if value is None else check_name(value, "bot")


def _optional_account_name(value: str | None) -> str | None:
    return None if value is None else check_name(value, "account")


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (amounts as strings) instead of tables.")]
BotArg = Annotated[str, typer.Argument(help="Bot name, e.g. lxalgo.", callback=_bot_name)]
AccountArg = Annotated[str, typer.Argument(help="Account name, e.g. paper or live.", callback=_account_name)]


@dataclass
class Options:
    """Global options, resolved lazily so commands that need no database or fleet never touch them."""

    config: Path | None
    db: str | None

    def database_url(self) -> str:
        return checked_database_url(self.db or Settings().database_url.get_secret_value())

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


def checked_database_url(url: str) -> str:
    """``url`` when it parses as a URL; otherwise a configuration error that never shows its password."""
    try:
        make_url(url)
    except (ArgumentError, ValueError):
        raise FixConfiguration(f"not a database URL: {shown(hide_password(url))} (try sqlite:///recon.db)") from None
    return url


def hide_password(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\g<head>:***@", text)


_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]+@")


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

    Exit code: 0 in sync, 1 discrepancies found, 2 usage or configuration error, 3 run failed, 4 halted,
    5 internal error.
    """
    if reason not in RECONCILE_REASONS:
        raise FixConfiguration(f"unknown reason {shown(reason)}: use one of {', '.join(RECONCILE_REASONS)}")
    if not 1 <= wait <= MAX_WAIT:
        raise FixConfiguration(f"--wait: must be from 1 to {MAX_WAIT:.0f} seconds, got {wait}")
    options = _options(ctx)
    config = options.fleet().account(bot, account)
    database = options.database()
    coordinated: bool | None = None
    if queue:
        run_id, status = _queued_run(options, config, reason, dry_run, wait)
    else:
        run_id, status, coordinated = _in_process_run(options, database, config, reason, dry_run, as_json)
    record = _print_run(database, run_id, as_json, coordinated)
    if status == "failed":
        _complain(f"run {run_id} failed: {record.run.error or 'no reason recorded'}")
    raise typer.Exit(STATUS_EXIT[status])


def _in_process_run(
    options: Options, database: Database, config: AccountConfig, reason: str, dry_run: bool, as_json: bool
) -> tuple[int, str, bool]:
    """Serve the run here, on the same path the workers take: with Redis configured (``RECON_REDIS_URL``) it takes
    the account's lock and publishes; without, it runs alone. A failure recorded as a run is shown, then raised."""
    from workers.runtime import redis_of  # noqa: PLC0415 - see the note at the imports
    from workers.service import Service  # noqa: PLC0415

    settings = Settings(fleet=str(options.fleet_path()), database_url=options.database_url())
    redis = None
    if "redis_url" in Settings().model_fields_set:
        with _broker_errors(settings):
            redis = redis_of(settings)
    service = Service(database, settings, redis)
    try:
        served = service.reconcile(config, reason, dry_run=dry_run)
    except ReconError as error:
        if error.run_id is not None:
            _print_run(database, error.run_id, as_json, service.coordinated)
        raise
    if not served.results:
        raise RetryLater(f"{config.label} is being reconciled elsewhere; that run serves this request")
    last = served.results[-1]
    return last.run_id, last.status.value, service.coordinated


def _queued_run(options: Options, config: AccountConfig, reason: str, dry_run: bool, wait: float) -> tuple[int, str]:
    """Send a run to the workers (on the account's queue) and wait for its last run."""
    from celery.exceptions import TimeoutError as NoResultYet  # noqa: PLC0415 - only the commands using Celery

    from workers.celery import create_app  # noqa: PLC0415 - Celery is imported only by the commands that use it

    settings = Settings(fleet=str(options.fleet_path()), database_url=options.database_url())
    with _broker_errors(settings):
        pending = create_app(settings).send_task(
            RECONCILE_TASK, args=[config.bot, config.account, reason, dry_run], queue=queue_for(config)
        )
        try:
            outcome = pending.get(timeout=wait, propagate=True)
        except (TimeoutError, NoResultYet) as error:
            raise RetryLater(f"no worker finished the run within {wait:.0f} s (task {pending.id})") from error
    if not outcome["runs"]:
        raise RetryLater("another worker holds the account; it will run once more before releasing it")
    last = outcome["runs"][-1]
    return int(last["run_id"]), str(last["status"])


@contextmanager
def _broker_errors(settings: Settings) -> Iterator[None]:
    """Check Redis answers before using it (Celery would retry for 20 s), and turn its errors into RetryLater."""
    from kombu.exceptions import OperationalError as BrokerError  # noqa: PLC0415 - only the commands using Celery
    from redis.exceptions import RedisError  # noqa: PLC0415

    from workers.runtime import redis_for  # noqa: PLC0415

    url = settings.redis_url.get_secret_value()
    scheme, separator, _ = url.partition("://")
    if not separator or scheme not in REDIS_SCHEMES:
        raise FixConfiguration(f"RECON_REDIS_URL: not a Redis URL: {shown(hide_password(url))}")
    where = hide_password(url)
    try:
        redis_for(url).ping()
        yield
    except (RedisError, BrokerError) as error:
        raise RetryLater(f"Redis unavailable at {where}: {_first_line(error)}") from error


NOT_COORDINATED = "no RECON_REDIS_URL: this run took no lock and published nothing (the embedded default)"


def _print_run(database: Database, run_id: int, as_json: bool, coordinated: bool | None = None) -> history.RunRecord:
    """Print a run's report; ``coordinated`` False says the run took no Redis lock and published nothing."""
    with database.reading() as session:
        record = history.run_record(session, run_id)
    if as_json:  # the same contract as `recon report --json`
        report.print_json(console, report.run_json(record))
    else:
        if coordinated is False:
            console.print(f"[dim]{NOT_COORDINATED}[/]")
        console.print(report.run_view(record))
    return record


@app.command()
def runs(
    ctx: typer.Context,
    bot: Annotated[str | None, typer.Argument(help="Only this bot's runs.", callback=_optional_bot_name)] = None,
    account: Annotated[
        str | None, typer.Argument(help="Only this account's runs.", callback=_optional_account_name)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIST, help="How many runs, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List recent runs, newest first."""
    database = _options(ctx).database()
    with database.reading() as session:
        lines = history.list_runs(session, bot, account, limit)
    if as_json:
        report.print_json(console, report.runs_json(lines))
    else:
        console.print(report.runs_view(lines) if lines else "no runs yet")


@app.command("report")
def show_report(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(min=1, max=MAX_RUN_ID, help="The run's id (see `recon runs`).")],
    as_json: JsonFlag = False,
) -> None:
    """Show what one run saw and did."""
    _print_run(_options(ctx).database(), run_id, as_json)


@app.command()
def fleet(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every bot and account: last run, its status, open breaks, halted or not."""
    options = _options(ctx)
    database = options.database()
    with database.reading() as session:
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
    _set_halted(ctx, bot, account, True, to_text(reason.strip(), "--reason", MAX_REASON))


@app.command()
def resume(ctx: typer.Context, bot: BotArg, account: AccountArg) -> None:
    """Lift a halt."""
    _set_halted(ctx, bot, account, False, None)


def _set_halted(ctx: typer.Context, bot: str, account: str, halted: bool, reason: str | None) -> None:
    database = _options(ctx).database()
    with database.transaction() as session:
        account_id = find_account(session, bot, account).id
        unchanged = history.set_halted(session, account_id, halted, reason, datetime.now(UTC))
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
    leg: Annotated[int, typer.Option(min=0, help="Position leg (hedge mode index), default 0.")] = 0,
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
    leg: Annotated[int, typer.Option(min=0, help="Position leg.")] = 0,
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
    with database.reading() as session:
        account_id = find_account(session, bot, account).id
        document = report.books_json(
            book_positions(session, account_id),
            completed_trades(session, account_id),
            position_groups(session, account_id),
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
    with _broker_errors(settings):
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
    from workers.backfill import backfill as run_backfill  # noqa: PLC0415 - see the note at the imports
    from workers.backfill import result_json as backfill_json  # noqa: PLC0415
    from workers.backfill import result_view as backfill_view  # noqa: PLC0415

    options = _options(ctx)
    config = options.fleet().account(bot, account)
    result = run_backfill(options.database(), config, dry_run=dry_run)
    if as_json:
        report.print_json(console, backfill_json(result))
    else:
        console.print(backfill_view(result))
    if result.status == "failed":
        _complain(f"backfill run {result.run_id} failed: {result.error or 'no reason recorded'}")
    raise typer.Exit(BACKFILL_EXIT[result.status])


@venue_app.command("check")
def venue_check(ctx: typer.Context, bot: BotArg, account: AccountArg, as_json: JsonFlag = False) -> None:
    """Connect with the configured credentials and show what the venue reports; changes nothing.

    Exit code: 0 when the venue answered, 2 for a configuration problem (a missing key variable, refused keys),
    3 when the venue could not be read (the reason is printed).
    """
    from workers.connect import open_venue  # noqa: PLC0415 - see the note at the imports

    config = _options(ctx).fleet().account(bot, account)
    venue = open_venue(config)
    try:
        snapshot = venue.fetch_snapshot(datetime.now(UTC))
    except FixConfiguration:
        raise
    except ReconError as error:
        failure = {"bot": bot, "account": account, "venue": venue.describe(), "ok": False, "error": str(error)}
        if as_json:
            report.print_json(console, failure)
        else:
            console.print(f"{venue.describe()}: cannot read the account: {error}")
        _complain(f"cannot read the account: {error}")
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
    force: Annotated[
        bool, typer.Option("--force", help="Write the demo into a directory that holds other files too.")
    ] = False,
) -> None:
    """Reconcile the example fleet (LXAlgo, Momentum, ShortSeller; paper and live) on simulated venues.

    DIR must be missing, empty, or an earlier demo holding only its own files; --force writes it anyway.
    """
    from workers.demo import run_demo  # noqa: PLC0415 - see the note at the imports

    run_demo(console, directory, _options(ctx).db, force=force)


# --- entry point ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the command line; every error ends it with one line on stderr and a documented exit code."""
    _route_logging()
    try:
        code = typer.main.get_command(app).main(args=argv, prog_name="recon", standalone_mode=False)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as error:  # the boundary: every error becomes one line and an exit code
        message, exit_code = explain(error)
        _complain(message)
        if _debugging() and not isinstance(error, typer.TyperException):
            traceback.print_exception(error, file=sys.stderr)
        sys.exit(exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def explain(error: Exception) -> tuple[str, int]:
    """The message and exit code for an error that ended a command; anything unexpected is an internal error."""
    if isinstance(error, typer.Abort):
        return "aborted", EXIT_FAILED
    if isinstance(error, typer.TyperException):
        usage = _first_line(error.format_message()) or "missing command"  # empty: the help was printed
        return f"{usage} (see `recon --help`)", EXIT_USAGE
    if isinstance(error, FixConfiguration):
        return str(error), EXIT_USAGE
    if isinstance(error, ReconError):
        return str(error), EXIT_FAILED
    if isinstance(error, SQLAlchemyError):
        return _database_problem(error), EXIT_FAILED
    if isinstance(error, ValidationError) and error.title == "Settings":
        return _settings_problem(error), EXIT_USAGE
    return (
        f"internal error: {type(error).__name__}: {_shortened(_first_line(error), MAX_INTERNAL)} "
        "(set RECON_DEBUG=1 for the traceback)",
        EXIT_INTERNAL,
    )


def _database_problem(error: SQLAlchemyError) -> str:
    reason = _first_line(error.orig if isinstance(error, DBAPIError) else error) or type(error).__name__
    if isinstance(error, OperationalError):
        return f"database unavailable: {reason}"
    if isinstance(error, DataError | IntegrityError):
        return f"the database refused a value (nothing changed): {reason}"
    return f"database unusable: {reason} (check --db / RECON_DATABASE_URL)"


def _settings_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = "_".join(str(part) for part in first["loc"]).upper()
    return f"invalid setting {'RECON_' + where if where else 'RECON_*'}: {first['msg']}"


def _complain(message: str) -> None:
    """Write ``message`` to stderr as one short line, without any URL's password."""
    line = _shortened(" ".join(hide_password(message).split()), MAX_LINE)
    sys.stderr.write(f"recon: error: {''.join(c if c.isprintable() else repr(c)[1:-1] for c in line)}\n")


def _first_line(value: object) -> str:
    lines = str(value).strip().splitlines()
    return lines[0].strip() if lines else ""


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _debugging() -> bool:
    return os.environ.get("RECON_DEBUG", "") not in ("", "0")


def _route_logging() -> None:
    """Log records go to stderr only with RECON_DEBUG; otherwise the report and the error line say it all."""
    root = logging.getLogger()
    if _debugging():
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    elif not root.handlers:
        root.addHandler(logging.NullHandler())  # keeps logging's last-resort handler off stderr


if __name__ == "__main__":
    main()
