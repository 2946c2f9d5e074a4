"""Beat's schedule: one entry per (bot, account) of the fleet file, on the venue's queue."""

from __future__ import annotations

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


def beat_schedule(fleet: Fleet, recover_every: float = 60.0) -> dict[str, dict[str, Any]]:
    """Beat entries at each account's interval (a run not started within 90 % of it expires instead of piling
    up), the staleness check every minute, and the sweep for runs that lost their worker."""
    entries: dict[str, dict[str, Any]] = {
        entry_name(config): {
            "task": RECONCILE_TASK,
            "schedule": float(config.interval_seconds),
            "args": (config.bot, config.account, "schedule"),
            "options": {"queue": queue_for(config), "expires": config.interval_seconds * 0.9},
        }
        for config in fleet.accounts
    }
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
