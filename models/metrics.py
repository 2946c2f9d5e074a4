"""The fleet's figures for the metrics endpoint, read in four statements whatever the fleet's size and however long
its run history: the accounts, their run tallies by status (with the last success), open breaks by account and
severity, and the duration tallies by venue and bucket.

The tallies (``models.tallies``) are kept by the database as runs finish: only finished runs that were not dry
count, each once, with the status it finished with, so each (account, status) count only grows (a Prometheus
counter).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.books import Account, Bot
from models.runs import Break
from models.tallies import DURATION_BUCKETS, DurationTally, RunTally
from reconciliation.plan import RunStatus

#: A run that finished with any other status succeeded (its decision was written), as for staleness alerts.
UNSUCCESSFUL = (RunStatus.FAILED.value, RunStatus.RUNNING.value)


@dataclass(frozen=True)
class OpenBreaks:
    """Open breaks of one account at one severity: how many, and when the oldest was first seen."""

    count: int
    oldest_first_seen: datetime


@dataclass
class AccountFigures:
    """One account's figures: runs by final status, last success, open breaks by severity, halt flag."""

    bot: str
    account: str
    venue: str
    halted: bool
    runs: dict[str, int] = field(default_factory=dict)
    last_success_at: datetime | None = None
    open_breaks: dict[str, OpenBreaks] = field(default_factory=dict)


@dataclass(frozen=True)
class Durations:
    """One venue's finished runs as a histogram: cumulative counts per ``DURATION_BUCKETS`` bound, then the
    total count and the sum of seconds."""

    venue: str
    cumulative: tuple[int, ...]
    count: int
    total_seconds: float


@dataclass(frozen=True)
class FleetFigures:
    """Every account the books know, and the run durations by venue."""

    accounts: list[AccountFigures]
    durations: list[Durations]


def fleet_figures(session: Session) -> FleetFigures:
    """The figures of every account the books know, in four statements."""
    accounts = {
        account_id: AccountFigures(bot, name, venue, halted)
        for account_id, bot, name, venue, halted in session.execute(
            select(Account.id, Bot.name, Account.name, Account.venue, Account.halted)
            .join(Bot, Bot.id == Account.bot_id)
            .order_by(Bot.name, Account.name)
        )
    }
    tallies = select(RunTally.account_id, RunTally.status, RunTally.runs, RunTally.last_finished_at)
    for account_id, status, n, last in session.execute(tallies):
        figures = accounts[account_id]
        figures.runs[status] = n
        if status not in UNSUCCESSFUL:
            figures.last_success_at = max(filter(None, (figures.last_success_at, last)), default=None)
    breaks = select(Break.account_id, Break.severity, func.count(), func.min(Break.first_seen_at))
    breaks = breaks.where(Break.resolved_at.is_(None)).group_by(Break.account_id, Break.severity)
    for account_id, severity, n, oldest in session.execute(breaks):
        accounts[account_id].open_breaks[severity] = OpenBreaks(n, oldest)
    return FleetFigures(list(accounts.values()), _durations(session))


def _durations(session: Session) -> list[Durations]:
    """The duration tallies by venue (the accounts' venue now), as cumulative histograms."""
    query = (
        select(Account.venue, DurationTally.bucket, func.sum(DurationTally.runs), func.sum(DurationTally.seconds))
        .join(Account, Account.id == DurationTally.account_id)
        .group_by(Account.venue, DurationTally.bucket)
    )
    counts: defaultdict[str, list[int]] = defaultdict(lambda: [0] * (len(DURATION_BUCKETS) + 1))
    seconds: defaultdict[str, float] = defaultdict(float)
    for venue, bucket, runs, total in session.execute(query):
        counts[venue][bucket] += int(runs)
        seconds[venue] += float(total)
    return [_histogram(venue, counts[venue], seconds[venue]) for venue in sorted(counts)]


def _histogram(venue: str, per_bucket: list[int], total_seconds: float) -> Durations:
    cumulative = [sum(per_bucket[: index + 1]) for index in range(len(DURATION_BUCKETS))]
    return Durations(venue, tuple(cumulative), sum(per_bucket), total_seconds)
