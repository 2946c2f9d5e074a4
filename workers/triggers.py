"""Asking the workers for a run: counted and coalesced (``workers.coalescing``), queued at most once per window.

Used by bots (``workers.bot_client``), ``recon trigger``, the API and the recovery sweep. Tasks are sent by
name: nothing here imports the tasks.
"""

from __future__ import annotations

from celery import Celery
from kombu.exceptions import OperationalError as BrokerError
from redis import Redis
from redis.exceptions import RedisError

from reconciliation.errors import CoordinationUnavailable, RetryLater
from workers.coalescing import Trigger, record_trigger
from workers.fleet import AccountConfig
from workers.runtime import checked_redis
from workers.schedule import RECONCILE_TASK, queue_for
from workers.settings import Settings


def trigger_run(redis: Redis, app: Celery, config: AccountConfig, reason: str, settings: Settings) -> Trigger:
    """Ask for a run of ``config``'s account; ``queued`` is False when a queued or running run will serve it."""
    trigger = record_trigger(redis, config, reason, settings)
    if trigger.queued:
        send_task(app, RECONCILE_TASK, [config.bot, config.account, reason], queue_for(config), ticket=trigger.ticket)
    return trigger


def send_task(app: Celery, name: str, args: list[object], queue: str, **kwargs: object) -> None:
    """Send a task by name; a broker that cannot take it is ``CoordinationUnavailable``."""
    try:
        app.send_task(name, args=args, kwargs=kwargs, queue=queue)
    except BrokerError as error:
        raise CoordinationUnavailable(f"the message broker is unavailable: {error}") from error


def run_on_workers(
    settings: Settings, config: AccountConfig, reason: str, dry_run: bool, wait: float
) -> tuple[int, str]:
    """Send a run to the workers (on the account's queue) and wait for its last run: its id and status."""
    from celery.exceptions import TimeoutError as NoResultYet  # noqa: PLC0415

    from workers.celery import create_app  # noqa: PLC0415 - the app reads the fleet file: only when sending

    checked_redis(settings)
    try:
        pending = create_app(settings).send_task(
            RECONCILE_TASK, args=[config.bot, config.account, reason, dry_run], queue=queue_for(config)
        )
        outcome = pending.get(timeout=wait, propagate=True)
    except (TimeoutError, NoResultYet) as error:
        raise RetryLater(f"no worker finished the run within {wait:.0f} s (task {pending.id})") from error
    except (BrokerError, RedisError) as error:
        raise CoordinationUnavailable(f"Redis unavailable: {str(error).strip().splitlines()[0]}") from error
    if not outcome["runs"]:
        raise RetryLater("another worker holds the account; it runs once more before releasing it")
    last = outcome["runs"][-1]
    return int(last["run_id"]), str(last["status"])
