"""A chaos run anyone can repeat: real workers and beats under kills and restarts, then the books checked.

    .venv/bin/python bench/chaos.py                       # 20 kills, 2 Redis and 2 Postgres restarts
    .venv/bin/python bench/chaos.py --kills 100 --json    # the run recorded in bench/README.md

What runs, all on loopback and all private to the run (nothing else on the machine is touched):

- a Redis of its own (append-only file, so a restart keeps the queues, the locks' keys and beat's schedule, as
  a production Redis does) and a Postgres cluster of its own (``initdb`` in a temporary folder, as the
  ``postgres`` user when run as root), both restarted mid-cycle; ``--database-url`` uses an existing Postgres
  instead, without Postgres restarts;
- a fleet of sim accounts reconciled every 3 s whose venues keep changing (positions opened, scaled, partly
  and fully closed, each change a fill), with every finding followed (``sync_to_broker``);
- two prefork workers and two beats sharing one locked schedule, started again when they die (as compose's
  restart policy or systemd would); bursts of triggers as bots send after large fills;
- every ``--pace`` seconds a fault: a worker's pool process SIGKILLed (one running a task when there is one), every
  fourth kill the beat that leads instead, and the restarts spread over the run.

Then the venues stop changing and the run waits until every account's last run, started after the last
change, is in sync. It checks, and prints: the books equal each venue, no fill is counted twice (each open
lot's fills account for its position, and no fill id is held twice), no run is left ``running``; with the
counts of kills, restarts, runs by status and failed runs recovered. Exit code 0 when every check holds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402
from sqlalchemy import text  # noqa: E402

from models.database import Database  # noqa: E402
from reconciliation.errors import ReconError  # noqa: E402
from workers.bot_client import BotClient  # noqa: E402
from workers.celery import create_app  # noqa: E402
from workers.settings import Settings  # noqa: E402

BOT = "chaos"
INTERVAL = 3  # seconds between scheduled runs of each account
POOL_WAIT_SECONDS = 60  # how long a kill waits for a pool process (workers restarting after Redis did)
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
PRICES = {"BTCUSDT": 60000, "ETHUSDT": 3000, "SOLUSDT": 150}
# Short limits, still nested as the settings demand, so a killed run is found and run again within seconds.
LIMITS = {"RECON_TASK_SOFT_TIME_LIMIT": "4", "RECON_TASK_TIME_LIMIT": "5", "RECON_LOCK_TTL": "6",
          "RECON_RETRY_BACKOFF_MAX": "2", "RECON_RETRY_MAX": "10", "RECON_VISIBILITY_TIMEOUT": "10",
          "RECON_RECOVER_SECONDS": "3", "RECON_BEAT_LOCK_TIMEOUT": "5", "RECON_LOG_FORMAT": "text"}  # fmt: skip


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if condition():
                return
        time.sleep(0.1)
    raise SystemExit(f"chaos: {what} did not happen within {seconds:g} s")


# --- the run's own Redis and Postgres ---------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server on a free port with an append-only file, restarted gracefully (it writes what it holds)."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("chaos: redis-server is not installed (Debian: apt-get install redis-server)")
        self.command = [binary, "--port", str(free_port()), "--bind", "127.0.0.1", "--dir", str(folder),
                        "--appendonly", "yes", "--appendfsync", "always", "--save", ""]  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.command[2]}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: Redis.from_url(self.url, socket_timeout=1).ping(), 20, "Redis starting")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def restart(self, down_for: float) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


class PrivatePostgres:
    """A Postgres cluster in a temporary folder on a free port; ``restart`` is a fast shutdown (connections
    dropped, transactions in flight aborted), a pause, and a start."""

    def __init__(self, folder: Path) -> None:
        binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        found = shutil.which("initdb")
        bin_dir = Path(found).resolve().parent if found else (binaries[-1] if binaries else None)
        if bin_dir is None:
            raise SystemExit("chaos: initdb is not installed; pass --database-url to use an existing Postgres")
        self.bin = bin_dir
        self.folder = folder
        folder.mkdir()
        self.data = folder / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.as_owner: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to the postgres user
            self.as_owner = ["runuser", "-u", "postgres", "--"]
            shutil.chown(folder, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_owner, str(self.bin / tool), *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self, down_for: float) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


def start_stores(redis: PrivateRedis, postgres: PrivatePostgres | None, env: dict[str, str], *, emptied: bool) -> None:
    """Start the run's Redis (and Postgres, when private), bring the database named in ``env`` to the newest
    schema, and empty its books when it is an existing one (``emptied``)."""
    redis.start()
    if postgres is not None:
        postgres.start()
    subprocess.run([str(Path(sys.executable).parent / "recon"), "db", "upgrade"], env=env, check=True,
                   stdout=subprocess.DEVNULL, timeout=120)  # fmt: skip
    if emptied:
        database = Database(env["RECON_DATABASE_URL"])
        with database.sessions() as session:
            session.execute(text("TRUNCATE bots, accounts, runs, fills RESTART IDENTITY CASCADE"))
            session.commit()
        database.dispose()


# --- venues that keep changing ----------------------------------------------------------------------------------


@dataclass
class SimAccount:
    """One account's venue: positions moved by fills, written whole to its state file (atomically)."""

    name: str
    state_file: Path
    positions: dict[str, tuple[int, Decimal]] = field(default_factory=dict)  # symbol: (signed qty, avg price)
    fills: list[dict[str, str]] = field(default_factory=list)
    static: int = 0  # positions that never change, so a run has some work to do
    changed_at: float = 0.0
    sequence: int = 0

    def write(self) -> None:
        state = {
            "positions": [self._position(symbol, qty, price) for symbol, (qty, price) in sorted(self.held().items())],
            "cash": None,
            "open_orders": [],
            "fills": self.fills[-40:],
        }
        partial = self.state_file.with_suffix(".tmp")
        partial.write_text(json.dumps(state))
        os.replace(partial, self.state_file)

    def held(self) -> dict[str, tuple[int, Decimal]]:
        """Every open position at the venue: the moving ones and the static ones."""
        static = {f"S{n:04d}USDT": (n % 7 + 1, Decimal(10 + n)) for n in range(self.static)}
        return {**static, **{symbol: held for symbol, held in self.positions.items() if held[0]}}

    @staticmethod
    def _position(symbol: str, qty: int, price: Decimal) -> dict[str, str]:
        side = "long" if qty > 0 else "short"
        return {"symbol": symbol, "category": "linear", "side": side, "qty": str(abs(qty)), "avg_price": str(price)}

    def trade(self, rng: random.Random) -> None:
        """One fill: open, add to, reduce or close a position (a flip goes through flat first)."""
        symbol = rng.choice(SYMBOLS)
        qty, avg = self.positions.get(symbol, (0, Decimal(0)))
        target = rng.choice([0, rng.randint(-30, 30), qty + rng.randint(-10, 10)])
        if qty and target and (qty > 0) != (target > 0):
            target = 0
        if target == qty:
            return
        price = Decimal(PRICES[symbol]) + Decimal(rng.randint(-500, 500)) / 10
        if abs(target) > abs(qty):  # opening or adding: the average moves
            avg = (avg * abs(qty) + price * (abs(target) - abs(qty))) / abs(target)
            avg = avg.quantize(Decimal("0.0001"))
        self.positions[symbol] = (target, avg if target else Decimal(0))
        self.sequence += 1
        self.fills.append({
            "fill_id": f"{self.name}-{self.sequence}", "symbol": symbol, "category": "linear",
            "side": "buy" if target > qty else "sell", "qty": str(abs(target - qty)), "price": str(price),
            "fee": "0", "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "kind": "trade",
        })  # fmt: skip
        self.write()
        self.changed_at = time.time()


