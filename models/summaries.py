"""Per-account summaries over a window of time (``recon summary``): what the runs found and did, how the breaks
moved, halts, and each account's last run, in a constant number of statements whatever the fleet's size.

Counts are of runs started in the window that were not dry runs (dry runs are counted apart, as rehearsals
change nothing); breaks count when they opened or were resolved in the window; open breaks and estimated
exits are as they stand now.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from models.books import Account, Bot, Trade
from models.runs import Action, Alert, Break, Finding, Run

RUNS, FINDINGS, ACTIONS = cast(Table, Run.__table__), cast(Table, Finding.__table__), cast(Table, Action.__table__)
BREAKS, ALERTS, TRADES = cast(Table, Break.__table__), cast(Table, Alert.__table__), cast(Table, Trade.__table__)
BACKFILLED = "backfill_exit"  # the action a backfill records for each estimate it replaced
BACKFILL_REASON = "backfill"  # a backfill compares no positions: the last run shown is the last reconciliation


@dataclass(frozen=True)
class LastRunFigures:
    """An account's newest reconciliation that was not a dry run (in the window or before; backfills left out),
    with its counts and stored summary."""

    run_id: int
    status: str
    reason: str
    started_at: datetime
    finished_at: datetime | None
    matched: int
    discrepancies: int
    actions: int
    summary: dict[str, Any] | None


@dataclass
class AccountSummary:
    """One account over the window; severities and statuses map to counts."""

    bot: str
    account: str
    venue: str
    runs: dict[str, int] = field(default_factory=dict)
    dry_runs: int = 0
    discrepancies: int = 0
    actions: int = 0
    breaks_opened: dict[str, int] = field(default_factory=dict)
    breaks_resolved: dict[str, int] = field(default_factory=dict)
    breaks_open: dict[str, int] = field(default_factory=dict)
    halts: int = 0
    exits_backfilled: int = 0
    estimated_exits: int = 0
    last_run: LastRunFigures | None = None


def account_summaries(
    session: Session, since: datetime, bot: str | None = None, account: str | None = None
) -> list[AccountSummary]:
    """Every account the books know (or one bot's, or one account) over the window from ``since``, by bot and
    account name; eight statements whatever the number of accounts."""
    accounts = _accounts(session, bot, account)
    if not accounts:
        return []
    ids = list(accounts)
    _count_runs(session, accounts, ids, since)
    _count_findings_and_actions(session, accounts, ids, since)
    _count_breaks(session, accounts, ids, since)
    for account_id, n in session.execute(
        select(ALERTS.c.account_id, func.count())
        .where(ALERTS.c.account_id.in_(ids), ALERTS.c.kind == "halted", ALERTS.c.created_at >= since)
        .group_by(ALERTS.c.account_id)
    ):
        accounts[account_id].halts = n
    for account_id, n in session.execute(
        select(TRADES.c.account_id, func.count())
        .where(TRADES.c.account_id.in_(ids), TRADES.c.exit_estimated.is_(True))
        .group_by(TRADES.c.account_id)
    ):
        accounts[account_id].estimated_exits = n
    _last_runs(session, accounts, ids)
    return sorted(accounts.values(), key=lambda a: (a.bot, a.account))


def _accounts(session: Session, bot: str | None, account: str | None) -> dict[int, AccountSummary]:
    query = select(Account.id, Bot.name, Account.name, Account.venue).join(Bot, Bot.id == Account.bot_id)
    if bot is not None:
        query = query.where(Bot.name == bot)
    if account is not None:
        query = query.where(Account.name == account)
    return {i: AccountSummary(b, a, v) for i, b, a, v in session.execute(query)}


def _in_window(query: Select[Any], ids: list[int], since: datetime) -> Select[Any]:
    return query.where(RUNS.c.account_id.in_(ids), RUNS.c.started_at >= since)


def _count_runs(session: Session, accounts: dict[int, AccountSummary], ids: list[int], since: datetime) -> None:
    query = select(RUNS.c.account_id, RUNS.c.status, RUNS.c.dry_run, func.count()).group_by(
        RUNS.c.account_id, RUNS.c.status, RUNS.c.dry_run
    )
    for account_id, status, dry_run, n in session.execute(_in_window(query, ids, since)):
        summary = accounts[account_id]
        if dry_run:
            summary.dry_runs += n
        else:
            summary.runs[status] = summary.runs.get(status, 0) + n


def _count_findings_and_actions(
    session: Session, accounts: dict[int, AccountSummary], ids: list[int], since: datetime
) -> None:
    findings = (
        select(RUNS.c.account_id, func.count())
        .join(FINDINGS, FINDINGS.c.run_id == RUNS.c.id)
        .where(RUNS.c.dry_run.is_(False))
        .group_by(RUNS.c.account_id)
    )
    for account_id, n in session.execute(_in_window(findings, ids, since)):
        accounts[account_id].discrepancies = n
    backfilled = func.sum(case((ACTIONS.c.kind == BACKFILLED, 1), else_=0))
    actions = (
        select(RUNS.c.account_id, func.count(), backfilled)
        .join(ACTIONS, ACTIONS.c.run_id == RUNS.c.id)
        .where(RUNS.c.dry_run.is_(False), ACTIONS.c.applied.is_(True))
        .group_by(RUNS.c.account_id)
    )
    for account_id, n, exits in session.execute(_in_window(actions, ids, since)):
        accounts[account_id].actions = n
        accounts[account_id].exits_backfilled = int(exits or 0)


def _count_breaks(session: Session, accounts: dict[int, AccountSummary], ids: list[int], since: datetime) -> None:
    def counted(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    rows = session.execute(
        select(
            BREAKS.c.account_id,
            BREAKS.c.severity,
            counted(BREAKS.c.first_seen_at >= since),
            counted(BREAKS.c.resolved_at >= since),
            counted(BREAKS.c.resolved_at.is_(None)),
        )
        .where(BREAKS.c.account_id.in_(ids))
        .group_by(BREAKS.c.account_id, BREAKS.c.severity)
    )
    tallies: dict[int, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for account_id, severity, opened, resolved, still_open in rows:
        for name, n in (("opened", opened), ("resolved", resolved), ("open", still_open)):
            if n:
                tallies[account_id][name][severity] = int(n)
    for account_id, tally in tallies.items():
        summary = accounts[account_id]
        summary.breaks_opened = tally.get("opened", {})
        summary.breaks_resolved = tally.get("resolved", {})
        summary.breaks_open = tally.get("open", {})


def _last_runs(session: Session, accounts: dict[int, AccountSummary], ids: list[int]) -> None:
    newest = (
        select(RUNS.c.account_id, func.max(RUNS.c.id).label("run_id"))
        .where(RUNS.c.account_id.in_(ids), RUNS.c.dry_run.is_(False), RUNS.c.reason != BACKFILL_REASON)
        .group_by(RUNS.c.account_id)
        .subquery()
    )
    findings = select(func.count()).where(FINDINGS.c.run_id == Run.id).scalar_subquery()
    actions = select(func.count()).where(ACTIONS.c.run_id == Run.id).scalar_subquery()
    for run, n_findings, n_actions in session.execute(
        select(Run, findings, actions).join(newest, newest.c.run_id == Run.id)
    ):
        accounts[run.account_id].last_run = LastRunFigures(
            run.id, run.status, run.reason, run.started_at, run.finished_at, run.matched, n_findings, n_actions,
            run.summary,
        )  # fmt: skip
