"""The chaos run, short: six SIGKILLs (pool processes, mid-run where it can, and the leading beat), a Redis and a
Postgres restart, while venues change and bots trigger; afterwards the books equal every venue."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHAOS = Path(__file__).resolve().parent.parent / "bench" / "chaos.py"


def test_a_short_chaos_run_ends_with_the_books_equal_to_the_venues_and_nothing_doubled_or_left_running() -> None:
    finished = subprocess.run(
        [sys.executable, str(CHAOS), "--kills", "6", "--redis-restarts", "1", "--postgres-restarts", "1",
         "--positions", "1000", "--pace", "1.5", "--seconds", "240", "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert finished.returncode in (0, 1), finished.stderr[-3000:]
    result = json.loads(finished.stdout)

    assert result["differences"] == [] and result["books_equal_venue"] is True
    assert result["fills_doubled"] == 0 and result["lots_without_their_fill"] == 0
    assert result["runs_left_running"] == 0
    assert result["failed_runs_recovered"] == result["runs"].get("failed", 0), "every failed run was run again"
    assert (result["kills"], result["redis_restarts"], result["postgres_restarts"]) == (6, 1, 1)
    assert result["beat_leader_kills"] == 1
    assert result["venue_fills"] > 0 and result["triggers"] > 0
    assert result["ok"] is True and finished.returncode == 0
    assert "SIGKILL the leading beat" in finished.stderr, "progress names each fault as it happens"
