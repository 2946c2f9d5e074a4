"""What follows a committed run, decided from its result alone: orders to send, alerts to deliver, a backfill.

The follow-ups get the run id only (never books, snapshots or secrets); on the workers each is a task chained
after the run's lock is released, in-process the same functions run in turn. A follow-up that fails for good is
recorded as an alert on the run's account, so nothing fails silently.
"""

from __future__ import annotations

from datetime import datetime

from models import alerts
from models.database import Database
from models.history import run_record
from workers.fleet import AccountConfig, Fleet
from workers.results import RunResult

SEND_ORDERS_TASK = "recon.send_orders"
ALERTS_TASK = "recon.alerts"
BACKFILL_TASK = "recon.backfill"
STALENESS_TASK = "recon.staleness"


def follow_ups_of(result: RunResult) -> tuple[str, ...]:
    """The follow-up tasks a run calls for, by name, most urgent first (orders go stale within a minute)."""
    if result.dry_run or result.failed:
        return ()
    wanted = (
        (SEND_ORDERS_TASK, result.orders_to_send > 0),
        (ALERTS_TASK, result.alerts > 0),
        (BACKFILL_TASK, result.exits_estimated),
    )
    return tuple(name for name, needed in wanted if needed)


def account_of_run(database: Database, fleet: Fleet, run_id: int) -> AccountConfig:
    """The fleet-file account a run belongs to."""
    with database.reading() as session:
        record = run_record(session, run_id)
    return fleet.account(record.bot, record.account)


def record_failed_follow_up(database: Database, run_id: int, task: str, error: str, now: datetime) -> None:
    """Alert that a follow-up of ``run_id`` failed for good."""
    with database.transaction() as session:
        alerts.record_run_alert(session, run_id, "follow_up_failed", "critical", f"{task} for run {run_id} failed: "
                                f"{error}", now)  # fmt: skip
