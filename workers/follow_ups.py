"""What follows a committed run: alerts always, a backfill when the run had to estimate exit prices.

The follow-ups get the run id only (never books, snapshots or secrets); a follow-up that fails for good is
recorded as an alert on the run's account, so nothing fails silently.
"""

from __future__ import annotations

from datetime import datetime

from models import alerts
from models.database import Database
from models.history import run_record
from models.runs import Run
from workers.fleet import AccountConfig, Fleet
from workers.orchestrator import RunResult

ALERTS_TASK = "recon.alerts"
BACKFILL_TASK = "recon.backfill"
STALENESS_TASK = "recon.staleness"


def follow_ups(database: Database, result: RunResult, dry_run: bool) -> list[str]:
    """The follow-up tasks a run calls for, by name."""
    if dry_run or result.status == "failed":
        return []
    with database.sessions() as session:
        if result.status == "in_sync":  # nothing opened or estimated; only a break that went away is news
            return [ALERTS_TASK] if alerts.run_resolved_breaks(session, result.run_id) else []
        estimated = alerts.run_made_estimates(session, result.run_id)
    return [ALERTS_TASK, *([BACKFILL_TASK] if estimated else [])]


def account_of_run(database: Database, fleet: Fleet, run_id: int) -> AccountConfig:
    """The fleet-file account a run belongs to."""
    with database.sessions() as session:
        record = run_record(session, run_id)
    return fleet.account(record.bot, record.account)


def record_failed_follow_up(database: Database, run_id: int, task: str, error: str, now: datetime) -> None:
    """Alert that a follow-up of ``run_id`` failed for good."""
    with database.sessions.begin() as session:
        run = session.get_one(Run, run_id)
        alerts.record_alert(session, run.account_id, "follow_up_failed", "critical",
                            f"{task} for run {run_id} failed: {error}", now, run_id=run_id)  # fmt: skip
