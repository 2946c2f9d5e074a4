"""From books, a snapshot and an account's rules to a plan: one decision per discrepancy, and its effects.

The plan is data. Applying it (writing fills, closing lots, halting) is the books' job, in one transaction.

``sync_to_broker`` prefers the venue's own fills: when the newest fills the books do not know explain a
difference exactly, they are recorded under their venue ids, so a bot that records them later changes
nothing. Otherwise it synthesises a fill whose id is derived from the books' state on that instrument and
the venue's quantity, so replaying the same correction is a no-op while a later correction of the same size
(after the books moved) gets a new id and applies.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from reconciliation.contracts import recovered_groups
from reconciliation.effects import (
    AdoptOrder,
    BookFill,
    CancelOrder,
    CloseGroup,
    Effect,
    PlaceOrder,
    SetExpectedCash,
    SetOrderStatus,
)
from reconciliation.fifo import position_of
from reconciliation.findings import (
    CashFinding,
    Kind,
    OrderDiscrepancy,
    PositionComparison,
    PositionDiscrepancy,
    compare_cash,
    compare_orders,
    compare_positions,
)
from reconciliation.policy import Rules, Strategy
from reconciliation.sharing import Owner, SharedAccount, attribute, unattributed
from reconciliation.values import (
    ZERO,
    Books,
    Cash,
    Fill,
    InstrumentKey,
    OrderLookup,
    Side,
    Snapshot,
    Source,
    exact,
    order_name,
    plain,
)


class RunStatus(StrEnum):
    """How a run stands as a whole: running until it ends; then in sync, resolved, warned, halted or failed."""

    RUNNING = "running"
    IN_SYNC = "in_sync"
    RESOLVED = "resolved"
    WARNED = "warned"
    HALTED = "halted"
    FAILED = "failed"


class RunReason(StrEnum):
    """Why a run happens: beat's schedule, a bot's start-up, a large fill, a person, a run whose worker was lost,
    a finding deferred by the grace window looked at again when the window ends, or a backfill of estimated
    exits."""

    SCHEDULE = "schedule"
    STARTUP = "startup"
    LARGE_FILL = "large_fill"
    MANUAL = "manual"
    RECOVERY = "recovery"
    RECHECK = "recheck"
    BACKFILL = "backfill"


#: The reasons a reconciliation (not a backfill) may be asked for.
IN_FLIGHT = "deferred: fills in flight within the grace window"

RECONCILE_REASONS = tuple(reason.value for reason in RunReason if reason is not RunReason.BACKFILL)
RUN_REASONS = tuple(reason.value for reason in RunReason)


class Resolution(StrEnum):
    """What became of one discrepancy."""

    RESOLVED = "resolved"
    WARNED = "warned"
    HALTED = "halted"
    DEFERRED = "deferred"
    PLANNED = "planned"


Finding = PositionDiscrepancy | CashFinding | OrderDiscrepancy


@dataclass(frozen=True)
class Decision:
    """The strategy chosen for one finding, what becomes of it, and the effects that carry it out.

    ``decidable_at``: for a deferred finding, the earliest moment a run could decide it (None: no known moment,
    such as an order the venue still shows live).
    """

    finding: Finding
    strategy: Strategy
    outcome: Resolution
    action: str
    effects: tuple[Effect, ...] = ()
    decidable_at: datetime | None = None


@dataclass(frozen=True)
class Plan:
    """Everything one run found and intends to do. ``already_halted``: the books were halted before the run."""

    matched: tuple[InstrumentKey, ...]
    decisions: tuple[Decision, ...]
    cash: CashFinding | None
    already_halted: bool = False

    @property
    def status(self) -> RunStatus:
        """in_sync with nothing found; halted, warned or resolved by the worst outcome otherwise."""
        outcomes = {d.outcome for d in self.decisions}
        if not outcomes:
            return RunStatus.IN_SYNC
        if Resolution.HALTED in outcomes:
            return RunStatus.HALTED
        if outcomes - {Resolution.RESOLVED}:
            return RunStatus.WARNED
        return RunStatus.RESOLVED

    @property
    def recheck_at(self) -> datetime | None:
        """When a run should look again: the earliest moment a deferred finding becomes decidable, or None."""
        moments = [d.decidable_at for d in self.decisions if d.outcome is Resolution.DEFERRED and d.decidable_at]
        return min(moments, default=None)

    @property
    def halt_reason(self) -> str | None:
        """Why this run halts the account, or None (nothing calls for a halt, or the account already is)."""
        halting = [d for d in self.decisions if d.outcome is Resolution.HALTED]
        if not halting or self.already_halted:
            return None
        return "; ".join(f"{d.finding.kind} {describe_subject(d.finding)}" for d in halting)

    def effects(self) -> tuple[Effect, ...]:
        """All effects in decision order, each multi-leg group closed once."""
        seen_groups: set[str] = set()
        result: list[Effect] = []
        for decision in self.decisions:
            for effect in decision.effects:
                if isinstance(effect, CloseGroup):
                    if effect.group in seen_groups:
                        continue
                    seen_groups.add(effect.group)
                result.append(effect)
        return tuple(result)

    def venue_orders(self) -> tuple[PlaceOrder | CancelOrder, ...]:
        """The orders and cancels this plan would send to the venue (``sync_to_local``), in plan order."""
        return tuple(e for e in self.effects() if isinstance(e, PlaceOrder | CancelOrder))

    def book_fills(self) -> tuple[tuple[Fill, Source], ...]:
        """The fills this plan records, in order, with their source."""
        return tuple((e.fill, Source.RECONCILIATION) for e in self.effects() if isinstance(e, BookFill))


def describe_subject(finding: Finding) -> str:
    """A short human name for what a finding is about."""
    if isinstance(finding, PositionDiscrepancy):
        return str(finding.key)
    if isinstance(finding, OrderDiscrepancy):
        return finding.subject.removeprefix("order:")
    return f"cash {finding.currency}"


@dataclass(frozen=True)
class Comparison:
    """Every difference between books and a snapshot, before anything is decided about them."""

    positions: PositionComparison
    cash: CashFinding | None
    orders: tuple[OrderDiscrepancy, ...]

    @property
    def differs(self) -> bool:
        """True when anything differs (cash within tolerance does not)."""
        return bool(self.positions.discrepancies or self.orders or (self.cash is not None and self.cash.is_discrepancy))


@exact
def compare(books: Books, snapshot: Snapshot, rules: Rules) -> Comparison:
    """Compare ``books`` with ``snapshot``: positions, cash and orders. Needs no fill history."""
    venue = {key: p.qty for key, p in snapshot.positions_by_key().items()}
    return Comparison(
        positions=compare_positions(books.signed_quantities(), venue, rules.thresholds),
        cash=compare_cash(books.expected_cash, snapshot.cash, rules.cash_tolerance_pct, rules.thresholds),
        orders=compare_orders(books.pending_orders, snapshot.open_orders),
    )


@exact
def plan(
    books: Books,
    snapshot: Snapshot,
    rules: Rules,
    now: datetime,
    comparison: Comparison | None = None,
    shared: SharedAccount | None = None,
) -> Plan:
    """Decide, per ``rules``, what to do about each difference between ``books`` and ``snapshot`` (compared here
    unless ``comparison`` of the same books and snapshot is given).

    In a venue account ``shared`` with other bots, ``snapshot`` is this bot's share (``sharing.own_share``): a
    difference another bot's books hold is left to that bot's run, and one nobody's or several bots' books hold
    is reported, never acted on.
    """
    comparison = comparison or compare(books, snapshot, rules)
    orphans = (d.key for d in comparison.positions.discrepancies if d.kind is Kind.MISSING_IN_LEDGER)
    context = _Context(books, snapshot, rules, now, recovered_groups(orphans))
    decisions = [
        decision
        for d in comparison.positions.discrepancies
        if (decision := context.decide_position(d, shared)) is not None
    ]
    if comparison.cash is not None and comparison.cash.is_discrepancy:
        decisions.append(context.decide_cash(comparison.cash, shared))
    decisions.extend(context.decide_order(d, shared) for d in comparison.orders)
    if books.halted:
        decisions = [_already_halted(d, books.halted_reason) for d in decisions]
    return Plan(
        matched=comparison.positions.matched,
        decisions=tuple(decisions),
        cash=comparison.cash,
        already_halted=books.halted,
    )


def _already_halted(decision: Decision, reason: str | None) -> Decision:
    """A halt decided on an account that is already halted says so instead of halting it again."""
    if decision.outcome is not Resolution.HALTED:
        return decision
    return replace(decision, action=f"account already halted ({reason})")


class _Context:
    """Per-run lookups shared by the decisions of one plan."""

    def __init__(
        self, books: Books, snapshot: Snapshot, rules: Rules, now: datetime, groups: dict[InstrumentKey, str]
    ) -> None:
        self.books = books
        self.groups = groups  # orphaned option legs of one series, adopted as one position group
        self.snapshot = snapshot
        self.rules = rules
        self.now = now
        self.grace = timedelta(seconds=rules.grace_seconds)
        self.cutoff = now - self.grace
        self.venue_positions = snapshot.positions_by_key()
        self.venue_fills: dict[InstrumentKey, list[Fill]] = {}
        for fill in snapshot.fills:
            self.venue_fills.setdefault(fill.key, []).append(fill)
        self.venue_marks = {p.key: p.mark_price for p in snapshot.positions if p.mark_price is not None}

    def multiplier(self, key: InstrumentKey, reported: Decimal | None = None) -> Decimal:
        """The contract multiplier of ``key``: configured, else as the venue reports it (on the position, else
        ``reported`` with a fill), else the default."""
        venue = self.venue_positions.get(key)
        return self.rules.multipliers.of(key, venue.multiplier if venue and venue.multiplier else reported)

    def booked(self, fill: Fill, opening: bool) -> Fill:
        """``fill`` as the books record it: with its instrument's multiplier, and its recovered group if it opens
        an orphaned leg of a multi-leg structure."""
        group = self.groups.get(fill.key) if opening else None
        reported = fill.multiplier if fill.multiplier != 1 else None  # a venue fill may carry its contract's
        return replace(fill, multiplier=self.multiplier(fill.key, reported), group=fill.group or group)

    def grace_ends(self, key: InstrumentKey | None) -> datetime | None:
        """When the grace window over the newest fill on ``key`` (any instrument when None) ends, if it has not:
        a finding there waits for fills in flight until then. A fill dated in the future counts as now."""
        if key is None:
            book_times = [time for _, time in self.books.last_fills.values()]
        else:
            last = self.books.last_fills.get(key)
            book_times = [last[1]] if last else []
        venue_times = [f.time for f in (self.snapshot.fills if key is None else self.venue_fills.get(key, ()))]
        newest = max((*book_times, *venue_times), default=None)
        if newest is None or newest <= self.cutoff:
            return None
        return min(newest, self.now) + self.grace

    def waiting_for_fills(self, found: Finding, strategy: Strategy, key: InstrumentKey | None) -> Decision | None:
        """The decision to wait, when fills on ``key`` are in flight; None when the finding can be decided now."""
        ends = self.grace_ends(key)
        if ends is None:
            return None
        return Decision(found, strategy, Resolution.DEFERRED, IN_FLIGHT, decidable_at=ends)

    def decide_position(self, found: PositionDiscrepancy, shared: SharedAccount | None = None) -> Decision | None:
        strategy = self.rules.policy.strategy_for(found.kind, found.severity)
        whose = attribute(found.key, found.ledger_qty, shared) if shared is not None else None
        if whose is not None and whose.owner is Owner.OTHER:
            return None  # the one bot whose books hold it decides it in its own run
        if waiting := self.waiting_for_fills(found, strategy, found.key):
            return waiting
        if shared is not None and whose is not None and whose.owner is Owner.UNATTRIBUTED:
            return Decision(found, strategy, Resolution.WARNED, whose.describe(shared))
        if strategy is Strategy.SYNC_TO_BROKER:
            return self._sync_position_to_venue(found, strategy)
        if strategy is Strategy.SYNC_TO_LOCAL:
            return self._order_position_back(found, strategy)
        return _record_only(found, strategy)

    def _sync_position_to_venue(self, found: PositionDiscrepancy, strategy: Strategy) -> Decision:
        delta = found.venue_qty - found.ledger_qty
        venue_fills = self._explaining_venue_fills(found.key, delta)
        if venue_fills:
            opening = found.ledger_qty == ZERO
            effects: list[Effect] = [BookFill(self.booked(f, opening), from_venue=True) for f in venue_fills]
            action = f"recorded {len(venue_fills)} venue fill(s)"
        else:
            effects, action = self._synthetic_correction(found)
        if found.kind is Kind.MISSING_AT_VENUE:
            effects.extend(self._groups_broken_by(found))
        return Decision(found, strategy, Resolution.RESOLVED, action, tuple(effects))

    def _explaining_venue_fills(self, key: InstrumentKey, delta: Decimal) -> tuple[Fill, ...]:
        """The newest venue fills the books do not know whose signed quantities add up to exactly ``delta``."""
        unknown = sorted(
            (f for f in self.venue_fills.get(key, ()) if f.fill_id not in self.books.known_fill_ids),
            key=lambda f: (f.time, f.fill_id),
        )
        total = ZERO
        for start in range(len(unknown) - 1, -1, -1):
            total += unknown[start].signed_qty
            if total == delta:
                return tuple(unknown[start:])
        return ()

    def _synthetic_correction(self, found: PositionDiscrepancy) -> tuple[list[Effect], str]:
        mine, theirs = found.ledger_qty, found.venue_qty
        same_side = (mine > ZERO) == (theirs > ZERO)
        to_close = abs(mine) - abs(theirs) if same_side and theirs != ZERO else abs(mine)
        to_open = abs(theirs) - abs(mine) if same_side and mine != ZERO else abs(theirs)
        effects: list[Effect] = []
        notes: list[str] = []
        if to_close > ZERO and mine != ZERO:
            price, estimated_from = self._exit_price(found)
            side = Side.SELL if mine > ZERO else Side.BUY
            reason = f"{found.kind}: closed at the venue outside the bot"
            effects.append(BookFill(self._synthetic(found, side, to_close, price, "close", reason), False))
            notes.append(f"closed {plain(to_close)} FIFO at {plain(price)} ({estimated_from}, estimated)")
        if to_open > ZERO and theirs != ZERO:
            venue = self.venue_positions[found.key]
            side = Side.BUY if theirs > ZERO else Side.SELL
            effects.append(BookFill(self._synthetic(found, side, to_open, venue.avg_price, "open", None, False), False))
            notes.append(f"adopted {plain(to_open)} at venue average {plain(venue.avg_price)}")
        return effects, "; ".join(notes)

    def _exit_price(self, found: PositionDiscrepancy) -> tuple[Decimal, str]:
        """The venue's mark (flat rows carry one too), else its last price, else the books' average entry."""
        if found.key in self.venue_marks:
            return self.venue_marks[found.key], "mark"
        if found.key in self.snapshot.marks:
            return self.snapshot.marks[found.key], "last price"
        position = position_of(found.key, self.books.lots.get(found.key, ()))
        assert position.avg_entry is not None
        return position.avg_entry, "no venue price: entry price"

    def _synthetic(
        self,
        found: PositionDiscrepancy,
        side: Side,
        qty: Decimal,
        price: Decimal,
        purpose: str,
        reason: str | None,
        estimated: bool = True,
    ) -> Fill:
        fill = Fill(
            fill_id=self.correction_id(found, purpose),
            key=found.key,
            side=side,
            qty=qty,
            price=price,
            time=self.snapshot.as_of,
            reason=reason,
            estimated=estimated,
        )
        return self.booked(fill, opening=purpose == "open" and found.ledger_qty == ZERO)

    def correction_id(self, found: PositionDiscrepancy, purpose: str) -> str:
        """A fill id fixed by the books' state on the instrument, the venue's quantity and the purpose."""
        last = self.books.last_fills.get(found.key)
        last_fill_id = last[0] if last else ""
        material = "|".join((str(found.key), last_fill_id, plain(found.ledger_qty), plain(found.venue_qty), purpose))
        return "recon-" + hashlib.sha256(material.encode()).hexdigest()[:24]

    def _groups_broken_by(self, found: PositionDiscrepancy) -> list[Effect]:
        groups = sorted({lot.group for lot in self.books.lots.get(found.key, ()) if lot.group})
        reason = f"leg {found.key} missing at the venue"
        return [CloseGroup(group, reason) for group in groups]

    def _order_position_back(self, found: PositionDiscrepancy, strategy: Strategy) -> Decision:
        mine, theirs = found.ledger_qty, found.venue_qty
        reduce_only = (
            theirs != ZERO and (mine == ZERO or ((mine > ZERO) == (theirs > ZERO))) and abs(mine) < abs(theirs)
        )
        order = PlaceOrder(
            key=found.key,
            side=Side.increasing(mine - theirs),
            qty=abs(mine - theirs),
            reduce_only=reduce_only,
            client_order_id=self.correction_id(found, "order"),
        )
        action = f"planned {order.side} {plain(order.qty)}{' reduce-only' if reduce_only else ''} at the venue"
        return Decision(found, strategy, Resolution.PLANNED, action, (order,))

    def decide_cash(self, found: CashFinding, shared: SharedAccount | None = None) -> Decision:
        assert found.severity is not None
        strategy = self.rules.policy.strategy_for(found.kind, found.severity)
        if shared is not None:
            return Decision(found, strategy, Resolution.WARNED, unattributed(shared, "cash is not told apart by bot"))
        if waiting := self.waiting_for_fills(found, strategy, None):
            return waiting
        if strategy is Strategy.SYNC_TO_BROKER:
            cash = Cash(found.currency, found.venue)
            return Decision(
                found,
                strategy,
                Resolution.RESOLVED,
                f"expected cash set to {plain(found.venue)}",
                (SetExpectedCash(cash),),
            )
        if strategy is Strategy.SYNC_TO_LOCAL:
            return Decision(found, strategy, Resolution.WARNED, "warned: orders cannot move cash")
        return _record_only(found, strategy)

    def decide_order(self, found: OrderDiscrepancy, shared: SharedAccount | None = None) -> Decision:
        strategy = self.rules.policy.strategy_for(found.kind, found.severity)
        if shared is not None and found.kind is Kind.ORDER_UNKNOWN_TO_LEDGER:
            what = "an open order none of its bots' books know"
            return Decision(found, strategy, Resolution.WARNED, unattributed(shared, what))
        if found.kind is Kind.DUPLICATE_VENUE_ORDER_ID:
            return _duplicate_reported(found, strategy)
        if waiting := self.waiting_for_fills(found, strategy, found.order.key):
            return waiting
        lookup = self.snapshot.order_lookups.get(order_name(found.order))
        if found.kind is Kind.ORDER_MISSING_AT_VENUE:
            if lookup is None:  # every order pending when the venue was read was looked up: this one came later
                return Decision(found, strategy, Resolution.DEFERRED, "deferred: recorded after the venue was read",
                                decidable_at=self.now)  # fmt: skip
            return self._settle_looked_up(found, strategy, lookup)
        if strategy is Strategy.SYNC_TO_BROKER:
            effect, action = self._sync_order_to_venue(found)
            return Decision(found, strategy, Resolution.RESOLVED, action, (effect,))
        if strategy is Strategy.SYNC_TO_LOCAL:
            if found.kind is Kind.ORDER_UNKNOWN_TO_LEDGER and found.venue is not None:
                return Decision(
                    found,
                    strategy,
                    Resolution.PLANNED,
                    "planned cancel at the venue",
                    (CancelOrder(found.venue),),
                )
            return Decision(found, strategy, Resolution.WARNED, "warned: an order is not re-sent blindly")
        return _record_only(found, strategy)

    def _settle_looked_up(self, found: OrderDiscrepancy, strategy: Strategy, lookup: OrderLookup) -> Decision:
        """What the venue says of an order it no longer shows as open is a fact, whatever the policy.

        A filled order's fills are recorded (a timed-out order that filled leaves no ghost); a cancelled,
        rejected or expired one is marked so; one the venue does not know is reported and nothing changes.
        """
        if lookup.order is None:
            if strategy is Strategy.HALT_AND_ALERT:
                return Decision(found, strategy, Resolution.HALTED, "not found at the venue; halted the account")
            return Decision(found, strategy, Resolution.WARNED, "not found at the venue: nothing changed")
        status = lookup.order.status
        if status.is_live and not lookup.fills:
            return Decision(found, strategy, Resolution.DEFERRED, f"deferred: the venue still has it {status}")
        fills: list[Effect] = [
            BookFill(self.booked(f, opening=False), from_venue=True)
            for f in sorted(lookup.fills, key=lambda f: (f.time, f.fill_id))
        ]
        effects = (*fills, SetOrderStatus(found.order, status))
        action = f"looked up: {status}" + (f", recorded {len(fills)} fill(s)" if fills else "")
        return Decision(found, strategy, Resolution.RESOLVED, action, effects)

    def _sync_order_to_venue(self, found: OrderDiscrepancy) -> tuple[Effect, str]:
        if found.kind is Kind.ORDER_STATUS_MISMATCH and found.venue is not None:
            return SetOrderStatus(found.order, found.venue.status), f"status set to {found.venue.status}"
        return AdoptOrder(found.order), "adopted the venue's order into the books"


def _duplicate_reported(found: OrderDiscrepancy, strategy: Strategy) -> Decision:
    """Book orders sharing one venue order id are reported, never settled, whatever the strategy: only a person can
    tell which entry is the real one, and syncing either way would book (or send) the venue's order twice."""
    names = ", ".join(order_name(o) for o in found.duplicates)
    what = f"the books hold {len(found.duplicates)} live orders for venue order {found.order.venue_order_id} ({names})"
    if strategy is Strategy.HALT_AND_ALERT:
        return Decision(found, strategy, Resolution.HALTED, f"{what}; halted the account: fix the books by hand")
    return Decision(found, strategy, Resolution.WARNED, f"{what}: nothing changed; fix the books by hand")


def _record_only(found: Finding, strategy: Strategy) -> Decision:
    if strategy is Strategy.HALT_AND_ALERT:
        return Decision(found, strategy, Resolution.HALTED, "halted the account and raised an alert")
    return Decision(found, strategy, Resolution.WARNED, "warned")
