"""Commands that reach the distributed runtime: beat's schedule, a trigger, and a run sent to the workers.

Redis and the message broker are checked first (Celery would retry for 20 s before giving up): an unreachable or
malformed ``RECON_REDIS_URL`` or ``RECON_BROKER_URL`` is one line, at once (``workers.runtime.checked_redis``,
``checked_broker``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.options import MAX_WAIT, AccountArg, BotArg, JsonFlag, Options, console, options_of
from reconciliation.errors import FixConfiguration

if TYPE_CHECKING:
    from workers.fleet import AccountConfig

REDIS_SCHEMES = ("redis", "rediss", "unix")


def schedule(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Beat's entries from the fleet file: one reconciliation per bot and account at its interval, and the sweeps."""
    from rich.table import Table  # noqa: PLC0415

    from cli.render import print_json  # noqa: PLC0415
    from workers.schedule import beat_schedule  # noqa: PLC0415

    options = options_of(ctx)
    entries = beat_schedule(options.fleet(), float(options.settings().recover_seconds))
    if as_json:
        print_json(
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


def trigger(
    ctx: typer.Context,
    bot: BotArg,
    account: AccountArg,
    reason: Annotated[str, typer.Option(help="large_fill, startup, manual or schedule.")] = "manual",
) -> None:
    """Ask the workers for a run of the account (coalesced with any request already queued or running)."""
    from workers.bot_client import BotClient  # noqa: PLC0415 - imports Celery, which only this command needs
    from workers.runtime import checked_broker, checked_redis  # noqa: PLC0415

    settings = options_of(ctx).settings()
    checked_redis(settings)
    checked_broker(settings)
    queued = BotClient(settings).request_reconciliation(bot, account, reason)
    console.print(f"{bot}/{account}: " + ("run queued" if queued else "a run is already queued; this request joins it"))


def workers(
    ctx: typer.Context,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait until some worker consumes every queue the fleet uses.")
    ] = 0.0,
    as_json: JsonFlag = False,
) -> None:
    """The queues the fleet's accounts use and the workers consuming each. Exit code 6 when a queue has none
    (after --wait seconds of asking again)."""
    import time  # noqa: PLC0415

    from cli.options import EXIT_NO_WORKER  # noqa: PLC0415
    from cli.render import print_json  # noqa: PLC0415
    from workers.celery import create_app  # noqa: PLC0415 - Celery only for this command
    from workers.runtime import checked_broker, checked_redis  # noqa: PLC0415
    from workers.schedule import queue_for  # noqa: PLC0415
    from workers.triggers import consumers_by_queue  # noqa: PLC0415

    if not 0 <= wait <= MAX_WAIT:
        raise FixConfiguration(f"--wait: must be from 0 to {MAX_WAIT:.0f} seconds, got {wait}")
    options = options_of(ctx)
    settings = options.settings()
    needed = sorted({queue_for(config) for config in options.fleet().accounts} | {"recon.default"})
    checked_redis(settings)
    checked_broker(settings)
    app = create_app(settings)
    deadline = time.monotonic() + wait
    while True:
        consumers = consumers_by_queue(app, timeout=1.0)
        missing = [queue for queue in needed if not consumers.get(queue)]
        if not missing or time.monotonic() >= deadline:
            break
    if as_json:
        print_json(console, [{"queue": queue, "workers": consumers.get(queue, [])} for queue in needed])
    else:
        for queue in needed:
            console.print(f"{queue}: {', '.join(consumers.get(queue, [])) or 'NO WORKER'}")
    if missing:
        raise typer.Exit(EXIT_NO_WORKER)


PROCFILE = Path(__file__).resolve().parents[1] / "Procfile"


def procfile() -> None:
    """Print the path of the Procfile the service runs from: `honcho -f "$(recon procfile)" start worker beat flower`
    starts it from any directory (the processes run in that directory)."""
    if not PROCFILE.is_file():
        raise FixConfiguration(
            f"no Procfile at {PROCFILE}: this installation is not a checkout of fleet-recon "
            "(install it with `pip install -e` from a checkout, or use docker compose)"
        )
    print(PROCFILE)


def queued_run(options: Options, config: AccountConfig, reason: str, dry_run: bool, wait: float) -> tuple[int, str]:
    """Send a run to the workers (on the account's queue) and wait for the run that served it: its id and status
    (the account's latest real run when the run holding the account served it).

    On a terminal, stderr shows what the wait is for and for how long; in a pipe nothing but the report is written.
    """
    from rich.console import Console  # noqa: PLC0415

    from workers.triggers import Waiting, run_on_workers  # noqa: PLC0415 - Celery only for --queue

    progress = Console(stderr=True, highlight=False)
    if not progress.is_terminal:
        served = run_on_workers(options.settings(), config, reason, dry_run, wait)
    else:
        with progress.status(f"{config.label}: asking the workers", spinner="line") as status:

            def show(waiting: Waiting) -> None:
                what = WAITING_FOR[waiting.state]
                status.update(f"{config.label}: {what} ({waiting.queue}): {waiting.elapsed:.0f} s of {wait:g} s")

            served = run_on_workers(options.settings(), config, reason, dry_run, wait, show)
    return served if served is not None else _latest_run(options, config)


WAITING_FOR = {
    "queued": "waiting for a worker",
    "running": "running on a worker",
    "held": "served by the run under way",
}


def _latest_run(options: Options, config: AccountConfig) -> tuple[int, str]:
    """The account's newest finished run that is not a dry run or a backfill."""
    from models.history import list_runs  # noqa: PLC0415

    with options.database().reading() as session:
        for line in list_runs(session, config.bot, config.account, limit=20):
            if not line.dry_run and line.reason != "backfill" and line.status != "running":
                return line.run_id, line.status
    raise FixConfiguration(f"{config.label}: the run that served this request is not in the database")
