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

from reconciliation.errors import FixConfiguration
from workers.celery import fleet_of, settings_of
from workers.logs import configure_logging
from workers.runner import check_request, run_exclusively
from workers.runtime import database_for, forget_connections, redis_for
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
    outcome = run_exclusively(
        redis_for(settings.redis_url), database_for(settings.database_url), config, settings, reason, dry_run
    )
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
