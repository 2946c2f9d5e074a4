"""Carrying out a plan's effects on the books, each described as an action row with the state before and after.

A dry run computes the same actions against the same lots and changes nothing. Orders and cancels for the
venue (``sync_to_local``) are not sent here: they are recorded as ``planned_order`` actions with what the
guards decided (``state`` "to_send" or "refused"), and ``workers.send_orders`` sends them after the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from models import books as tables
from models.accounts import AccountState
from models.accounts import halt as halt_account
from models.breaks import order_json
from models.cash import set_expected_cash
from models.fills import FillResult, write_fills
from models.lots import OpenLots
from models.orders import REFUSED, TO_SEND, record_order, set_order_status
from models.runs import Alert
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
from reconciliation.fifo import apply_fill
from reconciliation.orders import ScreenedOrder
from reconciliation.plan import Plan
from reconciliation.values import Cash, Fill, Position, PositionStatus, Source, plain

GROUPS = cast(Table, tables.PositionGroup.__table__)


def position_json(position: Position) -> dict[str, Any]:
    """A position as an action's before or after: signed quantity and average entry, as strings."""
    return {
        "qty": plain(position.qty),
        "avg_entry": plain(position.avg_entry) if position.avg_entry is not None else None,
    }


class EffectWriter:
    """Carries out effects on one account's books and describes each as an action row (state before and after)."""

    def __init__(self, session: Session, account: AccountState, run_id: int, now: datetime, dry_run: bool) -> None:
        self.session = session
        self.account = account
        self.run_id = run_id
        self.now = now
        self.dry_run = dry_run

    def carry_out(self, plan: Plan, lots: OpenLots, screened: Sequence[ScreenedOrder]) -> list[dict[str, Any]]:
        """Every effect of ``plan`` done (unless dry), as action rows keyed by the index of their decision."""
        rows = self._book_fills(plan, lots)
        verdicts = {id(s.effect): s for s in screened}
        closed_groups: set[str] = set()
        for index, decision in enumerate(plan.decisions):
            for effect in decision.effects:
                if isinstance(effect, BookFill):
                    continue
                if isinstance(effect, CloseGroup):
                    if effect.group in closed_groups:
                        continue
                    closed_groups.add(effect.group)
                if isinstance(effect, PlaceOrder | CancelOrder):
                    rows.append({"decision": index, **self._planned_order(effect, verdicts.get(id(effect)))})
                else:
                    rows.append({"decision": index, **self._other(effect)})
        return rows

    def _book_fills(self, plan: Plan, lots: OpenLots) -> list[dict[str, Any]]:
        indexed = [
            (index, effect)
            for index, decision in enumerate(plan.decisions)
            for effect in decision.effects
            if isinstance(effect, BookFill)
        ]
        fills = [(effect.fill, Source.RECONCILIATION) for _, effect in indexed]
        if self.dry_run:
            results = _preview(fills, lots)
        else:
            results = write_fills(self.session, self.account.id, fills, lots, self.now, self.run_id)
        return [
            {
                "decision": index,
                "kind": "record_venue_fill" if effect.from_venue else "correct_position",
                "subject": f"position:{result.fill.key}",
                "applied": result.recorded and not self.dry_run,
                "before": position_json(result.before),
                "after": position_json(result.after),
                "detail": _fill_detail(result.fill, result.recorded),
            }
            for (index, effect), result in zip(indexed, results, strict=True)
        ]

    def _other(self, effect: Effect) -> dict[str, Any]:
        if isinstance(effect, CloseGroup):
            return self._close_group(effect)
        if isinstance(effect, SetExpectedCash):
            return self._set_cash(effect.cash)
        if isinstance(effect, SetOrderStatus):
            return self._set_order_status(effect)
        if isinstance(effect, AdoptOrder):
            return self._adopt_order(effect)
        raise TypeError(f"unknown effect {effect!r}")

    def _close_group(self, effect: CloseGroup) -> dict[str, Any]:
        status = self.session.scalar(
            select(tables.PositionGroup.status).where(
                tables.PositionGroup.account_id == self.account.id, tables.PositionGroup.name == effect.group
            )
        )
        after = PositionStatus.CLOSED_EXTERNALLY.value if status == PositionStatus.OPEN.value else status
        if not self.dry_run and status == PositionStatus.OPEN.value:
            self.session.execute(
                update(GROUPS)
                .where(GROUPS.c.account_id == self.account.id, GROUPS.c.name == effect.group)
                .values(status=after, exit_reason=effect.reason, closed_at=self.now)
            )
        return {
            "kind": "close_group",
            "subject": f"group:{effect.group}",
            "applied": not self.dry_run and status == PositionStatus.OPEN.value,
            "before": {"status": status},
            "after": {"status": after, "exit_reason": effect.reason},
            "detail": f"group {effect.group} {after}: {effect.reason}",
        }

    def _set_cash(self, cash: Cash) -> dict[str, Any]:
        row = self.session.get(tables.ExpectedCash, self.account.id)
        before = {"currency": row.currency, "balance": plain(row.balance)} if row else None
        if not self.dry_run:
            set_expected_cash(self.session, self.account.id, cash, self.now)
        return {
            "kind": "set_expected_cash",
            "subject": "cash",
            "applied": not self.dry_run,
            "before": before,
            "after": {"currency": cash.currency, "balance": plain(cash.balance)},
            "detail": f"expected cash set to {plain(cash.balance)} {cash.currency}",
        }

    def _set_order_status(self, effect: SetOrderStatus) -> dict[str, Any]:
        if not self.dry_run:
            set_order_status(self.session, self.account.id, effect.order, effect.status, self.now)
        name = effect.order.client_order_id or effect.order.venue_order_id
        return {
            "kind": "set_order_status",
            "subject": f"order:{name}",
            "applied": not self.dry_run,
            "before": {"status": effect.order.status.value},
            "after": {"status": effect.status.value},
            "detail": f"order {name} status {effect.order.status} -> {effect.status}",
        }

    def _adopt_order(self, effect: AdoptOrder) -> dict[str, Any]:
        if not self.dry_run:
            record_order(self.session, self.account.id, effect.order, self.now, Source.RECONCILIATION)
        order = effect.order
        name = order.client_order_id or order.venue_order_id
        return {
            "kind": "adopt_order",
            "subject": f"order:{name}",
            "applied": not self.dry_run,
            "before": None,
            "after": order_json(order),
            "detail": f"adopted venue order {name}: {order.side} {plain(order.qty)} {order.key.symbol}",
        }

    def _planned_order(self, effect: PlaceOrder | CancelOrder, verdict: ScreenedOrder | None) -> dict[str, Any]:
        refusal = verdict.refusal if verdict is not None else "not screened by the guards"
        notional = verdict.notional if verdict is not None else None
        if isinstance(effect, PlaceOrder):
            planned = (
                f"planned {effect.side} {plain(effect.qty)} {effect.key.symbol}"
                f"{' reduce-only' if effect.reduce_only else ''} as {effect.client_order_id}"
            )
            subject = f"position:{effect.key}"
            after: dict[str, Any] = {
                "category": effect.key.category,
                "symbol": effect.key.symbol,
                "leg": effect.key.leg,
                "side": effect.side.value,
                "qty": plain(effect.qty),
                "reduce_only": effect.reduce_only,
                "client_order_id": effect.client_order_id,
                "notional": plain(notional) if notional is not None else None,
            }
            allowed = f"would send (notional {plain(notional)})" if notional is not None else "would send"
        else:
            order = effect.order
            name = order.client_order_id or order.venue_order_id
            planned = f"planned cancel of venue order {name}"
            subject = f"order:{name}"
            after = {"cancel": order.venue_order_id, **order_json(order), "category": order.key.category,
                     "leg": order.key.leg}  # fmt: skip
            allowed = "would cancel"
        after["state"] = REFUSED if refusal else TO_SEND
        if self.dry_run:
            verdict_text = f"would be refused: {refusal}" if refusal else allowed
        else:
            verdict_text = f"refused: {refusal}" if refusal else allowed.replace("would ", "to ")
        return {
            "kind": "planned_order",
            "subject": subject,
            "applied": False,
            "before": None,
            "after": after,
            "detail": f"{planned}: {verdict_text}",
        }

    def halt(self, reason: str) -> dict[str, Any]:
        """Halt the account (with an alert) and describe it as an action."""
        before = {"halted": self.account.halted, "reason": self.account.halted_reason}
        halt_account(self.session, self.account.id, reason, self.now)
        self.session.add(
            Alert(
                account_id=self.account.id,
                run_id=self.run_id,
                kind="halted",
                severity="critical",
                message=f"account halted by reconciliation: {reason}",
                created_at=self.now,
            )
        )
        return {
            "decision": None,
            "kind": "halt",
            "subject": "account",
            "applied": True,
            "before": before,
            "after": {"halted": True, "reason": reason},
            "detail": f"halted: {reason}",
        }


def _preview(fills: Sequence[tuple[Fill, Source]], lots: OpenLots) -> list[FillResult]:
    """What recording ``fills`` would do, computed on a copy of the lots (dry run)."""
    current = dict(lots.by_key)
    results = []
    for fill, source in fills:
        before = OpenLots(current, {}, {}).position(fill.key)
        outcome = apply_fill(current.get(fill.key, ()), fill, source)
        current[fill.key] = outcome.lots
        after = OpenLots(current, {}, {}).position(fill.key)
        results.append(FillResult(fill, True, before, after, outcome.trades, outcome.opened))
    return results


def _fill_detail(fill: Fill, recorded: bool) -> str:
    price = f"{plain(fill.price)}{' (estimated)' if fill.estimated else ''}"
    text = f"{fill.side} {plain(fill.qty)} {fill.key.symbol} @ {price}, fill {fill.fill_id}"
    return text if recorded else text + " (already in the books: nothing changed)"
