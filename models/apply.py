"""One run's writing transaction: under the account's lock, the run's books are read, its plan is written.

    with run_transaction(database, account_id) as transaction:
        books = transaction.books(run_id=..., epoch=..., dry_run=..., venue_fill_ids=...)   # StaleRun if fenced
        plan = reconciliation.plan.plan(books, snapshot, rules, now)                      # the caller decides
        written = transaction.write(run_id=..., plan=plan, screened=..., now=..., ...)

The account row is locked first and the run's fencing epoch checked: a run that lost the account writes nothing.
The books the plan is made from are read under that lock, so no fill recorded meanwhile can slip between the
reading and the writing. Everything the run found and did (books, findings, breaks, alerts, actions, the run's
outcome) commits together or not at all. A dry run writes only the run, its findings and unapplied actions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session

from models.accounts import AccountState, lock_for_run
from models.actions import EffectWriter
from models.breaks import BreakChanges, record_findings
from models.database import Database
from models.lots import OpenLots
from models.orders import TO_SEND
from models.reading import last_fills, read_books
from models.runs import Action, Run
from models.sharing import lock_venue_account, read_shared_account
from reconciliation.effects import BookFill
from reconciliation.errors import StaleRun
from reconciliation.findings import CashFinding
from reconciliation.orders import ScreenedOrder
from reconciliation.plan import Plan, RunStatus
from reconciliation.sharing import SharedAccount
from reconciliation.summary import RunSummary
from reconciliation.values import Books, Position, plain

ACTIONS = cast(Table, Action.__table__)
RUNS = cast(Table, Run.__table__)
_FINISH_RUN = update(RUNS).where(RUNS.c.id == bindparam("finished_run_id"))  # SET from the parameters given


@dataclass(frozen=True)
class WrittenRun:
    """What a run's transaction wrote: its status, the positions after it, what its follow-ups need to know."""

    status: RunStatus
    positions: tuple[Position, ...]
    exits_estimated: bool = False
    breaks: BreakChanges = field(default_factory=BreakChanges)
    alerts: int = 0
    orders_to_send: int = 0
    halted: bool = False


class RunTransaction:
    """The open transaction of one run on one account (see the module's docstring)."""

    def __init__(self, session: Session, account_id: int) -> None:
        self.session = session
        self.account_id = account_id
        self._account: AccountState | None = None
        self._lots: OpenLots | None = None

    def books(
        self,
        *,
        run_id: int,
        epoch: int,
        dry_run: bool,
        venue_fill_ids: Iterable[str] = (),
        with_last_fills: bool = True,
    ) -> Books:
        """Lock the account, check run ``run_id`` still owns it (a dry run owns nothing), read its books.

        Without ``with_last_fills`` the newest fill per instrument is left out: a plan that finds no difference
        never looks at it, so an in-sync run spares the query; ``with_fill_history`` adds it when needed.
        """
        self._account, cash = lock_for_run(self.session, self.account_id)
        if not dry_run and self._account.epoch != epoch:
            raise StaleRun(f"run {run_id} lost the account to a newer run (epoch {epoch} < {self._account.epoch})")
        books, self._lots = read_books(
            self.session, self._account, cash, venue_fill_ids, with_last_fills=with_last_fills
        )
        return books

    def shared_account(self, config_venue_account: str, own: tuple[str, str], others: Sequence[tuple[str, str]],
                       venue_fill_ids: Iterable[str] = ()) -> SharedAccount:  # fmt: skip
        """Take the shared venue account for this transaction, then read what the other bots' books hold (call it
        before ``books``: every run of the venue account takes the same lock first, so they take turns)."""
        lock_venue_account(self.session, config_venue_account)
        return read_shared_account(self.session, config_venue_account, own, others, venue_fill_ids)

    def with_fill_history(self, books: Books) -> Books:
        """``books`` with the newest fill recorded on each instrument (fills in flight, correction ids)."""
        return replace(books, last_fills=last_fills(self.session, self.account_id))

    def write(
        self,
        *,
        run_id: int,
        plan: Plan,
        screened: Sequence[ScreenedOrder],
        now: datetime,
        dry_run: bool,
        snapshot_as_of: datetime | None,
        summary: RunSummary | None = None,
    ) -> WrittenRun:
        """Carry out ``plan`` (unless dry) and record everything about the run, with its ``summary`` figures."""
        if self._account is None or self._lots is None:
            raise RuntimeError("read the books before writing the plan")
        writer = EffectWriter(self.session, self._account, run_id, now, dry_run)
        rows = writer.carry_out(plan, self._lots, screened)
        halts = plan.halt_reason is not None and not dry_run
        if plan.halt_reason and halts:
            rows.append(writer.halt(plan.halt_reason))
        finding_ids, breaks = record_findings(self.session, run_id, self.account_id, plan, now, dry_run)
        if rows:
            self.session.execute(
                ACTIONS.insert(),
                [{**row, "run_id": run_id, "finding_id": finding_ids[row.pop("decision")]} for row in rows],
            )
        self.session.execute(
            _FINISH_RUN,
            {"finished_run_id": run_id, "status": plan.status.value, "finished_at": now, "matched": len(plan.matched),
             "cash": cash_json(plan), "snapshot_as_of": snapshot_as_of,
             "summary": summary_json(summary) if summary else None},
        )  # fmt: skip
        return WrittenRun(
            status=plan.status,
            positions=tuple(self._lots.position(key) for key in sorted(self._lots.by_key) if self._lots.by_key[key]),
            exits_estimated=not dry_run and any(isinstance(e, BookFill) and e.fill.estimated for e in plan.effects()),
            breaks=breaks,
            alerts=breaks.alerts + (1 if halts else 0),
            orders_to_send=0 if dry_run else sum(1 for row in rows if (row["after"] or {}).get("state") == TO_SEND),
            halted=self._account.halted or halts,
        )


@contextmanager
def run_transaction(database: Database, account_id: int) -> Iterator[RunTransaction]:
    """One transaction for one run of ``account_id``; database errors become the project's errors."""
    with database.transaction() as session:
        yield RunTransaction(session, account_id)


def cash_json(plan: Plan) -> dict[str, Any] | None:
    """The run's cash finding as JSON (amounts as strings), with the decision taken if it was a discrepancy."""
    cash = plan.cash
    if cash is None:
        return None
    decision = next((d for d in plan.decisions if isinstance(d.finding, CashFinding)), None)
    return {
        "currency": cash.currency,
        "expected_currency": cash.expected_currency,
        "expected": plain(cash.expected) if cash.expected is not None else None,
        "venue": plain(cash.venue),
        "diff_pct": plain(cash.diff_pct) if cash.diff_pct is not None else None,
        "tolerance_pct": plain(cash.tolerance_pct),
        "severity": cash.severity.value if cash.severity else None,
        "strategy": decision.strategy.value if decision else None,
        "outcome": decision.outcome.value if decision else None,
        "action": decision.action if decision else None,
    }


def summary_json(summary: RunSummary) -> dict[str, Any]:
    """A run's summary figures as stored in ``runs.summary`` (amounts as strings)."""
    return {
        "venue_positions": summary.venue_positions,
        "book_positions": summary.book_positions,
        "added": summary.added,
        "removed": summary.removed,
        "adjusted": summary.adjusted,
        "venue_value_at_mark": {currency: plain(value) for currency, value in summary.value_at_mark.items()},
        "unvalued_positions": summary.unvalued,
    }
