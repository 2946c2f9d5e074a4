"""Commands about runs: reconcile an account, list runs, show a report, the fleet at a glance, halt and resume,
backfill estimated exits.

``recon reconcile`` serves the run in-process on the same path the workers take (``workers.service``): with
``RECON_REDIS_URL`` set it takes the account's lock, coalesces with triggers and publishes to the bots' cache;
on the embedded default it runs alone and its report says so. ``--queue`` sends it to the workers instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli.files import ForceFlag, OutOption, refuse_existing, write_atomically
from cli.options import (
    EXIT_DISCREPANCIES,
    EXIT_FAILED,
    EXIT_IN_SYNC,
    MAX_LIST,
    MAX_REASON,
    MAX_RUN_ID,
    MAX_WAIT,
    STATUS_EXIT,
    AccountArg,
    BotArg,
    JsonFlag,
    Options,
    console,
    optional_account_name,
    optional_bot_name,
    options_of,
)
from reconciliation.errors import FixConfiguration, ReconError, RetryLater
from reconciliation.names import shown
from reconciliation.plan import RECONCILE_REASONS

if TYPE_CHECKING:
    from models.database import Database
    from models.history import AccountStatus, RunRecord
    from workers.fleet import AccountConfig, Fleet
    from workers.service import Service

BACKFILL_EXIT = {"in_sync": EXIT_IN_SYNC, "resolved": EXIT_IN_SYNC, "warned": EXIT_DISCREPANCIES, "failed": EXIT_FAILED}
NOT_COORDINATED = "no RECON_REDIS_URL: this run took no lock and published nothing (the embedded default)"


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
    5 internal error; with --queue also 6 no worker consumes the account's queue, 7 the wait ran out.
    """
    from cli.runtime import queued_run  # noqa: PLC0415 - Celery only for --queue

    if reason not in RECONCILE_REASONS:
        raise FixConfiguration(f"unknown reason {shown(reason)}: use one of {', '.join(RECONCILE_REASONS)}")
    if not 1 <= wait <= MAX_WAIT:
        raise FixConfiguration(f"--wait: must be from 1 to {MAX_WAIT:.0f} seconds, got {wait}")
    options = options_of(ctx)
    config = options.fleet().account(bot, account)
    database = options.database()
    coordinated: bool | None = None
    if queue:
        run_id, status = queued_run(options, config, reason, dry_run, wait)
    else:
        run_id, status, coordinated = _in_process_run(options, database, config, reason, dry_run, as_json)
    record = print_run(database, run_id, as_json, coordinated)
    if status == "failed":
        complain(f"run {run_id} failed: {record.run.error or 'no reason recorded'}")
    raise typer.Exit(STATUS_EXIT[status])


def _in_process_run(
    options: Options, database: Database, config: AccountConfig, reason: str, dry_run: bool, as_json: bool
) -> tuple[int, str, bool]:
    """Serve the run here; a failure recorded as a run is shown, then raised (transient or configuration)."""
    service = _service(options, database)
    try:
        served = service.reconcile(config, reason, dry_run=dry_run)
    except ReconError as error:
        if error.run_id is not None:
            print_run(database, error.run_id, as_json, service.coordinated)
        raise
    if not served.results:
        raise RetryLater(f"{config.label} is being reconciled elsewhere; that run serves this request")
    last = served.results[-1]
    return last.run_id, last.status.value, service.coordinated


def _service(options: Options, database: Database) -> Service:
    """The run service in this process: with Redis when ``RECON_REDIS_URL`` is set, else the embedded default."""
    from workers.rechecks import recheck_sender  # noqa: PLC0415
    from workers.runtime import checked_redis  # noqa: PLC0415
    from workers.service import Service  # noqa: PLC0415
    from workers.settings import load_settings  # noqa: PLC0415

    settings = options.settings()
    if "redis_url" not in load_settings().model_fields_set:
        return Service(database, settings)
    redis = checked_redis(settings)
    return Service(database, settings, redis, recheck=recheck_sender(redis, settings))


def print_run(database: Database, run_id: int, as_json: bool, coordinated: bool | None = None) -> RunRecord:
    """Print a run's report; ``coordinated`` False says the run took no Redis lock and published nothing."""
    from cli import render  # noqa: PLC0415
    from models.history import run_record  # noqa: PLC0415
    from workers.reports import run_json  # noqa: PLC0415

    with database.reading() as session:
        record = run_record(session, run_id)
    if as_json:  # the same contract as `recon report --json`
        render.print_json(console, run_json(record))
    else:
        if coordinated is False:
            console.print(f"[dim]{NOT_COORDINATED}[/]")
        console.print(render.run_view(record))
    return record


def complain(message: str) -> None:
    """One ``recon: error:`` line on stderr (the command goes on to exit with its code)."""
    from cli.app import complain as write  # noqa: PLC0415

    write(message)


