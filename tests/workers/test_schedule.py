"""Beat's schedule spreads a fleet's runs over the interval instead of sending them all at once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from celery.schedules import schedule as every

from workers.beat import Entry
from workers.celery import create_app
from workers.fleet import load_fleet
from workers.schedule import beat_schedule
from workers.settings import Settings

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def fleet_of_many(folder: Path, accounts: int, interval: int) -> Path:
    lines = ["[defaults]", f"interval_seconds = {interval}"]
    for n in range(accounts):
        lines += [f"[bots.bot{n // 2}.accounts.a{n % 2}]", 'venue = "sim"', 'state_file = "venue.json"']
    path = folder / "fleet.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def first_sends(schedule: dict[str, dict[str, object]]) -> list[datetime]:
    return [
        entry["last_run_at"] + timedelta(seconds=entry["schedule"])  # type: ignore[operator]
        for name, entry in schedule.items()
        if name.startswith("reconcile:")
    ]


def test_a_thousand_accounts_have_their_first_runs_spread_evenly_over_one_interval(tmp_path: Path) -> None:
    fleet = load_fleet(fleet_of_many(tmp_path, 1000, 300))

    sends = first_sends(beat_schedule(fleet, now=NOW))

    assert len(sends) == 1000
    assert all(NOW < send <= NOW + timedelta(seconds=300) for send in sends), "each within one interval from now"
    per_minute = Counter(int((send - NOW).total_seconds() // 60) for send in sends)
    assert sorted(per_minute) == [0, 1, 2, 3, 4]
    assert all(150 <= count <= 250 for count in per_minute.values()), per_minute  # 200 a minute, not 1000 at once


def test_an_accounts_phase_is_the_same_whenever_and_wherever_the_schedule_is_built(tmp_path: Path) -> None:
    fleet = load_fleet(fleet_of_many(tmp_path, 10, 300))
    later = NOW + timedelta(hours=5)

    here = beat_schedule(fleet, now=NOW)
    there = beat_schedule(fleet, now=later)

    offsets = {name: NOW - entry["last_run_at"] for name, entry in here.items() if "last_run_at" in entry}
    assert offsets == {name: later - entry["last_run_at"] for name, entry in there.items() if "last_run_at" in entry}
    assert len(set(offsets.values())) == 10, "accounts do not share a phase"


def test_beat_files_an_entry_last_sent_in_the_past_under_its_due_time_not_earlier(tmp_path: Path) -> None:
    app = create_app(Settings(fleet=str(fleet_of_many(tmp_path, 2, 60))))
    now = datetime.now(UTC)
    entry = Entry("reconcile:bot0:a0", "recon.reconcile", every(60.0), app=app)
    entry.last_run_at = now - timedelta(seconds=40)

    assert entry.due_at is not None
    assert abs((entry.due_at - (now + timedelta(seconds=20))).total_seconds()) < 1
    entry.last_run_at = now - timedelta(seconds=90)
    assert entry.due_at is not None and abs((entry.due_at - now).total_seconds()) < 1, "overdue: due now"
