"""Runs whose worker died: found, failed, and their account run again, within the lock's TTL plus one sweep.

Every run on the workers holds its account's Redis lock from before it is recorded until it ends, and a live
task cannot outlive the hard time limit, which is shorter than the lock's TTL. So a run still marked running,
begun more than the hard time limit ago, whose account lock is free, has lost its worker: a pool process killed
(its message is redelivered at once, finds the dead holder's lock and leaves the work to it) or a whole worker
killed (its message waits for the broker's visibility timeout). Beat sweeps every ``RECON_RECOVER_SECONDS``;
each lost run is failed, alerted, and its account asked for one more run (coalesced like any trigger).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis import Redis

from models import alerts
from models.database import Database
from models.run_records import fail_run, runs_running_since
from workers.coalescing import account_key, lock_key, redis_errors
from workers.fleet import AccountConfig, fleet_of
from workers.settings import Settings

log = logging.getLogger(__name__)
LOST = "interrupted: its worker was lost (the run outlived the hard time limit and its account lock is free)"


@dataclass(frozen=True)
class LostRun:
    """A run failed by the sweep because its worker died."""

    run_id: int
    bot: str
    account: str
    reason: str
    dry_run: bool


def fail_lost_runs(database: Database, redis: Redis, settings: Settings, now: datetime) -> list[LostRun]:
    """Fail every run that lost its worker, with an alert each; returns them (those another process had already
    ended are left out)."""
    cutoff = now - timedelta(seconds=settings.task_time_limit)
    with database.reading() as session:
        running = runs_running_since(session, cutoff)
    fleet = fleet_of(settings)
    configs = {(c.bot, c.account): c for c in fleet.accounts} if fleet else {}
    with redis_errors():
        orphaned = [r for r in running if not redis.exists(_lock_of(r.bot, r.account, configs))]
    lost: list[LostRun] = []
    for run in orphaned:
        with database.transaction() as session:
            if not fail_run(session, run.run_id, LOST, now):
                continue
            alerts.record_alert(session, run.account_id, "worker_lost", "warning",
                                f"run {run.run_id} ({run.reason}) lost its worker; the account is run again",
                                now, run_id=run.run_id)  # fmt: skip
        log.warning("run lost its worker", extra={"bot": run.bot, "account": run.account, "run_id": run.run_id})
        lost.append(LostRun(run.run_id, run.bot, run.account, run.reason, run.dry_run))
    return lost


def _lock_of(bot: str, account: str, configs: dict[tuple[str, str], AccountConfig]) -> str:
    """The lock a run of (bot, account) holds: its shared venue account's when the fleet file names one."""
    config = configs.get((bot, account))
    return lock_key(config) if config else f"{account_key(bot, account)}:lock"
