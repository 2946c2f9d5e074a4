"""The one result of a run: how it ended and what follows from it, handed on to publishing, follow-ups and reports.

Nothing after the run's transaction reads back what the run already knew: the positions after it, whether it
estimated exit prices, which breaks it opened, escalated or resolved, how many alerts and orders wait.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from models.breaks import BreakChanges
from reconciliation.plan import RunStatus
from reconciliation.values import Position


@dataclass(frozen=True)
class RunResult:
    """How one run ended. ``positions`` are the account's positions after it (empty when it failed);
    ``recheck_at`` is when a finding it deferred becomes decidable (a run is asked for then)."""

    run_id: int
    bot: str
    account: str
    status: RunStatus
    dry_run: bool = False
    error: str | None = None
    positions: tuple[Position, ...] = ()
    exits_estimated: bool = False
    breaks: BreakChanges = field(default_factory=BreakChanges)
    alerts: int = 0
    orders_to_send: int = 0
    halted: bool = False
    recheck_at: datetime | None = None

    @property
    def failed(self) -> bool:
        """True when the run changed nothing because it could not finish."""
        return self.status is RunStatus.FAILED
