"""Benchmark: a metrics scrape's database figures as the run history grows, and what keeping the tallies costs a run.

    .venv/bin/python bench/metrics_history.py [--runs 1000000] [--accounts 6] [--repeat 5]
                                              [--db postgresql://postgres@127.0.0.1:5432/test]

In a private Postgres schema (``bench_metrics_<pid>``) migrated to 0004, before the tallies, it records ``--runs``
finished runs over ``--accounts`` accounts (one in fifty failed), then measures:

- the grouping of the whole history the metrics did before the tallies (the same statements, median of
  ``--repeat``);
- migration 0005, which starts the tallies from that history (once, on upgrade);
- ``models.metrics.fleet_figures``, what a scrape reads from the database now (median of ``--repeat``);
- finishing 2,000 runs one statement each, with the tally triggers and with them disabled: the triggers' cost per
  finished run.

It checks that the tallies equal the grouped history. The schema is dropped at the end, also on error or Ctrl-C.
Exit status: 0 when the checks passed, 1 when one failed, 2 when Postgres cannot be used.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as `python bench/metrics_history.py` from anywhere
    sys.path.insert(0, ROOT)

from models import Run, RunTally  # noqa: E402
from models.database import Database, make_engine, normalize_url, upgrade  # noqa: E402
from models.metrics import fleet_figures  # noqa: E402

DEFAULT_DB = os.environ.get("RECON_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 12, 1, tzinfo=UTC)
FINISHED_ONE_BY_ONE = 2_000
#: What a scrape ran before the tallies: finished runs grouped by account and status, and durations by venue.
GROUPED_HISTORY = (
    "SELECT account_id, status, count(*), max(finished_at) FROM runs "
    "WHERE NOT dry_run AND finished_at IS NOT NULL GROUP BY account_id, status",
    "SELECT a.venue, count(*), sum(EXTRACT(EPOCH FROM r.finished_at - r.started_at)), "
    + ", ".join(
        f"sum(CASE WHEN EXTRACT(EPOCH FROM r.finished_at - r.started_at) <= {b} THEN 1 ELSE 0 END)"
        for b in (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
    )
    + " FROM runs r JOIN accounts a ON a.id = r.account_id WHERE NOT r.dry_run AND r.finished_at IS NOT NULL "
    "GROUP BY a.venue",
)


def schema_url(base: str, schema: str) -> str:
    return make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)


def median_seconds(work: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def record_history(engine: Engine, runs: int, accounts: int) -> None:
    """``accounts`` sim accounts and ``runs`` finished runs over them, one a minute back from NOW, 40 ms each."""
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO bots (name, created_at) VALUES ('bench', :now)"), {"now": NOW})
        connection.execute(
            text("INSERT INTO accounts (bot_id, name, venue, epoch, halted, created_at) "
                 "SELECT b.id, 'a' || g, 'sim', 0, false, :now FROM bots b, generate_series(1, :n) g"),
            {"now": NOW, "n": accounts},
        )  # fmt: skip
        connection.execute(
            text("INSERT INTO runs (account_id, reason, status, dry_run, epoch, started_at, finished_at, matched) "
                 "SELECT a.id, 'schedule', CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'in_sync' END, false, g, "
                 ":now - make_interval(mins => g), :now - make_interval(mins => g) + interval '40 ms', 0 "
                 "FROM generate_series(1, :runs) g JOIN accounts a ON a.id = (SELECT min(id) FROM accounts) + g % :n"),
            {"now": NOW, "runs": runs, "n": accounts},
        )  # fmt: skip
        connection.execute(text("ANALYZE"))


def grouped_history(engine: Engine) -> None:
    with engine.connect() as connection:
        for statement in GROUPED_HISTORY:
            connection.execute(text(statement)).all()


def finish_runs_one_by_one(engine: Engine, triggers: bool) -> float:
    """Seconds per run to record ``FINISHED_ONE_BY_ONE`` runs and finish each in its own statement."""
    with engine.begin() as connection:
        if not triggers:
            connection.execute(text("ALTER TABLE runs DISABLE TRIGGER USER"))
        ids = connection.execute(
            text("INSERT INTO runs (account_id, reason, status, dry_run, epoch, started_at, matched) "
                 "SELECT min(id), 'manual', 'running', false, 0, :now, 0 FROM accounts, generate_series(1, :n) "
                 "GROUP BY generate_series RETURNING id"),
            {"now": NOW, "n": FINISHED_ONE_BY_ONE},
        ).scalars().all()  # fmt: skip
        finish = text("UPDATE runs SET status = 'in_sync', finished_at = :end WHERE id = :id")
        started = time.perf_counter()
        for run_id in ids:
            connection.execute(finish, {"end": NOW, "id": run_id})
        seconds = time.perf_counter() - started
        if not triggers:
            connection.execute(text("ALTER TABLE runs ENABLE TRIGGER USER"))
    return seconds / len(ids)


def run(base: str, args: argparse.Namespace) -> tuple[list[str], list[str]]:
    schema = f"bench_metrics_{os.getpid()}"
    admin = make_engine(base)
    database: Database | None = None
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        database = Database(schema_url(base, schema))
        engine = database.engine
        upgrade(engine, "0004")
        started = time.perf_counter()
        record_history(engine, args.runs, args.accounts)
        recorded = time.perf_counter() - started
        grouped = median_seconds(lambda: grouped_history(engine), args.repeat)
        started = time.perf_counter()
        upgrade(engine)
        migrated = time.perf_counter() - started

        def scrape() -> None:
            with database.reading() as session:  # type: ignore[union-attr]
                fleet_figures(session)

        scraped = median_seconds(scrape, args.repeat)
        with database.reading() as session:
            tallies = {(a, s): n for a, s, n in session.execute(select(RunTally.account_id, RunTally.status,
                                                                       RunTally.runs))}  # fmt: skip
            history = {(a, s): n for a, s, n in session.execute(
                select(Run.account_id, Run.status, func.count()).group_by(Run.account_id, Run.status))}  # fmt: skip
        with_triggers = finish_runs_one_by_one(engine, triggers=True)
        without = finish_runs_one_by_one(engine, triggers=False)
    finally:
        if database is not None:
            database.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
    failures = [] if tallies == history else [f"tallies {tallies} differ from the history {history}"]
    lines = [
        f"machine          : {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        f"history          : {args.runs:,} finished runs over {args.accounts} accounts (recorded in {recorded:.1f} s)",
        f"grouped history  : {grouped * 1000:,.0f} ms a scrape (before the tallies; median of {args.repeat})",
        f"migration 0005   : {migrated:.2f} s, once (tallies started from the history)",
        f"scrape now       : {scraped * 1000:,.1f} ms (fleet_figures; median of {args.repeat})",
        f"finishing a run  : {with_triggers * 1e6:,.0f} µs with the tally triggers, {without * 1e6:,.0f} µs without "
        f"({FINISHED_ONE_BY_ONE:,} runs, one statement each)",
    ]
    return lines, failures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1_000_000, help="finished runs in the history (default 1000000)")
    parser.add_argument("--accounts", type=int, default=6, help="accounts they belong to (default 6)")
    parser.add_argument("--repeat", type=int, default=5, help="timings per figure; the median is shown (default 5)")
    parser.add_argument("--db", default=DEFAULT_DB, help=f"Postgres URL; a private schema is created in it "
                        f"(default {DEFAULT_DB}, or RECON_BENCH_DATABASE_URL)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = normalize_url(args.db)
    if make_url(base).get_backend_name() != "postgresql":
        print("this benchmark needs Postgres (--db postgresql://...)", file=sys.stderr)
        return 2
    try:
        lines, failures = run(base, args)
    except OperationalError as error:
        print(f"Postgres is not usable at {make_url(base).render_as_string()}: {error.orig}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    for failure in failures:
        print(f"check failed: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
