"""Task arguments are checked before anything runs: a bad call fails once, clearly, briefly, and alerts no one.

Each call goes through a real worker (threads pool) on real Redis and Postgres, sent by name as any process
that can write to the broker could send it.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from celery import Celery
from celery.result import AsyncResult
from redis import Redis
from sqlalchemy import func, select

from models import Alert, Run
from models.database import Database
from tasks.arguments import MAX_RUN_ID, BadTaskArguments, reconcile_request, run_id_argument
from tasks.reconcile import backoff
from workers.schedule import RECONCILE_TASK
from workers.settings import Settings

TIMEOUT = 60
HUGE_NAME = "x" * 1_000_000


def outcome(app: Celery, task: str, *args: Any, queue: str = "recon.sim", **kwargs: Any) -> AsyncResult:
    result = app.send_task(task, args=list(args), kwargs=kwargs, queue=queue)
    result.get(timeout=TIMEOUT, propagate=False)
    return result


def count(settings: Settings, table: type) -> int:
    database = Database(settings.database_url.get_secret_value())
    with database.sessions() as session:
        total = session.scalar(select(func.count()).select_from(table)) or 0
    database.dispose()
    return total


@pytest.mark.parametrize(
    ("args", "kwargs", "says"),
    [
        (["lxalgo", "paper", "manual", "false"], {}, "dry_run must be true or false, got 'false'"),
        (["lxalgo", "paper", "manual", None], {}, "dry_run must be true or false, got None"),
        (["lxalgo", "paper", "backfill"], {}, "reason 'backfill' is not one of"),
        (["lxalgo", "paper", 7], {}, "reason 7 is not one of"),
        (["evil'); DROP TABLE runs;--", "paper"], {}, "invalid bot name"),
        ([HUGE_NAME, "paper"], {}, "(1000002 characters)"),
        (["lxalgo", ["paper"]], {}, "invalid account name"),
        (["lxalgo"], {}, "missing a required argument: 'account'"),
        (["lxalgo", "paper", "manual", False, "extra"], {}, "too many positional arguments"),
        (["lxalgo", "paper"], {"colour": "red"}, "unexpected keyword argument 'colour'"),
    ],
)
def test_a_malformed_reconcile_call_fails_once_with_a_short_clear_error_and_runs_nothing(
    app: Celery, worker: Any, settings: Settings, redis: Redis, args: list[Any], kwargs: dict[str, Any], says: str
) -> None:
    result = outcome(app, RECONCILE_TASK, *args, **kwargs)

    assert result.state == "FAILURE"
    assert type(result.result).__name__ == "BadTaskArguments"
    assert says in str(result.result)
    assert len(str(result.result)) < 300
    assert sum(len(redis.get(key) or b"") for key in redis.keys("celery-task-meta-*")) < 4096
    assert count(settings, Run) == 0


@pytest.mark.parametrize(
    ("task", "args"),
    [
        ("recon.backfill", [2**31]),
        ("recon.backfill", [1, 2]),
        ("recon.backfill", []),
        ("recon.backfill", [1.5]),
        ("recon.backfill", [True]),
        ("recon.backfill", ["1"]),
        ("recon.alerts", [0]),
        ("recon.alerts", [-1]),
        ("recon.alerts", [None]),
    ],
)
def test_a_malformed_follow_up_fails_once_and_raises_no_alert_about_an_unrelated_run(
    app: Celery, worker: Any, settings: Settings, task: str, args: list[Any]
) -> None:
    first = outcome(app, RECONCILE_TASK, "lxalgo", "paper", "manual")  # run 1 exists: the old bug blamed it
    assert first.state == "SUCCESS"
    alerts_before = count(settings, Alert)

    result = outcome(app, task, *args)

    assert result.state == "FAILURE" and type(result.result).__name__ == "BadTaskArguments"
    database = Database(settings.database_url.get_secret_value())
    with database.sessions() as session:
        kinds = list(session.scalars(select(Alert.kind).where(Alert.id > alerts_before)))
    database.dispose()
    assert "follow_up_failed" not in kinds


def test_a_follow_up_for_a_run_that_does_not_exist_fails_without_crashing_its_failure_handler(
    app: Celery, worker: Any, settings: Settings
) -> None:
    result = outcome(app, "recon.alerts", MAX_RUN_ID)

    assert result.state == "FAILURE"
    assert count(settings, Alert) == 0


@pytest.mark.parametrize("value", [1, 2, MAX_RUN_ID])
def test_run_ids_within_the_integer_range_are_taken(value: int) -> None:
    assert run_id_argument("recon.alerts", value) == value


def test_a_well_formed_request_is_taken_as_given() -> None:
    request = reconcile_request("lxalgo", "paper", "large_fill", True)

    assert (request.bot, request.account, request.reason, request.dry_run) == ("lxalgo", "paper", "large_fill", True)
    with pytest.raises(BadTaskArguments):
        reconcile_request("LXAlgo", "paper", "manual", False)


@pytest.mark.parametrize("asked", [math.inf, math.nan, 1e23, -5.0, None])
def test_a_retry_delay_is_finite_and_never_beyond_the_configured_maximum(asked: float | None) -> None:
    for retries in (0, 3, 10, 10_000):
        delay = backoff(retries, asked, cap=600)
        assert math.isfinite(delay) and 0 <= delay <= 600


def test_a_retry_delay_honours_what_the_venue_asked_within_the_maximum() -> None:
    assert backoff(0, 42.0, cap=600) >= 42.0
    assert backoff(0, 4200.0, cap=600) == 600
