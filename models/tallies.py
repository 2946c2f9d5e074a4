"""Running totals of finished runs, kept by the database itself so the metrics never read the run history.

Each real (not dry) run that finishes adds one to its account's tally for the status it finished with, and one to
its account's duration bucket. Triggers on ``runs`` (migration 0005, for Postgres and SQLite alike) do it in the
transaction that finishes the run, whichever code path finishes it: a committed run is counted exactly once, a
rolled-back one never, and a scrape reads a few rows per account however long the history grows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.types import UTCDateTime

#: Upper bounds (seconds) of the run-duration histogram's buckets: a sim run takes well under a second, a venue
#: read tens of seconds at worst before the task's soft time limit. Bucket ``i`` counts runs that took at most
#: ``DURATION_BUCKETS[i]`` and more than the bound before it; bucket ``len(DURATION_BUCKETS)`` the longer ones.
#: Migration 0005's triggers hold the same bounds: changing them takes a migration.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class RunTally(Base):
    """How many of an account's real runs finished with one status, and when the latest of them finished."""

    __tablename__ = "run_tallies"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    runs: Mapped[int] = mapped_column(BigInteger)
    last_finished_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DurationTally(Base):
    """How many of an account's real runs took as long as one bucket of ``DURATION_BUCKETS`` says, and their
    seconds in all."""

    __tablename__ = "run_duration_tallies"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    runs: Mapped[int] = mapped_column(BigInteger)
    seconds: Mapped[float] = mapped_column(Float)
