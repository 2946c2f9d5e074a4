"""The venue interface."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from reconciliation.values import Snapshot


class Venue(Protocol):
    """Where an account lives. A fetch returns a complete snapshot or raises; it never returns a partial one."""

    name: str

    def fetch_snapshot(self, now: datetime) -> Snapshot:
        """Positions, cash, open orders and recent fills as of ``now``; raises a ``ReconError`` on failure."""
        ...
