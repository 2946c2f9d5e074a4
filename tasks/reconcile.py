"""Task entry points: check arguments, run through ``workers``, map transient failures to retries.

    recon.reconcile(bot, account, reason="schedule", dry_run=False)
    recon.alerts(run_id)      recon.backfill(run_id)      (follow-ups of a committed run, by run id only)
    recon.staleness()         recon.recover()             (beat's sweeps)

Arguments are checked before anything runs (``tasks.arguments``): a malformed call fails once with a short,
clear error and raises no alert. An unknown bot or account is refused likewise. A run that failed because the
venue was unavailable or rate-limited is retried with exponential backoff and jitter (never sooner than the
venue asked, never later than ``RECON_RETRY_BACKOFF_MAX``); each attempt is recorded as a run, so the last
failed one remains when retries run out.
"""

from __future__ import annotations

import inspect
import logging
import math
import random
from typing import Any

from celery import Task, shared_task
from celery.signals import setup_logging, worker_process_init
from redis.exceptions import RedisError

from reconciliation.errors import FixConfiguration, RetryLater
from tasks.arguments import BadTaskArguments, reconcile_request, run_id_argument, single_run_id
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
from workers.recovery import fail_lost_runs
from workers.runner import holding_account, request_run, run_exclusively
from workers.runtime import database_of, forget_connections, redis_of
from workers.schedule import RECOVER_TASK, queue_for
from workers.settings import Settings

BACKOFF_BASE_SECONDS = 5.0
log = logging.getLogger(__name__)


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    forget_connections()


@setup_logging.connect
def _logging(**_: Any) -> None:
    configure_logging(Settings())


