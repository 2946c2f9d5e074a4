"""Commands that reach the distributed runtime: beat's schedule, a trigger, and a run sent to the workers.

Redis is checked first (Celery would retry for 20 s before giving up): an unreachable or malformed
``RECON_REDIS_URL`` is one line, at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from cli.options import AccountArg, BotArg, JsonFlag, Options, console, hide_password, options_of
from reconciliation.errors import FixConfiguration, RetryLater
from reconciliation.names import shown

if TYPE_CHECKING:
    from workers.fleet import AccountConfig
    from workers.settings import Settings

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

    settings = options_of(ctx).settings()
    with redis_errors(settings):
        queued = BotClient(settings).request_reconciliation(bot, account, reason)
    console.print(f"{bot}/{account}: " + ("run queued" if queued else "a run is already queued; this request joins it"))


def queued_run(options: Options, config: AccountConfig, reason: str, dry_run: bool, wait: float) -> tuple[int, str]:
    """Send a run to the workers (on the account's queue) and wait for its last run: its id and status."""
    from celery.exceptions import TimeoutError as NoResultYet  # noqa: PLC0415

    from workers.celery import create_app  # noqa: PLC0415
    from workers.schedule import RECONCILE_TASK, queue_for  # noqa: PLC0415

    settings = options.settings()
    with redis_errors(settings):
        pending = create_app(settings).send_task(
            RECONCILE_TASK, args=[config.bot, config.account, reason, dry_run], queue=queue_for(config)
        )
        try:
            outcome = pending.get(timeout=wait, propagate=True)
        except (TimeoutError, NoResultYet) as error:
            raise RetryLater(f"no worker finished the run within {wait:.0f} s (task {pending.id})") from error
    if not outcome["runs"]:
        raise RetryLater("another worker holds the account; it runs once more before releasing it")
    last = outcome["runs"][-1]
    return int(last["run_id"]), str(last["status"])


@contextmanager
def redis_errors(settings: Settings) -> Iterator[None]:
    """Check Redis answers before using it, and turn its errors (and the broker's) into ``RetryLater``."""
    from kombu.exceptions import OperationalError as BrokerError  # noqa: PLC0415
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
        raise RetryLater(f"Redis unavailable at {where}: {str(error).strip().splitlines()[0]}") from error