def fleet_file(folder: Path, accounts: list[SimAccount]) -> Path:
    """A fleet whose every account follows its venue, reconciled every ``INTERVAL`` seconds."""
    lines = [
        "[defaults]", f"interval_seconds = {INTERVAL}", "grace_seconds = 1",
        "[defaults.policy]", 'minor = "sync_to_broker"', 'moderate = "sync_to_broker"', 'critical = "sync_to_broker"',
        "[defaults.policy.by_kind]", 'missing_in_ledger = "sync_to_broker"', 'missing_at_venue = "sync_to_broker"',
    ]  # fmt: skip
    for account in accounts:
        lines += [f"[bots.{BOT}.accounts.{account.name}]", 'venue = "sim"', f'state_file = "{account.state_file}"']
    path = folder / "fleet.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


# --- the processes under test -----------------------------------------------------------------------------------


@dataclass
class Managed:
    """A worker or beat process, started again when it dies (as a restart policy would)."""

    kind: str
    name: str
    command: list[str]
    env: dict[str, str]
    logfile: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started: float = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        with self.logfile.open("ab") as out:
            self.process = subprocess.Popen(self.command, env=self.env, cwd=self.logfile.parent, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # pool processes the main one left behind


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (a prefork worker's pool)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(stat.parent.name))
    return found


def leading_beat(beats: list[Managed]) -> Managed | None:
    """The beat that sent most recently (its log's last "Sending due task" line is the newest)."""
    newest: tuple[str, Managed] | None = None
    for beat in beats:
        if not beat.alive():
            continue
        sends = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) [^\n]*Sending due task", beat.logfile.read_text(
            errors="replace"), flags=re.MULTILINE)  # fmt: skip
        if sends and (newest is None or sends[-1] > newest[0]):
            newest = (sends[-1], beat)
    return newest[1] if newest else None


