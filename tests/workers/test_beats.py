"""Two beats, one schedule: two real beat processes share the schedule in Redis behind a lock; the leader sends,
the other waits; killing the leader (SIGKILL) hands the schedule over within the lock's timeout, and no entry is
sent twice in one interval.

No worker runs: every send stays in the account's queue, where the test reads who sent it (the message's
``origin``) and when (its ``expires`` is the send time plus 90 % of the interval).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from redis import Redis

from tests.conftest import stop_process_groups
from tests.workers.test_worker_kill import wait_for

REDIS_URL = os.environ.get("RECON_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 2  # lxalgo/paper's interval: seconds
LOCK_TIMEOUT = 5  # RECON_BEAT_LOCK_TIMEOUT: the leader renews it every second
LOCK_KEY = "recon:beat::lock"


@pytest.fixture
def fleet_every_two_seconds(example_fleet: Path) -> Path:
    marker = 'state_file = "venues/lxalgo_paper.json"\n'
    example_fleet.write_text(example_fleet.read_text().replace(marker, f"{marker}interval_seconds = {INTERVAL}\n"))
    return example_fleet


def start_beat(fleet: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RECON_FLEET": str(fleet), "RECON_REDIS_URL": REDIS_URL, "PYTHONPATH": str(ROOT),
           "RECON_BEAT_LOCK_TIMEOUT": str(LOCK_TIMEOUT)}  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers", "beat", "--loglevel=WARNING"], env=env,
                            cwd=fleet.parent, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip


def sends(redis: Redis) -> list[tuple[datetime, int]]:
    """Each send of lxalgo/paper's reconciliation waiting in its queue: when, and by which process."""
    found = []
    for raw in redis.lrange("recon.sim", 0, -1):
        headers = json.loads(raw)["headers"]
        if headers["argsrepr"] != "['lxalgo', 'paper', 'schedule']":
            continue
        sent = datetime.fromisoformat(headers["expires"]) - timedelta(seconds=INTERVAL * 0.9)
        found.append((sent, int(headers["origin"].split("@")[0].removeprefix("gen"))))
    return sorted(found)


def test_two_beats_send_each_entry_once_per_interval_and_the_standby_takes_over_when_the_leader_is_killed(
    fleet_every_two_seconds: Path,
) -> None:
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    leader = start_beat(fleet_every_two_seconds)
    standby: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: redis.exists(LOCK_KEY), 60)
        standby = start_beat(fleet_every_two_seconds)
        wait_for(lambda: len(sends(redis)) >= 4, 60)  # the leader sends; the standby waits for the lock
        before_kill = sends(redis)
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(timeout=15)
        killed_at = time.monotonic()
        wait_for(lambda: any(pid == standby.pid for _, pid in sends(redis)), 60)  # type: ignore[union-attr]
        handed_over_in = time.monotonic() - killed_at
        wait_for(lambda: sum(pid == standby.pid for _, pid in sends(redis)) >= 3, 60)  # type: ignore[union-attr]
    finally:
        stop_process_groups(leader)
        if standby is not None:
            stop_process_groups(standby)
    every = sends(redis)
    redis.flushdb()

    assert {pid for _, pid in before_kill} == {leader.pid}, "only the lock holder sends"
    assert {pid for _, pid in every} == {leader.pid, standby.pid}
    assert handed_over_in < LOCK_TIMEOUT + INTERVAL + 10, "the standby sends within the lock's timeout"
    gaps = [(later - earlier).total_seconds() for (earlier, _), (later, _) in pairwise(every)]
    assert min(gaps) >= INTERVAL * 0.5, f"an entry was sent twice in one interval: gaps {gaps}"
    per_sender: dict[int, int] = defaultdict(int)
    for _, pid in every:
        per_sender[pid] += 1
    print(f"sends: {dict(per_sender)}, handover after {handed_over_in:.1f} s, gaps {[round(g, 1) for g in gaps]}")
