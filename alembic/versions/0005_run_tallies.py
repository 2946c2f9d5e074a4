"""run tallies: running totals of finished runs per account (by status, and by duration bucket), kept by triggers

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 19:40:00

The metrics read these instead of grouping the whole run history on every scrape. Triggers on ``runs`` add a run
when it becomes finished (an update setting ``finished_at``, or an insert of a finished run), real runs only, in
the transaction that finishes it. The tallies start from the history already recorded.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.types import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: models.tallies.DURATION_BUCKETS as of this revision (a migration keeps the values it was written with).
BOUNDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
#: A run becomes finished (and counts) when these hold of its new row; for an update, ``finished_at`` was null.
COUNTS = "NEW.finished_at IS NOT NULL AND NOT NEW.dry_run"
TRIGGERS = ("runs_tally_finished", "runs_tally_inserted_finished")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if not sqlite:
        # Until this migration commits, no run finishes: one finished after the history is counted but before the
        # triggers exist would be counted by neither (a worker of the old release may be running). SQLite has one
        # writer at a time already.
        op.execute("LOCK TABLE runs IN SHARE ROW EXCLUSIVE MODE")
    op.create_table(
        "run_tallies",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.Column("last_finished_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_run_tallies_account_id_accounts")),
        sa.PrimaryKeyConstraint("account_id", "status", name=op.f("pk_run_tallies")),
    )
    op.create_table(
        "run_duration_tallies",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_run_duration_tallies_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "bucket", name=op.f("pk_run_duration_tallies")),
    )
    _count_history(sqlite)
    if sqlite:
        _sqlite_triggers()
    else:
        _postgres_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in TRIGGERS:
            op.execute(f"DROP TRIGGER {trigger}")
    else:
        for trigger in TRIGGERS:
            op.execute(f"DROP TRIGGER {trigger} ON runs")
        op.execute("DROP FUNCTION tally_finished_run()")
    op.drop_table("run_duration_tallies")
    op.drop_table("run_tallies")


def _seconds(sqlite: bool, row: str) -> str:
    """A run's duration in seconds as SQL: exact on Postgres; on SQLite (text times) to the millisecond, as
    ``julianday`` is exact to a few hundredths of one."""
    if sqlite:
        return f"round((julianday({row}finished_at) - julianday({row}started_at)) * 86400.0, 3)"
    return f"EXTRACT(EPOCH FROM {row}finished_at - {row}started_at)"


def _bucket(seconds: str) -> str:
    cases = " ".join(f"WHEN {seconds} <= {bound} THEN {index}" for index, bound in enumerate(BOUNDS))
    return f"CASE {cases} ELSE {len(BOUNDS)} END"


def _count_history(sqlite: bool) -> None:
    seconds = _seconds(sqlite, "")
    finished = "finished_at IS NOT NULL AND NOT dry_run"
    op.execute(
        "INSERT INTO run_tallies (account_id, status, runs, last_finished_at) "
        f"SELECT account_id, status, count(*), max(finished_at) FROM runs WHERE {finished} GROUP BY account_id, status"
    )
    op.execute(
        "INSERT INTO run_duration_tallies (account_id, bucket, runs, seconds) "
        f"SELECT account_id, bucket, count(*), sum(seconds) FROM (SELECT account_id, {_bucket(seconds)} AS bucket, "
        f"{seconds} AS seconds FROM runs WHERE {finished}) AS durations GROUP BY account_id, bucket"
    )


def _upserts(sqlite: bool) -> str:
    """The two statements adding ``NEW`` to its tallies (``excluded`` is the row that was to be inserted)."""
    seconds = _seconds(sqlite, "NEW.")
    latest = "max" if sqlite else "GREATEST"
    return (
        "INSERT INTO run_tallies (account_id, status, runs, last_finished_at) "
        "VALUES (NEW.account_id, NEW.status, 1, NEW.finished_at) "
        "ON CONFLICT (account_id, status) DO UPDATE SET runs = run_tallies.runs + 1, "
        f"last_finished_at = {latest}(run_tallies.last_finished_at, excluded.last_finished_at);\n"
        "INSERT INTO run_duration_tallies (account_id, bucket, runs, seconds) "
        f"VALUES (NEW.account_id, {_bucket(seconds)}, 1, {seconds}) "
        "ON CONFLICT (account_id, bucket) DO UPDATE SET runs = run_duration_tallies.runs + 1, "
        "seconds = run_duration_tallies.seconds + excluded.seconds;"
    )


def _sqlite_triggers() -> None:
    body = _upserts(sqlite=True)
    op.execute(
        f"CREATE TRIGGER {TRIGGERS[0]} AFTER UPDATE OF finished_at ON runs FOR EACH ROW "
        f"WHEN OLD.finished_at IS NULL AND {COUNTS} BEGIN {body} END"
    )
    op.execute(f"CREATE TRIGGER {TRIGGERS[1]} AFTER INSERT ON runs FOR EACH ROW WHEN {COUNTS} BEGIN {body} END")


def _postgres_triggers() -> None:
    op.execute(
        "CREATE FUNCTION tally_finished_run() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"{_upserts(sqlite=False)} RETURN NULL; END $$"
    )
    op.execute(
        f"CREATE TRIGGER {TRIGGERS[0]} AFTER UPDATE OF finished_at ON runs FOR EACH ROW "
        f"WHEN (OLD.finished_at IS NULL AND {COUNTS}) EXECUTE FUNCTION tally_finished_run()"
    )
    op.execute(
        f"CREATE TRIGGER {TRIGGERS[1]} AFTER INSERT ON runs FOR EACH ROW WHEN ({COUNTS}) "
        "EXECUTE FUNCTION tally_finished_run()"
    )
