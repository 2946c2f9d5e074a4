"""A backfill holds its account's lock like a reconciliation: the two never overlap, and neither fences the other.

Before, 25 of 40 backfills overlapped a reconciliation of the same account and 12 reconciliations failed with
"lost the account to a newer run". Here both are sent together, repeatedly, to a real worker with four threads.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from sqlalchemy import select

from models import Run
from models.database import Database
from workers.celery import create_app
from workers.follow_ups import BACKFILL_TASK
from workers.schedule import QUEUES, RECONCILE_TASK
from workers.settings import Settings

TRIALS = 12
TIMEOUT = 60


@pytest.fixture
def quick_retries(settings: Settings) -> Settings:
    """Busy accounts are tried again within a second, so the trials stay short."""
    return settings.model_copy(update={"retry_backoff_max": 1, "retry_max": 30})


def intervals(database_url: str) -> list[tuple[str, str, datetime, datetime | None, str | None]]:
    database = Database(database_url)
    with database.sessions() as session:
        rows = [(r.reason, r.status, r.started_at, r.finished_at, r.error) for r in session.scalars(select(Run))]
    database.dispose()
    return rows


def test_backfills_and_reconciliations_of_one_account_never_overlap(
    quick_retries: Settings, postgres_url: str, example_fleet: Path
) -> None:
    app: Celery = create_app(quick_retries)
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False, queues=list(QUEUES),
                      loglevel="WARNING", shutdown_timeout=30):  # fmt: skip
        first = app.send_task(RECONCILE_TASK, args=["lxalgo", "paper", "manual"], queue="recon.sim")
        run_id = first.get(timeout=TIMEOUT)["runs"][0]["run_id"]
        for _ in range(TRIALS):
            sent: list[Any] = [
                app.send_task(BACKFILL_TASK, args=[run_id], queue="recon.sim"),
                app.send_task(RECONCILE_TASK, args=["lxalgo", "paper", "manual"], queue="recon.sim"),
                app.send_task(BACKFILL_TASK, args=[run_id], queue="recon.sim"),
            ]
            for result in sent:
                result.get(timeout=TIMEOUT)

    rows = intervals(postgres_url)
    assert [r for r in rows if r[1] == "failed"] == []
    assert sum(1 for r in rows if r[0] == "backfill") >= TRIALS
    spans = sorted((start, end) for _, _, start, end, _ in rows if end is not None)
    assert len(spans) == len(rows)
    overlapping = [(a, b) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    assert overlapping == []
