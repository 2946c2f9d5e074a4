"""Commands that reach the distributed runtime: beat's schedule, a trigger, and a run sent to the workers.

Redis is checked first (Celery would retry for 20 s before giving up): an unreachable or malformed
``RECON_REDIS_URL`` is one line, at once (``workers.runtime.checked_redis``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli.options import AccountArg, BotArg, JsonFlag, Options, console, options_of

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
    from workers.runtime import checked_redis  # noqa: PLC0415

    settings = options_of(ctx).settings()
    checked_redis(settings)
    queued = BotClient(settings).request_reconciliation(bot, account, reason)
    console.print(f"{bot}/{account}: " + ("run queued" if queued else "a run is already queued; this request joins it"))


def queued_run(options: Options, config: AccountConfig, reason: str, dry_run: bool, wait: float) -> tuple[int, str]:
    """Send a run to the workers (on the account's queue) and wait for its last run: its id and status.

    On a terminal, stderr shows what the wait is for and for how long; in a pipe nothing but the report is written.
    """
    from rich.console import Console  # noqa: PLC0415

    from workers.triggers import Waiting, run_on_workers  # noqa: PLC0415 - Celery only for --queue

    progress = Console(stderr=True, highlight=False)
    if not progress.is_terminal:
        return run_on_workers(options.settings(), config, reason, dry_run, wait)
    with progress.status(f"{config.label}: asking the workers", spinner="line") as status:

        def show(waiting: Waiting) -> None:
            what = "waiting for a worker" if waiting.state == "queued" else "running on a worker"
            status.update(f"{config.label}: {what} ({waiting.queue}): {waiting.elapsed:.0f} s of {wait:g} s")

        return run_on_workers(options.settings(), config, reason, dry_run, wait, show)