class ReconTask(Task):  # type: ignore[misc]
    """A task whose arguments are bound to its signature before it runs: a wrong count or an unknown keyword is
    ``BadTaskArguments``, not a ``TypeError`` from somewhere inside."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            inspect.signature(self.run).bind(*args, **kwargs)
        except TypeError as error:
            raise BadTaskArguments(f"{self.name}: {error}") from None
        return super().__call__(*args, **kwargs)


def backoff(retries: int, retry_after: float | None, cap: int) -> float:
    """Seconds before the next attempt: exponential with full jitter, at least what the venue asked (when that
    is a finite, non-negative number), never more than ``cap``."""
    ceiling = min(float(cap), BACKOFF_BASE_SECONDS * 2 ** min(max(retries, 0), 32))
    asked = retry_after if retry_after is not None and math.isfinite(retry_after) and retry_after > 0 else 0.0
    return min(float(cap), max(asked, random.uniform(ceiling / 2, ceiling)))


def _settings(task: Task) -> Settings:
    return settings_of(task.app)


@shared_task(name="recon.reconcile", bind=True, base=ReconTask)
def reconcile_account(
    self: Task, bot: Any, account: Any, reason: Any = "schedule", dry_run: Any = False
) -> dict[str, Any]:
    """Reconcile one account; returns the runs it made (or that the run holding the account will do it)."""
    request = reconcile_request(bot, account, reason, dry_run)
    settings = _settings(self)
    fleet = fleet_of(settings)
    if fleet is None:
        raise FixConfiguration("no fleet file: set RECON_FLEET")
    config = fleet.account(request.bot, request.account)
    try:
        outcome = run_exclusively(redis_of(settings), database_of(settings), config, settings, request.reason,
                                  request.dry_run)  # fmt: skip
    except (RetryLater, RedisError) as error:  # the database or Redis is briefly unavailable: try again later
        if self.request.retries >= settings.retry_max:
            raise
        raise self.retry(
            exc=error, countdown=backoff(self.request.retries, None, settings.retry_backoff_max)
        ) from error
    database = database_of(settings)
    for result in outcome.runs:  # after the commit, with the run id only
        for follow_up in follow_ups(database, result, request.dry_run):
            self.app.send_task(follow_up, args=[result.run_id], queue=queue_for(config))
    last = outcome.runs[-1] if outcome.runs else None
    if last is not None and last.retryable and self.request.retries < settings.retry_max:
        raise self.retry(countdown=backoff(self.request.retries, last.retry_after, settings.retry_backoff_max))
    return {
        "bot": request.bot,
        "account": request.account,
        "runs": [{"run_id": r.run_id, "status": r.status} for r in outcome.runs],
        "deferred_to_holder": outcome.deferred_to_holder,
    }


@shared_task(name="recon.noop")
def noop() -> None:
    """Does nothing: the benchmark's measure of Celery's own cost per task."""


class FollowUp(ReconTask):
    """A task run for a committed run; when it fails for good, the failure becomes an alert on that run's account.

    A call with bad arguments raises no alert: it names no run of ours, and blaming one would mislead.
    """

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if isinstance(exc, BadTaskArguments):
            return
        try:
            run_id = single_run_id(self.name, args, kwargs)
            settings = _settings(self)
            record_failed_follow_up(database_of(settings), run_id, self.name, str(exc)[:500], utc_now())
        except Exception:  # a failure handler must not fail: the task's own error is already recorded by Celery
            log.exception("could not record the failure of %s as an alert", self.name)


@shared_task(name=ALERTS_TASK, bind=True, base=FollowUp)
def alerts_for_run(self: Task, run_id: Any) -> int:
    """Derive and deliver the alerts of a committed run; a failing webhook is retried."""
    run_id = run_id_argument(ALERTS_TASK, run_id)
    settings = _settings(self)
    try:
        return alert_for_run(database_of(settings), settings, run_id, utc_now())
    except RetryLater as error:
        if self.request.retries >= settings.retry_max:
            raise
        raise self.retry(
            exc=error, countdown=backoff(self.request.retries, None, settings.retry_backoff_max)
        ) from error


@shared_task(name=BACKFILL_TASK, bind=True, base=FollowUp)
def backfill_for_run(self: Task, run_id: Any) -> dict[str, Any]:
    """Replace the estimated exits of a committed run's account with the venue's real fills, holding the
    account's lock like a reconciliation (busy: retried shortly)."""
    run_id = run_id_argument(BACKFILL_TASK, run_id)
    settings = _settings(self)
    fleet = fleet_of(settings)
    if fleet is None:
        raise FixConfiguration("no fleet file: set RECON_FLEET")
    database = database_of(settings)
    config = account_of_run(database, fleet, run_id)
    try:
        with holding_account(redis_of(settings), config.bot, config.account, settings):
            result = backfill(database, config)
    except (RetryLater, RedisError) as error:
        if self.request.retries >= settings.retry_max:
            raise
        raise self.retry(
            exc=error, countdown=backoff(self.request.retries, None, settings.retry_backoff_max)
        ) from error
    if result.status == "failed" and self.request.retries < settings.retry_max:
        raise self.retry(countdown=backoff(self.request.retries, None, settings.retry_backoff_max))
    return {"run_id": result.run_id, "status": result.status, "backfilled": result.backfilled}


@shared_task(name=STALENESS_TASK, bind=True, base=ReconTask)
def staleness(self: Task) -> int:
    """Alert on accounts with no successful run for three of their intervals, then deliver."""
    settings = _settings(self)
    fleet = fleet_of(settings)
    if fleet is None:
        return 0
    database = database_of(settings)
    raised = raise_staleness_alerts(database, fleet, utc_now())
    deliver(database, settings, utc_now())
    return raised


@shared_task(name=RECOVER_TASK, bind=True, base=ReconTask)
def recover(self: Task) -> list[int]:
    """Fail the runs whose worker died, alert, and ask for one more run of each of their accounts."""
    settings = _settings(self)
    database, redis = (
        database_of(settings),
        redis_of(settings),
    )
    lost = fail_lost_runs(database, redis, settings, utc_now())
    fleet = fleet_of(settings)
    for run in lost:
        if run.dry_run or fleet is None:
            continue
        try:
            config = fleet.account(run.bot, run.account)
        except FixConfiguration:
            continue  # the account left the fleet file: nothing to run again
        if run.reason == "backfill":
            self.app.send_task(BACKFILL_TASK, args=[run.run_id], queue=queue_for(config))
        else:
            request_run(redis, self.app, config, "recovery", settings)
    if lost:
        deliver(database, settings, utc_now())
    return [run.run_id for run in lost]