# --- the run ----------------------------------------------------------------------------------------------------


@dataclass
class Counts:
    pool_kills: int = 0
    beat_kills: int = 0
    redis_restarts: int = 0
    postgres_restarts: int = 0
    busy_kills: int = 0
    triggers: int = 0
    trigger_errors: int = 0
    fills: int = 0


class Chaos:
    def __init__(self, arguments: argparse.Namespace, folder: Path) -> None:
        self.arguments = arguments
        self.folder = folder
        self.rng = random.Random(arguments.seed)
        self.counts = Counts()
        self.stopping = threading.Event()
        self.venues_lock = threading.Lock()
        (folder / "venues").mkdir()
        self.accounts = [SimAccount(f"a{n}", folder / "venues" / f"a{n}.json", static=arguments.positions)
                         for n in range(arguments.accounts)]  # fmt: skip
        for account in self.accounts:
            account.write()
        self.fleet = fleet_file(folder, self.accounts)
        self.redis = PrivateRedis(folder)
        self.postgres = None if arguments.database_url else PrivatePostgres(folder / "postgres")
        self.database_url = arguments.database_url or (self.postgres.url if self.postgres else "")
        self.processes: list[Managed] = []
        self.app = create_app(self.settings())

    # set-up
    def start_services(self) -> None:
        env = self.env()
        start_stores(self.redis, self.postgres, env, emptied=bool(self.arguments.database_url))
        celery = [sys.executable, "-m", "celery", "-A", "workers"]
        for n in (1, 2):
            self.processes.append(Managed("worker", f"w{n}", [*celery, "worker", "--pool=prefork", "--concurrency=2",
                                          "--queues=recon.default,recon.sim", "-n", f"chaos{n}@%h",
                                          "--loglevel=WARNING", "--without-gossip"], env,
                                          self.folder / f"worker{n}.log"))  # fmt: skip
            self.processes.append(Managed("beat", f"b{n}", [*celery, "beat", "--loglevel=INFO"], env,
                                          self.folder / f"beat{n}.log"))  # fmt: skip
        for process in self.processes:
            process.start()

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
        return {**keep, **LIMITS, "RECON_DATABASE_URL": self.database_url, "RECON_REDIS_URL": self.redis.url,
                "RECON_FLEET": str(self.fleet), "PYTHONPATH": str(ROOT)}  # fmt: skip

    def settings(self) -> Settings:
        limits: dict[str, Any] = {k.removeprefix("RECON_").lower(): v for k, v in LIMITS.items()}
        return Settings(database_url=self.database_url, redis_url=self.redis.url, fleet=str(self.fleet), **limits)

    # what keeps happening
    def venues_trade(self) -> None:
        while not self.stopping.wait(self.rng.uniform(0.2, 0.6)):
            with self.venues_lock:
                self.rng.choice(self.accounts).trade(self.rng)
                self.counts.fills = sum(a.sequence for a in self.accounts)

    def bots_trigger(self) -> None:
        client = BotClient(self.settings())
        while not self.stopping.wait(self.rng.uniform(1.0, 3.0)):
            for _ in range(self.rng.randint(3, 12)):
                try:
                    client.request_reconciliation(BOT, self.rng.choice(self.accounts).name, "large_fill")
                    self.counts.triggers += 1
                except ReconError:  # Redis restarting: a bot would try again later
                    self.counts.trigger_errors += 1

    def supervise(self) -> None:
        while not self.stopping.wait(0.5):
            for process in self.processes:
                if not process.alive():
                    process.restarts += 1
                    process.start()

    # faults
    def plan(self) -> list[str]:
        faults = ["kill"] * self.arguments.kills + ["redis"] * self.arguments.redis_restarts
        if self.postgres is not None:
            faults += ["postgres"] * self.arguments.postgres_restarts
        restarts = [f for f in faults if f != "kill"]
        kills = [f for f in faults if f == "kill"]
        order: list[str] = []
        every = max(1, len(kills) // (len(restarts) + 1))
        for n, kill in enumerate(kills, 1):
            order.append(kill)
            if n % every == 0 and restarts:
                order.append(restarts.pop(0))
        return order + restarts

    def fault(self, kind: str, number: int, total: int, started: float) -> None:
        stamp = f"[{number:>3}/{total}] t={time.monotonic() - started:5.1f}s"
        if kind == "redis":
            self.redis.restart(down_for=self.rng.uniform(0.5, 2.0))
            self.counts.redis_restarts += 1
            log(f"{stamp} Redis restarted")
        elif kind == "postgres" and self.postgres is not None:
            self.postgres.restart(down_for=self.rng.uniform(0.5, 2.0))
            self.counts.postgres_restarts += 1
            log(f"{stamp} Postgres restarted")
        elif (self.counts.pool_kills + self.counts.beat_kills) % 4 == 3 and (beat := self.leading()):
            os.kill(beat.process.pid, signal.SIGKILL)  # type: ignore[union-attr]
            self.counts.beat_kills += 1
            log(f"{stamp} SIGKILL the leading beat {beat.name} (pid {beat.process.pid})")  # type: ignore[union-attr]
        else:
            pid, what = self.pool_process_to_kill()
            waited_until = time.monotonic() + POOL_WAIT_SECONDS
            while pid is None and time.monotonic() < waited_until:  # workers the supervisor is restarting (Redis)
                time.sleep(1)
                pid, what = self.pool_process_to_kill()
            if pid is None:
                log(f"{stamp} no pool process to kill within {POOL_WAIT_SECONDS} s")
                return
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                self.counts.pool_kills += 1
                self.counts.busy_kills += what == "running a task"
            log(f"{stamp} SIGKILL pool process {pid} ({what})")

    def pool_process_to_kill(self) -> tuple[int | None, str]:
        """A pool process running a reconciliation, found by asking the workers for up to 3 s; else any pool
        process of a worker that has finished starting (billiard gives up on a pool that dies while it starts)."""
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # Redis may be restarting: fall back to any pool process
                for tasks in (self.app.control.inspect(timeout=0.3).active() or {}).values():
                    for task in tasks:
                        if task.get("name") == "recon.reconcile" and task.get("worker_pid"):
                            return int(task["worker_pid"]), "running a task"
        ready = [p for p in self.processes if p.kind == "worker" and p.alive() and time.monotonic() - p.started > 5]
        pool = [pid for worker in ready for pid in children(worker.process.pid)]  # type: ignore[union-attr]
        return (self.rng.choice(pool), "idle") if pool else (None, "")

    def leading(self) -> Managed | None:
        return leading_beat([p for p in self.processes if p.kind == "beat"])

    # the end
    def settle(self, seconds: float) -> float:
        """Wait until every account's newest run started after its venue's last change and is in sync."""
        began = time.monotonic()
        client = BotClient(self.settings())
        last_ask = 0.0
        database = Database(self.database_url)
        try:
            while time.monotonic() - began < seconds:
                if self.settled(database):
                    return time.monotonic() - began
                if time.monotonic() - last_ask > 5:
                    for account in self.accounts:
                        with contextlib.suppress(ReconError):
                            client.request_reconciliation(BOT, account.name, "manual")
                    last_ask = time.monotonic()
                time.sleep(0.5)
        finally:
            database.dispose()
        raise SystemExit(f"chaos: the accounts did not settle within {seconds:g} s after the faults stopped")

    def settled(self, database: Database) -> bool:
        with database.reading() as session:
            rows = session.execute(text(
                "SELECT a.name, r.status, extract(epoch from r.started_at) FROM runs r JOIN accounts a ON "
                "a.id = r.account_id WHERE r.id IN (SELECT max(id) FROM runs WHERE NOT dry_run AND reason <> "
                "'backfill' GROUP BY account_id)")).all()  # fmt: skip
            running = session.execute(text("SELECT count(*) FROM runs WHERE status = 'running'")).scalar_one()
        latest = {name: (status, float(started)) for name, status, started in rows}
        return running == 0 and all(
            a.name in latest and latest[a.name][0] == "in_sync" and latest[a.name][1] > a.changed_at + 1
            for a in self.accounts
        )

    def verdict(self) -> dict[str, Any]:
        database = Database(self.database_url)
        try:
            with database.reading() as session:
                books = session.execute(text(
                    "SELECT a.name, l.symbol, sum(CASE WHEN l.side = 'long' THEN l.remaining ELSE -l.remaining END) "
                    "FROM lots l JOIN accounts a ON a.id = l.account_id WHERE l.remaining > 0 "
                    "GROUP BY a.name, l.symbol")).all()  # fmt: skip
                doubled = session.execute(text(
                    "SELECT count(*) FROM (SELECT account_id, fill_id FROM fills GROUP BY account_id, fill_id "
                    "HAVING count(*) > 1) d")).scalar_one()  # fmt: skip
                lots_without_fill = session.execute(text(
                    "SELECT count(*) FROM lots l WHERE NOT EXISTS (SELECT 1 FROM fills f WHERE f.account_id = "
                    "l.account_id AND f.fill_id = l.entry_fill_id)")).scalar_one()  # fmt: skip
                runs: dict[str, int] = dict(
                    session.execute(text("SELECT status, count(*) FROM runs GROUP BY status")).all()
                )
                recovered = session.execute(text(
                    "SELECT count(*) FROM runs f WHERE f.status = 'failed' AND EXISTS (SELECT 1 FROM runs s WHERE "
                    "s.account_id = f.account_id AND s.id > f.id AND s.status NOT IN ('failed', 'running'))"
                )).scalar_one()  # fmt: skip
        finally:
            database.dispose()
        held = {(name, symbol): Decimal(qty) for name, symbol, qty in books if qty}
        venue = {(a.name, s): Decimal(q) for a in self.accounts for s, (q, _) in a.held().items()}
        differences = sorted(
            f"{name} {symbol}: books {held.get((name, symbol), 0)}, venue {venue.get((name, symbol), 0)}"
            for name, symbol in set(held) | set(venue)
            if held.get((name, symbol)) != venue.get((name, symbol))
        )
        return {
            "books_equal_venue": not differences,
            "differences": differences[:10] + ([f"and {len(differences) - 10} more"] if len(differences) > 10 else []),
            "fills_doubled": int(doubled),
            "lots_without_their_fill": int(lots_without_fill),
            "runs_left_running": int(runs.get("running", 0)),
            "runs": {str(k): int(v) for k, v in sorted(runs.items())},
            "failed_runs_recovered": int(recovered),
        }

    def stop_all(self) -> None:
        self.stopping.set()
        for process in self.processes:
            process.stop()
        self.redis.stop()
        if self.postgres is not None:
            with contextlib.suppress(subprocess.SubprocessError):
                self.postgres.stop()


def run(arguments: argparse.Namespace, folder: Path) -> dict[str, Any]:
    chaos = Chaos(arguments, folder)
    began = time.monotonic()
    try:
        chaos.start_services()
        wait_until(chaos.leading, 60, "a beat sending")
        log(f"chaos: {arguments.accounts} accounts, 2 workers, 2 beats; Redis {chaos.redis.url}, "
            f"Postgres {'private' if chaos.postgres else 'given'}; logs in {folder}")  # fmt: skip
        helpers = [threading.Thread(target=t, daemon=True) for t in (chaos.venues_trade, chaos.bots_trigger,
                                                                      chaos.supervise)]  # fmt: skip
        for helper in helpers:
            helper.start()
        faults = chaos.plan()
        deadline = began + arguments.seconds
        for number, kind in enumerate(faults, 1):
            if time.monotonic() > deadline:
                raise SystemExit(f"chaos: --seconds {arguments.seconds} ran out after {number - 1} faults")
            time.sleep(arguments.pace * chaos.rng.uniform(0.5, 1.5))
            chaos.fault(kind, number, len(faults), began)
        chaos.stopping.set()
        for helper in helpers:
            helper.join(timeout=30)
        chaos.stopping.clear()
        supervisor = threading.Thread(target=chaos.supervise, daemon=True)  # beats and workers keep their restarts
        supervisor.start()
        log("chaos: faults over, venues still; waiting for every account to be reconciled in sync")
        settled_in = chaos.settle(max(30.0, deadline - time.monotonic()))
        outcome = chaos.verdict()
    finally:
        chaos.stop_all()
    counts = chaos.counts
    checks = ("fills_doubled", "lots_without_their_fill", "runs_left_running")
    return {
        "ok": outcome["books_equal_venue"] and not any(outcome[check] for check in checks),
        "kills": counts.pool_kills + counts.beat_kills,
        "pool_process_kills": counts.pool_kills,
        "pool_process_kills_running_a_task": counts.busy_kills,
        "beat_leader_kills": counts.beat_kills,
        "redis_restarts": counts.redis_restarts,
        "postgres_restarts": counts.postgres_restarts,
        "process_restarts": {p.name: p.restarts for p in chaos.processes},
        "venue_fills": counts.fills,
        "triggers": counts.triggers,
        "trigger_errors": counts.trigger_errors,
        "settled_seconds": round(settled_in, 1),
        "seconds": round(time.monotonic() - began, 1),
        **outcome,
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs: pool processes, every fourth the beat leader")
    parser.add_argument("--redis-restarts", type=int, default=2, help="restarts of the run's Redis")
    parser.add_argument("--postgres-restarts", type=int, default=2, help="restarts of the run's Postgres cluster")
    parser.add_argument("--accounts", type=int, default=3, help="sim accounts whose venues keep changing")
    parser.add_argument("--positions", type=int, default=200, help="static positions per account besides the moving")
    parser.add_argument("--pace", type=float, default=2.0, help="seconds between faults, on average")
    parser.add_argument("--seconds", type=float, default=900, help="the whole run's limit, settling included")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random choices, to repeat a run")
    parser.add_argument("--database-url", help="an existing Postgres to use (emptied) instead of a private one")
    parser.add_argument("--keep", action="store_true", help="keep the folder with the processes' logs")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    arguments = parser.parse_args(argv)
    if min(arguments.kills, arguments.redis_restarts, arguments.postgres_restarts) < 0 or arguments.accounts < 1:
        parser.error("counts must be 0 or more, and --accounts at least 1")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse(argv)
    folder = Path(tempfile.mkdtemp(prefix="recon-chaos-"))
    os.chmod(folder, 0o755)  # the private Postgres, run as its own user, reaches its folder inside
    try:
        result = run(arguments, folder)
    finally:
        if not arguments.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print_result(result, as_json=arguments.json)
    return 0 if result["ok"] else 1


def print_result(result: dict[str, Any], *, as_json: bool) -> None:
    """One JSON object, or a line a figure with the names aligned."""
    if as_json:
        print(json.dumps(result))
        return
    width = max(map(len, result), default=0)
    for key, value in result.items():
        print(f"{key:>{width}}: {value}")


if __name__ == "__main__":
    sys.exit(main())
