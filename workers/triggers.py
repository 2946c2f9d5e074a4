"""Asking the workers for a run: counted and coalesced (``workers.coalescing``), queued at most once per window.

Used by bots (``workers.bot_client``), ``recon trigger``, the API and the recovery sweep. Tasks are sent by
name: nothing here imports the tasks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.result import AsyncResult
from redis import Redis
from redis.exceptions import RedisError

from reconciliation.errors import CoordinationUnavailable, NoWorker, RetryLater, WaitExpired
from workers.coalescing import Trigger, record_trigger, served_count
from workers.fleet import AccountConfig
from workers.runtime import broker_errors, broker_unavailable, checked_broker, checked_redis, first_line
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
) -> str:
    """Send a task by name (to run no sooner than ``eta`` when given): its id. A broker that cannot take it is
    ``CoordinationUnavailable``.

    ``eta`` is sent as a countdown of whole seconds, rounded up: on RabbitMQ, Celery delays a message by whole seconds
    and refuses (``ValueError``) a delay under one second (``workers.celery``).
    """
    countdown = None if eta is None else math.ceil((eta - datetime.now(UTC)).total_seconds())
    try:
        sent = app.send_task(name, args=args, kwargs=kwargs, queue=queue,
                             countdown=countdown if countdown and countdown > 0 else None)  # fmt: skip
    except broker_errors(app.conf.broker_url) as error:
        raise broker_unavailable(app.conf.broker_url, error) from error
    return str(sent.id)


WORKER_CHECK_SECONDS = 2.0  # how long the workers have to say which queues they consume
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Waiting:
    """Where a run sent to the workers stands: ``queued`` (no worker took it yet), ``running``, or ``held`` (the
    run holding the account runs once more for it)."""

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
) -> tuple[int, str] | None:
    """Send a run to the workers (on the account's queue) and wait until a run has served it: the id and status
    of the last run the task made, or None when the run that held the account served it (the caller reads the
    account's latest run).

    Refused at once (``NoWorker``) when no worker consumes the queue. The request expires after ``wait`` seconds
    and is revoked when the wait runs out (``WaitExpired``), so a worker that comes up later does not run it; a
    run that already started finishes and is recorded. A task that finds the account held takes a ticket from
    the holder, which runs once more for it (a dry run is not made for it: ``RetryLater``). ``progress`` hears
    about the wait each second.
    """
    from workers.celery import create_app  # noqa: PLC0415 - the app reads the fleet file: only when sending

    redis = checked_redis(settings)
    checked_broker(settings)
    app = create_app(settings)
    queue = queue_for(config)
    started = time.monotonic()
    report = progress or (lambda _: None)
    try:
        if not consumers_of(app, queue):
            raise NoWorker(f"no worker consumes queue {queue}: start one (`honcho start worker`) and try again")
        pending = app.send_task(
            RECONCILE_TASK, args=[config.bot, config.account, reason, dry_run], queue=queue, expires=wait
        )
        outcome = _awaited(pending, queue, wait, report)
        if outcome["runs"]:
            last = outcome["runs"][-1]
            return int(last["run_id"]), str(last["status"])
        ticket = outcome.get("holder_ticket")
        if not isinstance(ticket, int):
            raise RetryLater(f"{config.label} is being reconciled; try again shortly")
        while served_count(redis, config) < ticket:
            elapsed = time.monotonic() - started
            if elapsed >= wait:
                raise WaitExpired(f"the run holding {config.label} did not finish within {wait:g} s; see `recon runs`")
            report(Waiting(pending.id, queue, "held", elapsed))
            time.sleep(min(POLL_SECONDS, wait - elapsed))
    except RedisError as error:
        raise CoordinationUnavailable(f"Redis unavailable: {first_line(error)}") from error
    except broker_errors(app.conf.broker_url) as error:
        raise broker_unavailable(app.conf.broker_url, error) from error
    return None


def consumers_of(app: Celery, queue: str) -> list[str]:
    """The workers that answer within ``WORKER_CHECK_SECONDS`` and consume ``queue``."""
    return consumers_by_queue(app).get(queue, [])


def consumers_by_queue(app: Celery, timeout: float = WORKER_CHECK_SECONDS) -> dict[str, list[str]]:
    """Each queue some worker consumes, with the workers (by name) that answer within ``timeout``."""
    try:
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
    except broker_errors(app.conf.broker_url) as error:
        raise broker_unavailable(app.conf.broker_url, error) from error
    consumers: dict[str, list[str]] = {}
    for worker, queues in sorted(replies.items()):
        for queue in queues or ():
            consumers.setdefault(str(queue.get("name")), []).append(worker)
    return consumers


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
