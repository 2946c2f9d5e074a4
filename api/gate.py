"""The trading gate: may a bot open new risk on this account now? A pure decision over what the books say.

A bot asks before each trading cycle and skips the cycle when the answer is no, as the platform reconciler this
project grew from did when reconciliation had failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from models.overview import AccountOverview

HALTED = "halted"
LAST_RUN_FAILED = "last_run_failed"
STALE = "stale"
OPEN_CRITICAL_BREAKS = "open_critical_breaks"


@dataclass(frozen=True)
class Gate:
    """The answer, with every reason it is no (empty when trading is allowed)."""

    reasons: tuple[str, ...]
    stale: bool

    @property
    def trading_allowed(self) -> bool:
        """True when no reason stands against trading."""
        return not self.reasons


def trading_gate(
    overview: AccountOverview | None, interval_seconds: int | None, stale_after_intervals: float, now: datetime
) -> Gate:
    """The gate for one account: closed while halted, after a failed run, when no run succeeded within
    ``stale_after_intervals`` × ``interval_seconds`` of ``now`` (never run counts as stale), or while a critical
    break is open. An account with no schedule (``interval_seconds`` None) is never stale."""
    if overview is None:
        return Gate((STALE,), stale=True) if interval_seconds is not None else Gate((), stale=False)
    stale = is_stale(overview.last_success_at, interval_seconds, stale_after_intervals, now)
    reasons = [
        reason
        for reason, applies in (
            (HALTED, overview.halted),
            (LAST_RUN_FAILED, overview.last_run is not None and overview.last_run.status == "failed"),
            (STALE, stale),
            (OPEN_CRITICAL_BREAKS, overview.open_breaks.get("critical", 0) > 0),
        )
        if applies
    ]
    return Gate(tuple(reasons), stale)


def is_stale(
    last_success_at: datetime | None, interval_seconds: int | None, stale_after_intervals: float, now: datetime
) -> bool:
    """True when no run succeeded within ``stale_after_intervals`` intervals of ``now``."""
    if interval_seconds is None:
        return False
    if last_success_at is None:
        return True
    return now - last_success_at > timedelta(seconds=interval_seconds * stale_after_intervals)
