"""Task entry points: check arguments, serve through ``workers.service``, map transient failures to retries.

    recon.reconcile(bot, account, reason="schedule", dry_run=False, *, ticket=None)
    recon.send_orders(run_id)   recon.alerts(run_id)   recon.backfill(run_id)   (a committed run's follow-ups)
    recon.recheck(bot, account)                                               (when a deferred finding is decidable)
    recon.staleness()           recon.recover()                               (beat's sweeps)

Arguments are checked before anything runs (``tasks.arguments``): a malformed call fails once with a short,
clear error and raises no alert. An unknown bot or account is refused likewise. A transient failure (the venue,
the database or Redis unavailable, the venue rate limiting) is retried with exponential backoff and jitter,
never sooner than the venue asked and never later than ``RECON_RETRY_BACKOFF_MAX``; each attempt is recorded
as a run, so the last failed one remains when retries run out.
"""

from __future__ import annotations

import inspect
import logging
import math
import random
from datetime import datetime
from typing import Any

from celery import Task, shared_task
from celery.signals import setup_logging, worker_process_init

from reconciliation.errors import FixConfiguration, RateLimited, RetryLater
from tasks.arguments import (
    BadTaskArguments,
    account_arguments,
    reconcile_request,
    run_id_argument,
    single_run_id,
)
from workers.alerts import deliver, raise_staleness_alerts
from workers.celery import delivered_from, settings_of
from workers.coalescing import AccountBusy
from workers.fleet import AccountConfig, Fleet, fleet_of
from workers.follow_ups import (
    ALERTS_TASK,
    BACKFILL_TASK,
    SEND_ORDERS_TASK,
    STALENESS_TASK,
    account_of_run,
    record_failed_follow_up,
)
from workers.logs import configure_logging
from workers.pipeline import utc_now
from workers.rechecks import RECHECK_TASK, recheck_due, schedule_recheck
from workers.recovery import fail_lost_runs
from workers.results import RunResult
from workers.runtime import database_of, forget_connections, redis_of
from workers.schedule import RECOVER_TASK, queue_for
from workers.service import Service
from workers.settings import Settings
from workers.triggers import send_task, trigger_run

BACKOFF_BASE_SECONDS = 5.0
BUSY_RETRY_SECONDS = 1.0
log = logging.getLogger(__name__)


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    forget_connections()


@setup_logging.connect
def _logging(loglevel: Any = logging.INFO, **_: Any) -> None:
    # The worker's --loglevel decides: records below it are dropped before anything formats them.
    configure_logging(Settings(), level=loglevel if isinstance(loglevel, int) else logging.INFO)


class ReconTask(Task):  # type: ignore[misc]
    """A task whose arguments are bound to its signature before it runs: a wrong count or an unknown keyword is
    ``BadTaskArguments``, not a ``TypeError`` from somewhere inside."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            inspect.signature(self.run).bind(*args, **kwargs)
        except TypeError as error:
            raise BadTaskArguments(f"{self.name}: {error}") from None
        return super().__call__(*args, **kwargs)

    @property
    def settings(self) -> Settings:
        """The settings of the app this task runs in."""
        return settings_of(self.app)

    def service(self) -> Service:
        """The run service of this worker process: its database and Redis, follow-ups sent as tasks."""
        return Service(database_of(self.settings), self.settings, redis_of(self.settings), self.send_follow_up,
                       recheck=self.send_recheck)  # fmt: skip

    def send_follow_up(self, task: str, result: RunResult, config: AccountConfig) -> None:
        """Chain a committed run's follow-up, by name, with its run id only."""
        send_task(self.app, task, [result.run_id], queue_for(config))

    def send_recheck(self, config: AccountConfig, at: datetime) -> None:
        """Ask for one more run of the account at ``at``, when a finding it deferred becomes decidable."""
        schedule_recheck(redis_of(self.settings), self.app, config, at, utc_now())

    def fleet(self) -> Fleet:
        """The fleet file the settings name; none is a configuration error."""
        fleet = fleet_of(self.settings)
        if fleet is None:
            raise FixConfiguration("no fleet file: set RECON_FLEET")
        return fleet

    def retry_later(self, error: RetryLater) -> Exception:
        """The retry for a transient failure (raise it), or the error itself once retries are used up."""
        if self.request.retries >= self.settings.retry_max:
            return error
        if isinstance(error, AccountBusy):
            countdown = BUSY_RETRY_SECONDS + random.uniform(0, BUSY_RETRY_SECONDS)
        else:
            asked = error.retry_after if isinstance(error, RateLimited) else None
            countdown = backoff(self.request.retries, asked, self.settings.retry_backoff_max)
        queue = delivered_from(self.request.delivery_info)  # back to the queue it came from
        return self.retry(exc=error, countdown=countdown, queue=queue)  # type: ignore[no-any-return]


