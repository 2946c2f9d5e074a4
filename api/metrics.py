"""Prometheus metrics of the fleet, computed at scrape time from the shared stores (docs/metrics.md).

Runs, durations, open breaks, last successes and halt flags come from Postgres (``models.metrics``); venue requests
and triggers from Redis hashes the workers increment (``workers.counters``). Nothing is counted in this process,
so the figures are the same whichever API process is scraped, and right across prefork children, hosts and
restarts: no ``prometheus_client`` multiprocess mode is needed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis

from models.database import Database
from models.metrics import AccountFigures, Durations, FleetFigures, fleet_figures
from models.tallies import DURATION_BUCKETS
from reconciliation.errors import CoordinationUnavailable
from reconciliation.findings import Severity
from reconciliation.plan import RunStatus
from workers.counters import triggers, venue_requests
from workers.fleet import Fleet

log = logging.getLogger(__name__)

#: Every account shows these statuses, zero until one happens, so that ``increase()`` sees the first failure.
ENDED_STATUSES = tuple(s.value for s in RunStatus if s is not RunStatus.RUNNING)
SEVERITIES = tuple(s.value for s in Severity)
ACCOUNT = ["bot", "account"]


def render_metrics(database: Database, redis: Redis | None, fleet: Fleet | None, now: datetime) -> tuple[bytes, str]:
    """The exposition body and its content type: every account the books or ``fleet`` know (one never run shows
    halted 0 and no last success), the run durations by venue, and, when ``redis`` is given, the venue-request and
    trigger counters (absent without Redis, or when it does not answer)."""
    with database.reading() as session:
        figures = fleet_figures(session)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(with_fleet(figures, fleet), redis, now))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def with_fleet(figures: FleetFigures, fleet: Fleet | None) -> FleetFigures:
    """``figures`` with an empty entry for each account of ``fleet`` the books do not know yet."""
    known = {(a.bot, a.account) for a in figures.accounts}
    missing = [
        AccountFigures(c.bot, c.account, c.venue, halted=False)
        for c in (fleet.accounts if fleet else ())
        if (c.bot, c.account) not in known
    ]
    return FleetFigures(figures.accounts + missing, figures.durations)


class FleetCollector(Collector):
    """Yields the fleet's metric families from figures read once per scrape."""

    def __init__(self, figures: FleetFigures, redis: Redis | None, now: datetime) -> None:
        self.figures = figures
        self.redis = redis
        self.now = now

    def collect(self) -> Iterable[Metric]:
        accounts = self.figures.accounts
        yield runs_total(accounts)
        yield run_durations(self.figures.durations)
        yield from breaks(accounts, self.now)
        yield last_success(accounts)
        yield halted(accounts)
        if self.redis is not None:
            yield from redis_counters(self.redis)


def runs_total(accounts: Iterable[AccountFigures]) -> Metric:
    """Finished runs (not dry) by account and final status."""
    family = CounterMetricFamily(
        "recon_runs",
        "Finished reconciliation runs (dry runs excluded) by account and the status each ended with "
        "(in_sync, resolved, warned, halted, failed; backfills with theirs).",
        labels=[*ACCOUNT, "venue", "status"],
    )
    for a in accounts:
        for status in sorted({*ENDED_STATUSES, *a.runs}):
            family.add_metric([a.bot, a.account, a.venue, status], a.runs.get(status, 0))
    return family


def run_durations(durations: Iterable[Durations]) -> Metric:
    """Seconds from start to end of finished runs (not dry), by venue."""
    family = HistogramMetricFamily(
        "recon_run_duration_seconds",
        "Seconds from start to end of finished reconciliation runs (dry runs excluded), by venue.",
        labels=["venue"],
    )
    for d in durations:
        buckets = [(str(bound), float(n)) for bound, n in zip(DURATION_BUCKETS, d.cumulative, strict=True)]
        family.add_metric([d.venue], [*buckets, ("+Inf", float(d.count))], d.total_seconds)
    return family


def breaks(accounts: Iterable[AccountFigures], now: datetime) -> Iterator[Metric]:
    """Open breaks by account and severity (zero included), and the age of the oldest open one."""
    count = GaugeMetricFamily(
        "recon_open_breaks",
        "Breaks (a discrepancy seen across consecutive runs) open now, by account and severity.",
        labels=[*ACCOUNT, "severity"],
    )
    age = GaugeMetricFamily(
        "recon_oldest_open_break_age_seconds",
        "Seconds since the oldest break open now was first seen, by account and severity (absent when none).",
        labels=[*ACCOUNT, "severity"],
    )
    for a in accounts:
        for severity in sorted({*SEVERITIES, *a.open_breaks}):
            open_ = a.open_breaks.get(severity)
            count.add_metric([a.bot, a.account, severity], open_.count if open_ else 0)
            if open_ is not None:
                age.add_metric([a.bot, a.account, severity], max((now - open_.oldest_first_seen).total_seconds(), 0))
    yield count
    yield age


def last_success(accounts: Iterable[AccountFigures]) -> Metric:
    """When each account's latest successful run ended (absent for an account that never succeeded)."""
    family = GaugeMetricFamily(
        "recon_last_success_timestamp_seconds",
        "Unix time the account's latest successful run (not failed, not dry) ended; absent if none has.",
        labels=ACCOUNT,
    )
    for a in accounts:
        if a.last_success_at is not None:
            family.add_metric([a.bot, a.account], a.last_success_at.timestamp())
    return family


def halted(accounts: Iterable[AccountFigures]) -> Metric:
    """1 while an account is halted (bots must open no new risk), else 0."""
    family = GaugeMetricFamily(
        "recon_account_halted",
        "1 while the account is halted by reconciliation or an operator (its bot must open no new risk), else 0.",
        labels=ACCOUNT,
    )
    for a in accounts:
        family.add_metric([a.bot, a.account], 1 if a.halted else 0)
    return family


def redis_counters(redis: Redis) -> Iterator[Metric]:
    """The counters kept in Redis; none when Redis does not answer (the Postgres figures are still served)."""
    try:
        requests, triggered = venue_requests(redis), triggers(redis)
    except CoordinationUnavailable as error:
        log.warning("metrics without the Redis counters: %s", error)
        return
    calls = CounterMetricFamily(
        "recon_venue_requests",
        "Calls to a venue (snapshot fetch, order look-up, fills, place, cancel; one call may span several HTTP "
        "pages) by venue and outcome: ok, rate_limited, retry_later, fix_configuration, rejected, "
        "invalid_response, error.",
        labels=["venue", "outcome"],
    )
    for (venue, outcome), n in sorted(requests.items()):
        calls.add_metric([venue, outcome], n)
    yield calls
    trigger = CounterMetricFamily(
        "recon_trigger",
        "Requests for a run by a bot, the API or the CLI: queued a task, or joined one already queued or running.",
        labels=["outcome"],
    )
    for outcome, n in triggered.items():
        trigger.add_metric([outcome], n)
    yield trigger
