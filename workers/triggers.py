"""Asking the workers for a run: counted and coalesced (``workers.coalescing``), queued at most once per window.

Used by bots (``workers.bot_client``), ``recon trigger``, the API and the recovery sweep. Tasks are sent by
name: nothing here imports the tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import Celery
from celery.result import AsyncResult
from kombu.exceptions import OperationalError as BrokerError
from redis import Redis
from redis.exceptions import RedisError

from reconciliation.errors import CoordinationUnavailable, NoWorker, RetryLater, WaitExpired
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


def send_task(
    app: Celery, name: str, args: list[object], queue: str, *, eta: datetime | None = None, **kwargs: object
) -> None:
    """Send a task by name (to run no sooner than ``eta`` when given); a broker that cannot take it is
    ``CoordinationUnavailable``."""
    try:
        app.send_task(name, args=args, kwargs=kwargs, queue=queue, eta=eta)
    except BrokerError as error:
        raise CoordinationUnavailable(f"the message broker is unavailable: {error}") from error


WORKER_CHECK_SECONDS = 2.0  # how long the workers have to say which queues they consume
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Waiting:
    """Where a run sent to the workers stands: ``queued`` (no worker took it yet) or ``running``."""

    task_id: str
    queue: str
    state: str
    elapsed: float


def run_on_workers(
    settings: Settings,
    config: AccountConfig,
    reason: str,
    dry_run: bool,
    wait: float,
    progress: Callable[[Waiting], None] | None = None,
) -> tuple[int, str]:
    """Send a run to the workers (on the account's queue) and wait for its last run: its id and status.

    Refused at once (``NoWorker``) when no worker consumes the queue. The request expires after ``wait``
    seconds and is revoked when the wait runs out (``WaitExpired``), so a worker that comes up later does not
    run it; a run that already started finishes and is recorded. ``progress`` hears about the wait each second.
    """
    from workers.celery import create_app  # noqa: PLC0415 - the app reads the fleet file: only when sending

    checked_redis(settings)
    app = create_app(settings)
    queue = queue_for(config)
    try:
        if not consumers_of(app, queue):
            raise NoWorker(f"no worker consumes queue {queue}: start one (`honcho start worker`) and try again")
        pending = app.send_task(
            RECONCILE_TASK, args=[config.bot, config.account, reason, dry_run], queue=queue, expires=wait
        )
        outcome = _awaited(pending, queue, wait, progress or (lambda _: None))
    except (BrokerError, RedisError) as error:
        raise CoordinationUnavailable(f"Redis unavailable: {str(error).strip().splitlines()[0]}") from error
    if not outcome["runs"]:
        raise RetryLater("another worker holds the account; it runs once more before releasing it")
    last = outcome["runs"][-1]
    return int(last["run_id"]), str(last["status"])


def consumers_of(app: Celery, queue: str) -> list[str]:
    """The workers that answer within ``WORKER_CHECK_SECONDS`` and consume ``queue``."""
    replies = app.control.inspect(timeout=WORKER_CHECK_SECONDS).active_queues() or {}
    return sorted(worker for worker, queues in replies.items() if any(q.get("name") == queue for q in queues or ()))


def _awaited(pending: AsyncResult, queue: str, wait: float, progress: Callable[[Waiting], None]) -> Any:
    """The task's result, reporting progress each second; ``WaitExpired`` (after revoking it) when ``wait`` ends."""
    from celery.exceptions import TimeoutError as NoResultYet  # noqa: PLC0415

    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if elapsed >= wait:
            state = pending.state
            pending.revoke()
            if state == "STARTED":
                raise WaitExpired(
                    f"the run started on a worker and did not finish within {wait:g} s: it finishes there and is "
                    f"not retried (task {pending.id}); see `recon runs`"
                )
            raise WaitExpired(f"no worker took the run within {wait:g} s; it was withdrawn (task {pending.id})")
        try:
            return pending.get(timeout=min(POLL_SECONDS, wait - elapsed), propagate=True)
        except KeyboardInterrupt:
            pending.revoke()  # the caller is gone: a worker that has not taken it yet must not run it
            raise
        except (TimeoutError, NoResultYet):
            state = "running" if pending.state == "STARTED" else "queued"
            progress(Waiting(pending.id, queue, state, time.monotonic() - started))
