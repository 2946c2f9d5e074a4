"""Task entry points: parse arguments, run through ``workers``, map transient failures to retries.

    recon.reconcile(bot, account, reason="schedule", dry_run=False)

An unknown bot or account is refused with a clear error and nothing runs. A run that failed because the
venue was unavailable or rate-limited is retried with exponential backoff and jitter (never sooner than the
venue asked); each attempt is recorded as a run, so the last failed one remains when retries run out.
"""

from __future__ import annotations

import random
from typing import Any

from celery import Task, shared_task
from celery.signals import setup_logging, worker_process_init
from redis.exceptions import RedisError

from reconciliation.errors import FixConfiguration, RetryLater
from workers.alerts import alert_for_run, deliver, raise_staleness_alerts
from workers.backfill import backfill
from workers.celery import fleet_of, settings_of
from workers.follow_ups import (
    ALERTS_TASK,
    BACKFILL_TASK,
    STALENESS_TASK,
    account_of_run,
    follow_ups,
    record_failed_follow_up,
)
from workers.logs import configure_logging
from workers.orchestrator import utc_now
from workers.runner import check_request, run_exclusively
from workers.runtime import database_for, forget_connections, redis_for
from workers.schedule import queue_for
from workers.settings import Settings

BACKOFF_BASE_SECONDS = 5.0


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    forget_connections()


@setup_logging.connect
def _logging(**_: Any) -> None:
    configure_logging(Settings())


@shared_task(name="recon.reconcile", bind=True)
def reconcile_account(
    self: Task, bot: str, account: str, reason: str = "schedule", dry_run: bool = False
) -> dict[str, Any]:
    """Reconcile one account; returns the runs it made (or that the run holding the account will do it)."""
    check_request(bot, account, reason)
    settings = settings_of(self.app)
    fleet = fleet_of(settings)
    if fleet is None:
        raise FixConfiguration("no fleet file: set RECON_FLEET")
    config = fleet.account(bot, account)
    try:
        outcome = run_exclusively(redis_for(settings.redis_url), database_for(settings.database_url), config,
                                  settings, reason, dry_run)  # fmt: skip
    except (RetryLater, RedisError) as error:  # the database or Redis is briefly unavailable: try again later
        if self.request.retries >= settings.retry_max:
            raise
        raise self.retry(
            exc=error, countdown=backoff(self.request.retries, None, settings.retry_backoff_max)
        ) from error
    database = database_for(settings.database_url)
    for result in outcome.runs:  # after the commit, with the run id only
        for follow_up in follow_ups(database, result, dry_run):
            self.app.send_task(follow_up, args=[result.run_id], queue=queue_for(config))
    last = outcome.runs[-1] if outcome.runs else None
    if last is not None and last.retryable and self.request.retries < settings.retry_max:
        raise self.retry(countdown=backoff(self.request.retries, last.retry_after, settings.retry_backoff_max))
    return {
        "bot": bot,
        "account": account,
        "runs": [{"run_id": r.run_id, "status": r.status} for r in outcome.runs],
        "deferred_to_holder": outcome.deferred_to_holder,
    }


def backoff(retries: int, retry_after: float | None, cap: int) -> float:
    """Seconds before the next attempt: exponential with full jitter, capped, at least what the venue asked."""
    ceiling = min(float(cap), BACKOFF_BASE_SECONDS * 2**retries)
    return max(retry_after or 0.0, random.uniform(ceiling / 2, ceiling))


@shared_task(name="recon.noop")
def noop() -> None:
    """Does nothing: the benchmark's measure of Celery's own cost per task."""


class FollowUp(Task):  # type: ignore[misc]
    """A task run for a committed run; when it fails for good, the failure becomes an alert."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        settings = settings_of(self.app)
        run_id = int(args[0]) if args else int(kwargs["run_id"])
        record_failed_follow_up(database_for(settings.database_url), run_id, self.name, str(exc), utc_now())


@shared_task(name=ALERTS_TASK, bind=True, base=FollowUp)
def alerts_for_run(self: Task, run_id: int) -> int:
    """Derive and deliver the alerts of a committed run; a failing webhook is retried."""
    settings = settings_of(self.app)
    try:
        return alert_for_run(database_for(settings.database_url), settings, int(run_id), utc_now())
    except RetryLater as error:
        if self.request.retries >= settings.retry_max:
            raise
        raise self.retry(
            exc=error, countdown=backoff(self.request.retries, None, settings.retry_backoff_max)
        ) from error


@shared_task(name=BACKFILL_TASK, bind=True, base=FollowUp)
def backfill_for_run(self: Task, run_id: int) -> dict[str, Any]:
    """Replace the estimated exits of a committed run's account with the venue's real fills."""
    settings = settings_of(self.app)
    fleet = fleet_of(settings)
    if fleet is None:
        raise FixConfiguration("no fleet file: set RECON_FLEET")
    database = database_for(settings.database_url)
    result = backfill(database, account_of_run(database, fleet, int(run_id)))
    if result.status == "failed" and self.request.retries < settings.retry_max:
        raise self.retry(countdown=backoff(self.request.retries, None, settings.retry_backoff_max))
    return {"run_id": result.run_id, "status": result.status, "backfilled": result.backfilled}


@shared_task(name=STALENESS_TASK, bind=True)
def staleness(self: Task) -> int:
    """Alert on accounts with no successful run for three of their intervals, then deliver."""
    settings = settings_of(self.app)
    fleet = fleet_of(settings)
    if fleet is None:
        return 0
    database = database_for(settings.database_url)
    raised = raise_staleness_alerts(database, fleet, utc_now())
    deliver(database, settings, utc_now())
    return raised
