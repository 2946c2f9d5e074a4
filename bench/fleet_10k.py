"""Does beat's schedule keep up with a large fleet? 10,000 sim accounts at a 300 s interval through real workers.

    .venv/bin/python bench/fleet_10k.py                        # 10,000 accounts, 300 s, watched for 120 s
    .venv/bin/python bench/fleet_10k.py --window 300 --json    # one whole interval

Shortened in time: first every account runs once, all sent at once (``first``: each adopts the venue's two
positions, the heavier kind of run), so the books are as a fleet's are after its first interval. Then beat
starts and the run watches a window of the schedule (by default 120 s, 40 % of one interval), not hours of it.
Beat spreads each account's runs over the interval by a fixed phase, so the window sees the steady rate, N / T
runs a second (33 for 10,000 at 300 s), of runs in sync.

Last it saturates: ``--burst`` runs in sync sent at once and timed until the last one is recorded, which is
the capacity of the worker processes (runs per second per process), the figure docs/operations.md's
arithmetic uses.

Everything runs on loopback with a private Redis and Postgres (see ``chaos.py``), two prefork workers by
default. It prints: sends and runs a second in the window, the queue's depth (highest and at the end), runs
that expired unstarted, the delay from an entry's due time to its run's start (p50, p99, max), and the burst's
runs a second per process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaos import PrivatePostgres, PrivateRedis, print_result, start_stores, wait_until  # noqa: E402
from redis import Redis  # noqa: E402
from sqlalchemy import text  # noqa: E402

from models.database import Database  # noqa: E402
from workers.celery import create_app  # noqa: E402
from workers.fleet import load_fleet  # noqa: E402
from workers.schedule import RECONCILE_TASK, phase_seconds  # noqa: E402
from workers.settings import Settings  # noqa: E402

VENUE = {
    "positions": [
        {"symbol": "BTCUSDT", "category": "linear", "side": "long", "qty": "2", "avg_price": "60000"},
        {"symbol": "ETHUSDT", "category": "linear", "side": "short", "qty": "15", "avg_price": "3000"},
    ],
    "cash": None,
    "open_orders": [],
    "fills": [],
}


def write_fleet(folder: Path, accounts: int, interval: int) -> Path:
    """``accounts`` sim accounts (two per bot) that all read one venue file and follow it."""
    (folder / "venue.json").write_text(json.dumps(VENUE))
    lines = [
        "[defaults]", f"interval_seconds = {interval}", "grace_seconds = 0",
        "[defaults.policy]", 'minor = "sync_to_broker"', 'moderate = "sync_to_broker"', 'critical = "sync_to_broker"',
        "[defaults.policy.by_kind]", 'missing_in_ledger = "sync_to_broker"', 'missing_at_venue = "sync_to_broker"',
    ]  # fmt: skip
    for n in range(accounts):
        lines += [f"[bots.b{n // 2:05d}.accounts.a{n % 2}]", 'venue = "sim"', 'state_file = "venue.json"']
    path = folder / "fleet.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Fleet10k:
    def __init__(self, arguments: argparse.Namespace, folder: Path) -> None:
        self.arguments = arguments
        self.folder = folder
        self.fleet_path = write_fleet(folder, arguments.accounts, arguments.interval)
        self.redis = PrivateRedis(folder)
        self.postgres = None if arguments.database_url else PrivatePostgres(folder / "postgres")
        self.database_url = arguments.database_url or (self.postgres.url if self.postgres else "")
        self.processes: list[subprocess.Popen[bytes]] = []

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
        return {**keep, "RECON_DATABASE_URL": self.database_url, "RECON_REDIS_URL": self.redis.url,
                "RECON_FLEET": str(self.fleet_path), "PYTHONPATH": str(ROOT), "RECON_LOG_FORMAT": "text"}  # fmt: skip

    def start(self) -> None:
        start_stores(self.redis, self.postgres, self.env(), emptied=bool(self.arguments.database_url))
        celery = [sys.executable, "-m", "celery", "-A", "workers"]
        for n in range(self.arguments.workers):
            self.spawn([*celery, "worker", "--pool=prefork", f"--concurrency={self.arguments.concurrency}",
                        "--queues=recon.default,recon.sim", "-n", f"fleet{n}@%h", "--loglevel=WARNING",
                        "--without-gossip", "--without-mingle"], f"worker{n}.log")  # fmt: skip

    def spawn(self, command: list[str], log: str) -> None:
        with (self.folder / log).open("ab") as out:
            self.processes.append(subprocess.Popen(command, env=self.env(), cwd=self.folder, stdout=out,
                                                   stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip

    def start_beat(self) -> datetime:
        started = datetime.now(UTC)
        self.spawn([sys.executable, "-m", "celery", "-A", "workers", "beat", "--loglevel=WARNING"], "beat.log")
        return started

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 9)
        self.redis.stop()
        if self.postgres is not None:
            with contextlib.suppress(subprocess.SubprocessError):
                self.postgres.stop()


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def watch_schedule(bench: Fleet10k, seconds: float) -> dict[str, Any]:
    """Start beat, watch the queue for ``seconds``, and measure what ran against when it was due."""
    redis = Redis.from_url(bench.redis.url)
    beat_started = bench.start_beat()
    depths = []
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        depths.append(int(redis.llen("recon.sim")))  # type: ignore[arg-type]
        time.sleep(1)
        print(f"\r  {time.monotonic() - began:5.0f} s of {seconds:g}: queue {depths[-1]:>5}", end="", file=sys.stderr)
    print(file=sys.stderr)
    window_end = beat_started + timedelta(seconds=seconds)
    fleet = load_fleet(bench.fleet_path)
    due = {
        (c.bot, c.account): beat_started + timedelta(seconds=c.interval_seconds - phase_seconds(c))
        for c in fleet.accounts
    }
    database = Database(bench.database_url)
    with database.reading() as session:
        rows = session.execute(text(
            "SELECT b.name, a.name, r.started_at, r.finished_at, r.status FROM runs r JOIN accounts a ON "
            "a.id = r.account_id JOIN bots b ON b.id = a.bot_id WHERE r.reason = 'schedule'"
        )).all()  # fmt: skip
    database.dispose()
    in_window = [row for row in rows if row[2] <= window_end]
    delays = [(row[2] - due[(row[0], row[1])]).total_seconds() for row in in_window]
    expected = sum(1 for when in due.values() if when <= window_end)
    return {
        "window_seconds": seconds,
        "due_in_window": expected,
        "runs_started_in_window": len(in_window),
        "runs_per_second": round(len(in_window) / seconds, 1),
        "failed_runs": sum(1 for row in rows if row[4] == "failed"),
        "queue_depth_max": max(depths, default=0),
        "queue_depth_at_end": depths[-1] if depths else 0,
        "delay_due_to_start_seconds": {
            "p50": round(percentile(delays, 0.5), 2),
            "p99": round(percentile(delays, 0.99), 2),
            "max": round(max(delays, default=0.0), 2),
        },
    }


def burst(bench: Fleet10k, runs: int, label: str) -> dict[str, Any]:
    """Send ``runs`` runs of distinct accounts at once; time until the last is recorded and the queue is empty."""
    settings = Settings(database_url=bench.database_url, redis_url=bench.redis.url, fleet=str(bench.fleet_path))
    app = create_app(settings)
    fleet = load_fleet(bench.fleet_path)
    accounts = fleet.accounts[:runs]
    database = Database(bench.database_url)
    with database.reading() as session:
        before = session.execute(text("SELECT count(*) FROM runs WHERE reason = 'manual'")).scalar_one()
    began = time.monotonic()
    for config in accounts:
        app.send_task(RECONCILE_TASK, args=[config.bot, config.account, "manual"], queue="recon.sim")
    sent = time.monotonic() - began

    queue = Redis.from_url(bench.redis.url)

    def done() -> bool:
        """Every run recorded and the queue empty: the runs' follow-ups (alerts go to the account's queue) too."""
        with database.reading() as session:
            count = session.execute(text(
                "SELECT count(*) FROM runs WHERE reason = 'manual' AND status <> 'running'")).scalar_one()  # fmt: skip
        waiting = int(queue.llen("recon.sim"))  # type: ignore[arg-type]
        print(f"\r  {label}: {count - before:>5} of {runs} runs, {waiting:>5} queued", end="", file=sys.stderr)
        return bool(count - before >= runs and waiting == 0)

    wait_until(done, 600, f"{runs} runs finishing")
    took = time.monotonic() - began
    print(file=sys.stderr)
    database.dispose()
    processes = bench.arguments.workers * bench.arguments.concurrency
    return {
        f"{label}_runs": runs,
        f"{label}_send_seconds": round(sent, 2),
        f"{label}_seconds": round(took, 1),
        f"{label}_runs_per_second": round(runs / took, 1),
        f"{label}_runs_per_second_per_process": round(runs / took / processes, 1),
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000, help="sim accounts in the fleet")
    parser.add_argument("--interval", type=int, default=300, help="each account's interval_seconds")
    parser.add_argument("--window", type=float, default=120, help="seconds of the schedule to watch")
    parser.add_argument("--burst", type=int, default=2000, help="runs sent at once to measure capacity (0: skip)")
    parser.add_argument(
        "--warm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run every account once before beat starts, so the window sees runs in sync",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (each a prefork pool)")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes per worker")
    parser.add_argument("--database-url", help="an existing Postgres to use (emptied) instead of a private one")
    parser.add_argument("--keep", action="store_true", help="keep the folder with the processes' logs")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    arguments = parser.parse_args(argv)
    if min(arguments.accounts, arguments.interval, arguments.workers, arguments.concurrency) < 1:
        parser.error("--accounts, --interval, --workers and --concurrency must be at least 1")
    if arguments.window <= 0 or arguments.burst < 0:
        parser.error("--window must be positive and --burst 0 or more")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse(argv)
    folder = Path(tempfile.mkdtemp(prefix="recon-fleet-"))
    os.chmod(folder, 0o755)
    bench = Fleet10k(arguments, folder)
    try:
        bench.start()
        print(f"fleet: {arguments.accounts} accounts at {arguments.interval} s, {arguments.workers} workers x "
              f"{arguments.concurrency}; watching {arguments.window:g} s", file=sys.stderr)  # fmt: skip
        result: dict[str, Any] = {"accounts": arguments.accounts, "interval": arguments.interval,
                                  "needed_runs_per_second": round(arguments.accounts / arguments.interval, 1),
                                  "pool_processes": arguments.workers * arguments.concurrency}  # fmt: skip
        if arguments.warm:
            result |= burst(bench, arguments.accounts, "first")
        result |= watch_schedule(bench, arguments.window)
        for process in bench.processes[arguments.workers :]:  # beat stops: the burst runs alone
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
        Redis.from_url(bench.redis.url).delete("recon.sim")
        if arguments.burst:
            result |= burst(bench, min(arguments.burst, arguments.accounts), "in_sync")
        result["median_run_ms"] = median_run_ms(bench.database_url)
    finally:
        bench.stop()
        if not arguments.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print_result(result, as_json=arguments.json)
    return 0


def median_run_ms(database_url: str) -> float:
    database = Database(database_url)
    with database.reading() as session:
        took = [
            float(seconds) * 1000
            for (seconds,) in session.execute(text(
                "SELECT extract(epoch from finished_at - started_at) FROM runs WHERE finished_at IS NOT NULL"))
        ]  # fmt: skip
    database.dispose()
    return round(statistics.median(took), 1) if took else 0.0


if __name__ == "__main__":
    sys.exit(main())