def runs(
    ctx: typer.Context,
    bot: Annotated[str | None, typer.Argument(help="Only this bot's runs.", callback=optional_bot_name)] = None,
    account: Annotated[
        str | None, typer.Argument(help="Only this account's runs.", callback=optional_account_name)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIST, help="How many runs, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List recent runs, newest first."""
    from cli import render  # noqa: PLC0415
    from models.history import list_runs  # noqa: PLC0415
    from workers.reports import runs_json  # noqa: PLC0415

    database = options_of(ctx).database()
    with database.reading() as session:
        lines = list_runs(session, bot, account, limit)
    if as_json:
        render.print_json(console, runs_json(lines))
    else:
        console.print(render.runs_view(lines) if lines else "no runs yet")


def report(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(min=1, max=MAX_RUN_ID, help="The run's id (see `recon runs`).")],
    as_json: JsonFlag = False,
    format_name: Annotated[
        str | None, typer.Option("--format", help="text (default), json (as --json) or csv (one row per finding).")
    ] = None,
    out: OutOption = None,
    force: ForceFlag = False,
) -> None:
    """Show what one run saw and did, or write it to a file (--out) as text, JSON or CSV."""
    from cli.exports import chosen_format  # noqa: PLC0415

    chosen = chosen_format(format_name, as_json)
    if out is not None:
        refuse_existing(out, force)
    database = options_of(ctx).database()
    if out is None and chosen != "csv":
        print_run(database, run_id, chosen == "json")
        return
    text = _report_text(database, run_id, chosen)
    if out is None:
        console.file.write(text)
        return
    write_atomically(out, text, force)
    console.print(f"wrote run {run_id} as {chosen} to {out}", soft_wrap=True)


def _report_text(database: Database, run_id: int, chosen: str) -> str:
    """One run's report in the ``chosen`` format, as a file holds it."""
    from cli import render  # noqa: PLC0415
    from cli.exports import plain_text, run_csv  # noqa: PLC0415
    from models.history import run_record  # noqa: PLC0415
    from workers.reports import run_json  # noqa: PLC0415

    with database.reading() as session:
        record = run_record(session, run_id)
    if chosen == "json":
        return render.json_text(run_json(record))
    if chosen == "csv":
        return run_csv(run_json(record))
    return plain_text(render.run_view(record))


def fleet(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every bot and account: last run, its status, open breaks, halted or not."""
    from cli import render  # noqa: PLC0415
    from models.history import fleet_status  # noqa: PLC0415
    from workers.reports import fleet_json  # noqa: PLC0415

    options = options_of(ctx)
    database = options.database()
    with database.reading() as session:
        accounts = fleet_status(session)
    if options.has_fleet():
        accounts = _with_unrun_accounts(accounts, options.fleet())
    if as_json:
        render.print_json(console, fleet_json(accounts))
    else:
        console.print(render.fleet_view(accounts) if accounts else "no accounts yet")


def _with_unrun_accounts(accounts: list[AccountStatus], fleet_config: Fleet) -> list[AccountStatus]:
    """``accounts`` plus the fleet file's accounts the database has never seen, by bot and account."""
    from models.history import AccountStatus  # noqa: PLC0415

    known = {(a.bot, a.account) for a in accounts}
    unrun = [
        AccountStatus(c.bot, c.account, c.venue, False, None, None, None, None, 0)
        for c in fleet_config.accounts
        if (c.bot, c.account) not in known
    ]
    return sorted(accounts + unrun, key=lambda a: (a.bot, a.account))


def halt(
    ctx: typer.Context,
    bot: BotArg,
    account: AccountArg,
    reason: Annotated[str, typer.Option(help="Why the account is halted (shown to bots and people).")],
) -> None:
    """Halt an account: its bot must not open new risk, and reconciliation sends it no order, until resumed."""
    from workers.books import to_text  # noqa: PLC0415

    _set_halted(ctx, bot, account, True, to_text(reason.strip(), "--reason", MAX_REASON))


def resume(ctx: typer.Context, bot: BotArg, account: AccountArg) -> None:
    """Lift a halt."""
    _set_halted(ctx, bot, account, False, None)


def _set_halted(ctx: typer.Context, bot: str, account: str, halted: bool, reason: str | None) -> None:
    from workers.books import BooksClient  # noqa: PLC0415

    unchanged = BooksClient(options_of(ctx).database()).set_halted(bot, account, halted, reason)
    state = "halted" if halted else "resumed"
    console.print(f"{bot}/{account} {'was already' if unchanged else 'is now'} {state}")


def backfill(
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
    from cli import render  # noqa: PLC0415
    from workers.backfill import backfill as run_backfill  # noqa: PLC0415
    from workers.reports import backfill_json  # noqa: PLC0415

    options = options_of(ctx)
    config = options.fleet().account(bot, account)
    database = options.database()
    with _service(options, database).holding(config):  # a backfill never overlaps a run of the account
        result = run_backfill(database, config, dry_run=dry_run)
    if as_json:
        render.print_json(console, backfill_json(result))
    else:
        console.print(render.backfill_view(result))
    if result.status == "failed":
        complain(f"backfill run {result.run_id} failed: {result.error or 'no reason recorded'}")
    raise typer.Exit(BACKFILL_EXIT[result.status])
