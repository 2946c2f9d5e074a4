"""Beat's scheduler: celery-redbeat (the schedule in Redis behind a lock) with each entry's due time computed
from now.

redbeat 2.x files an entry under ``last_run_at + remaining``, where ``remaining`` already counts from now: right
when the entry was last sent just now, too early otherwise. An entry whose phase puts its last send in the past
(``workers.schedule.beat_schedule``) would be filed up to a whole interval early; every tick would then load it
again until it is due, which with a large fleet costs beat more than sending.
"""

from __future__ import annotations

from datetime import datetime

from redbeat import RedBeatScheduler  # type: ignore[import-untyped]
from redbeat.schedulers import RedBeatSchedulerEntry  # type: ignore[import-untyped]


class Entry(RedBeatSchedulerEntry):  # type: ignore[misc]
    """A schedule entry filed in Redis under the moment it is due."""

    @property
    def due_at(self) -> datetime | None:
        """When the entry is next due: now when it never ran or is overdue; None when it never runs again."""
        now: datetime = self._default_now()
        if self.last_run_at is None:
            return now
        remaining = self.schedule.remaining_estimate(self.last_run_at)
        if remaining is None:
            return None
        return now if remaining.total_seconds() < 0 else now + remaining


class Scheduler(RedBeatScheduler):  # type: ignore[misc]
    """RedBeat's scheduler with entries filed under their due time."""

    Entry = Entry
