"""Beat's schedule: one entry per (bot, account) of the fleet file, on the venue's queue."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from workers.fleet import AccountConfig, Fleet

QUEUES = ("recon.default", "recon.sim", "recon.bybit", "recon.alpaca")
RECONCILE_TASK = "recon.reconcile"


def queue_for(config: AccountConfig) -> str:
    """Each venue has its own queue, so a slow or rate-limited venue does not starve the others."""
    queue = f"recon.{config.venue}"
    return queue if queue in QUEUES else "recon.default"


def entry_name(config: AccountConfig) -> str:
    """``reconcile:<bot>:<account>``."""
    return f"reconcile:{config.bot}:{config.account}"


STALENESS_EVERY_SECONDS = 60.0
RECOVER_TASK = "recon.recover"


def phase_seconds(config: AccountConfig) -> float:
    """Where in its interval an account's scheduled runs fall, fixed per account (from a hash of its name), so a
    fleet's runs spread over the interval: 10,000 accounts at 300 s are about 33 sends a second, not 10,000 at
    once every five minutes."""
    digest = hashlib.sha256(f"{config.bot}/{config.account}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (config.interval_seconds * 1000) / 1000


def beat_schedule(fleet: Fleet, recover_every: float = 60.0, now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Beat entries at each account's interval (a run not started within 90 % of it expires instead of piling
    up), the staleness check every minute, and the sweep for runs that lost their worker.

    With ``now``, an account's entry starts as if last sent its phase ago, so its first run comes within one
    interval, at its phase; beat keeps each entry's last send in Redis, so later starts keep the phases.
    """
    entries: dict[str, dict[str, Any]] = {}
    for config in fleet.accounts:
        entry: dict[str, Any] = {
            "task": RECONCILE_TASK,
            "schedule": float(config.interval_seconds),
            "args": (config.bot, config.account, "schedule"),
            "options": {"queue": queue_for(config), "expires": config.interval_seconds * 0.9},
        }
        if now is not None:
            entry["last_run_at"] = now - timedelta(seconds=phase_seconds(config))
        entries[entry_name(config)] = entry
    entries["staleness"] = {
        "task": "recon.staleness",
        "schedule": STALENESS_EVERY_SECONDS,
        "args": (),
        "options": {"queue": "recon.default", "expires": STALENESS_EVERY_SECONDS * 0.9},
    }
    entries["recover"] = {
        "task": RECOVER_TASK,
        "schedule": recover_every,
        "args": (),
        "options": {"queue": "recon.default", "expires": recover_every * 0.9},
    }
    return entries
