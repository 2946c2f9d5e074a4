"""Asking the workers for a run: counted and coalesced (``workers.coalescing``), queued at most once per window.

Used by bots (``workers.bot_client``), ``recon trigger``, the API and the recovery sweep. Tasks are sent by
name: nothing here imports the tasks.
"""

from __future__ import annotations

from celery import Celery
from kombu.exceptions import OperationalError as BrokerError
from redis import Redis

from reconciliation.errors import CoordinationUnavailable
from workers.coalescing import Trigger, record_trigger
from workers.fleet import AccountConfig
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
