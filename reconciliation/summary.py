"""A run's figures at a glance: how many positions each side held, what the plan does to the books' positions,
and what the venue's positions are worth at mark, per currency. Computed from the books, the snapshot and the
plan of one run, so a dry run reports what a real one would do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from reconciliation.effects import BookFill
from reconciliation.findings import PositionDiscrepancy
from reconciliation.plan import Plan, Resolution
from reconciliation.values import ZERO, Books, InstrumentKey, Snapshot, VenuePosition, exact

#: Units of the underlying per contract, by category, where the venue quotes the price per unit: a US equity
#: option (OCC) is 100 shares. Every other category is valued as quantity × price.
CONTRACT_MULTIPLIERS: dict[str, Decimal] = {"us_option": Decimal(100)}


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


def contract_multiplier(key: InstrumentKey) -> Decimal:
    """Units of the underlying one contract of ``key`` stands for (1 unless ``CONTRACT_MULTIPLIERS`` says)."""
    return CONTRACT_MULTIPLIERS.get(key.category, Decimal(1))


@exact
def summarize(books: Books, snapshot: Snapshot, plan: Plan) -> RunSummary:
    """The figures of a run that compared ``books`` (as read before the run) with ``snapshot`` and made ``plan``."""
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
    values, unvalued = value_at_mark(held)
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
def value_at_mark(positions: tuple[VenuePosition, ...]) -> tuple[dict[str, Decimal], int]:
    """Per currency (sorted), |qty| × mark × multiplier summed over ``positions``; and how many were left out
    for want of a mark or a currency."""
    totals: dict[str, Decimal] = {}
    unvalued = 0
    for position in positions:
        if position.mark_price is None or position.currency is None:
            unvalued += 1
            continue
        value = abs(position.qty) * position.mark_price * contract_multiplier(position.key)
        totals[position.currency] = totals.get(position.currency, ZERO) + value
    return dict(sorted(totals.items())), unvalued
