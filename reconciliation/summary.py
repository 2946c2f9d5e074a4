"""A run's figures at a glance: how many positions each side held, what the plan does to the books' positions,
and what the venue's positions are worth at mark, per currency. Computed from the books, the snapshot and the
plan of one run, so a dry run reports what a real one would do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from reconciliation.contracts import Multipliers
from reconciliation.effects import BookFill
from reconciliation.findings import PositionDiscrepancy
from reconciliation.plan import Plan, Resolution
from reconciliation.values import ZERO, Books, Snapshot, VenuePosition, exact


@dataclass(frozen=True)
class RunSummary:
    """Counts and values of one run.

    ``added``, ``removed``, ``adjusted``: instruments whose position finding the plan resolves by changing the
    books (a position the books lacked, one the venue lacked, one of another size or side). ``value_at_mark``:
    per currency, the sum of |qty| × mark × contract multiplier over the venue's positions; ``unvalued`` counts
    the venue positions left out of it (no mark, or no currency known).
    """

    venue_positions: int
    book_positions: int
    added: int
    removed: int
    adjusted: int
    value_at_mark: dict[str, Decimal] = field(default_factory=dict)
    unvalued: int = 0


@exact
def summarize(books: Books, snapshot: Snapshot, plan: Plan, multipliers: Multipliers | None = None) -> RunSummary:
    """The figures of a run that compared ``books`` (as read before the run) with ``snapshot`` and made ``plan``;
    positions are valued with the account's contract ``multipliers``."""
    added = removed = adjusted = 0
    for decision in plan.decisions:
        found = decision.finding
        if not isinstance(found, PositionDiscrepancy) or not _changes_books(decision.outcome, decision.effects):
            continue
        if found.ledger_qty == ZERO:
            added += 1
        elif found.venue_qty == ZERO:
            removed += 1
        else:
            adjusted += 1
    held = tuple(snapshot.positions_by_key().values())
    values, unvalued = value_at_mark(held, multipliers or Multipliers())
    return RunSummary(
        venue_positions=len(held),
        book_positions=len(books.signed_quantities()),
        added=added,
        removed=removed,
        adjusted=adjusted,
        value_at_mark=values,
        unvalued=unvalued,
    )


def _changes_books(outcome: Resolution, effects: tuple[object, ...]) -> bool:
    """A resolved decision that records a fill changes a position in the books (planned orders change the venue)."""
    return outcome is Resolution.RESOLVED and any(isinstance(e, BookFill) for e in effects)


@exact
def value_at_mark(
    positions: tuple[VenuePosition, ...], multipliers: Multipliers | None = None
) -> tuple[dict[str, Decimal], int]:
    """Per currency (sorted), |qty| × mark × multiplier summed over ``positions``; and how many were left out
    for want of a mark or a currency."""
    multipliers = multipliers or Multipliers()
    totals: dict[str, Decimal] = {}
    unvalued = 0
    for position in positions:
        if position.mark_price is None or position.currency is None:
            unvalued += 1
            continue
        value = abs(position.qty) * position.mark_price * multipliers.of(position.key, position.multiplier)
        totals[position.currency] = totals.get(position.currency, ZERO) + value
    return dict(sorted(totals.items())), unvalued
