"""Per-account rules: which strategy resolves a discrepancy of a given severity or kind, and the tolerances.

A strategy named for a kind overrides the one named for the severity, so an account can close positions
that vanished at the venue while only warning about positions opened there by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from reconciliation.contracts import Multipliers
from reconciliation.findings import Kind, Severity, Thresholds


class Strategy(StrEnum):
    """How a discrepancy is resolved."""

    WARN_ONLY = "warn_only"
    SYNC_TO_BROKER = "sync_to_broker"
    SYNC_TO_LOCAL = "sync_to_local"
    HALT_AND_ALERT = "halt_and_alert"


@dataclass(frozen=True)
class Policy:
    """Strategy per severity, with optional overrides per discrepancy kind.

    The default never changes the books: it warns about minor and moderate differences and halts on
    critical ones. Accounts opt in to ``sync_to_broker``. A ``duplicate_venue_order_id`` is critical, so the
    default halts on it; whatever the strategy, it never changes the books nor sends an order (``plan``).
    """

    minor: Strategy = Strategy.WARN_ONLY
    moderate: Strategy = Strategy.WARN_ONLY
    critical: Strategy = Strategy.HALT_AND_ALERT
    by_kind: Mapping[Kind, Strategy] = field(default_factory=dict)

    def strategy_for(self, kind: Kind, severity: Severity) -> Strategy:
        """The strategy for a discrepancy: its kind's override, else its severity's strategy."""
        if kind in self.by_kind:
            return self.by_kind[kind]
        return {
            Severity.MINOR: self.minor,
            Severity.MODERATE: self.moderate,
            Severity.CRITICAL: self.critical,
        }[severity]


@dataclass(frozen=True)
class Rules:
    """Everything the engine needs to know about one account's reconciliation settings."""

    policy: Policy = field(default_factory=Policy)
    thresholds: Thresholds = field(default_factory=Thresholds)
    cash_tolerance_pct: Decimal = Decimal(1)
    grace_seconds: int = 30
    multipliers: Multipliers = field(default_factory=Multipliers)