def backoff(retries: int, retry_after: float | None, cap: int) -> float:
    """Seconds before the next attempt: exponential with full jitter, at least what the venue asked (when that
    is a finite, non-negative number), never more than ``cap``."""
    ceiling = min(float(cap), BACKOFF_BASE_SECONDS * 2 ** min(max(retries, 0), 32))
    asked = retry_after if retry_after is not None and math.isfinite(retry_after) and retry_after > 0 else 0.0
    return min(float(cap), max(asked, random.uniform(ceiling / 2, ceiling)))


@shared_task(name="recon.reconcile", bind=True, base=ReconTask)
def reconcile_account(
    self: ReconTask, bot: Any, account: Any, reason: Any = "schedule", dry_run: Any = False, *, ticket: Any = None
) -> dict[str, Any]:
    """Reconcile one account; returns the runs it made, or that the run holding the account serves it."""
    request = reconcile_request(bot, account, reason, dry_run, ticket)
    config = self.fleet().account(request.bot, request.account)
    try:
        served = self.service().reconcile(config, request.reason, dry_run=request.dry_run, ticket=request.ticket)
    except RetryLater as error:
        raise self.retry_later(error) from error
    if served.more_requested:
        trigger_run(redis_of(self.settings), self.app, config, "manual", self.settings)
    return {
        "bot": request.bot,
        "account": request.account,
        "runs": [{"run_id": r.run_id, "status": r.status.value} for r in served.results],
        "deferred_to_holder": served.left_to_holder,
        "holder_ticket": served.holder_ticket if served.left_to_holder else None,
        "already_served": served.already_served,
    }


@shared_task(name=RECHECK_TASK, bind=True, base=ReconTask)
def recheck(self: ReconTask, bot: Any, account: Any) -> bool:
    """A deferred finding of the account is decidable now: ask for a run (coalesced); True when one was queued."""
    bot, account = account_arguments(RECHECK_TASK, bot, account)
    config = self.fleet().account(bot, account)
    try:
        return recheck_due(redis_of(self.settings), self.app, config, self.settings, utc_now()).queued
    except RetryLater as error:
        raise self.retry_later(error) from error


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
            record_failed_follow_up(database_of(self.settings), run_id, self.name, str(exc)[:500], utc_now())
        except Exception:  # a failure handler must not fail: the task's own error is already recorded by Celery
            log.exception("could not record the failure of %s as an alert", self.name)

    def follow_up(self, run_id: int) -> None:
        """Carry out this follow-up for ``run_id`` holding the account's lock (busy: retried shortly)."""
        database = database_of(self.settings)
        config = account_of_run(database, self.fleet(), run_id)
        try:
            self.service().follow_up_in_process(self.name, run_id, config)
        except RetryLater as error:
            raise self.retry_later(error) from error


@shared_task(name=SEND_ORDERS_TASK, bind=True, base=FollowUp)
def send_orders(self: FollowUp, run_id: Any) -> int:
    """Send the orders and cancels a committed run planned (``sync_to_local``), unless too late."""
    self.follow_up(run_id_argument(SEND_ORDERS_TASK, run_id))
    return int(run_id)


@shared_task(name=ALERTS_TASK, bind=True, base=FollowUp)
def alerts_for_run(self: FollowUp, run_id: Any) -> int:
    """Deliver the alerts a committed run recorded; a failing webhook is retried."""
    self.follow_up(run_id_argument(ALERTS_TASK, run_id))
    return int(run_id)


@shared_task(name=BACKFILL_TASK, bind=True, base=FollowUp)
def backfill_for_run(self: FollowUp, run_id: Any) -> int:
    """Replace the estimated exits of a committed run's account with the venue's real fills."""
    self.follow_up(run_id_argument(BACKFILL_TASK, run_id))
    return int(run_id)


@shared_task(name=STALENESS_TASK, bind=True, base=ReconTask)
def staleness(self: ReconTask) -> int:
    """Alert on accounts with no successful run for three of their intervals, then deliver."""
    fleet = fleet_of(self.settings)
    if fleet is None:
        return 0
    database = database_of(self.settings)
    raised = raise_staleness_alerts(database, fleet, utc_now())
    deliver(database, self.settings, utc_now())
    return raised


@shared_task(name=RECOVER_TASK, bind=True, base=ReconTask)
def recover(self: ReconTask) -> list[int]:
    """Fail the runs whose worker died, alert, and ask for one more run of each of their accounts."""
    database, redis = database_of(self.settings), redis_of(self.settings)
    lost = fail_lost_runs(database, redis, self.settings, utc_now())
    fleet = fleet_of(self.settings)
    for run in lost:
        if run.dry_run or fleet is None:
            continue
        try:
            config = fleet.account(run.bot, run.account)
        except FixConfiguration:
            continue  # the account left the fleet file: nothing to run again
        if run.reason == "backfill":
            send_task(self.app, BACKFILL_TASK, [run.run_id], queue_for(config))
        else:
            trigger_run(redis, self.app, config, "recovery", self.settings)
    if lost:
        deliver(database, self.settings, utc_now())
    return [run.run_id for run in lost]
