"""Benchmark: reconciliations through two real Celery workers on Redis and Postgres, beside a no-op task.

    .venv/bin/python bench/celery_throughput.py [--accounts 40] [--positions 50] [--drift-pct 5] [--rounds 3]
                                                [--noop-tasks 400] [--paced-load 0.5] [--workers 2]
                                                [--in-process 20] [--profile] [--strict]
                                                [--db postgresql://postgres@127.0.0.1:5432/test]
                                                [--redis redis://127.0.0.1:6379/14]

Set-up (not measured): a private Postgres schema ``bench_celery_<pid>`` migrated with
``models.database.upgrade``; a temporary directory with a fleet file of N sim accounts (bots ``bench0`` ..
``bench<N-1>``, account ``paper``, grace 0, every severity ``sync_to_broker``) and their venue state files; the
books seeded through ``workers.books.BooksClient`` (one fill per position, expected cash equal to the venue's);
a dedicated Redis database, flushed before and after; two worker subprocesses
(``celery -A workers worker --pool=prefork --concurrency=1 --queues=recon.default,recon.sim ...``) started with
``RECON_DATABASE_URL``, ``RECON_FLEET`` and ``RECON_REDIS_URL`` and waited for with ``app.control.ping``; then
a short warm-up (each worker process imports, connects and checks the schema once).

Phases, all in the same run and against the same workers:

1. ``no-op``: M ``recon.noop`` tasks sent at once to ``recon.sim``: Celery's own cost per task.
2. ``in sync``: one ``recon.reconcile(bot, "paper", "manual")`` per account, sent at once, R rounds; the venue
   equals the books, so every run ends ``in_sync``.
3. ``drift``: the same, but before each round the venue state files change so that ``--drift-pct`` % of the
   fleet's instruments differ from the books (venue holds less / more, position gone, opened at the venue,
   side flip, in turn); every run must end ``resolved`` and the books follow the venue.

Every committed run sends follow-up tasks (``recon.alerts``; ``recon.backfill`` when it estimated exit prices)
to the same queue, so the same two workers run them. After each round the benchmark waits until nothing is
queued or unacknowledged (acks are late), then reads every result stored in the round: ``wall s`` runs from
the first send to the last reconcile result collected, ``wall s, idle`` to the last task of the round done
(its ``date_done``), follow-ups included. The throughput target is judged on the latter (runs per second the
fleet can sustain, each with the work it causes) against the no-op's; the former is printed beside it.

A burst measures throughput; its latencies include the time a task waits in the queue behind the others
(with N tasks and throughput X the last one waits about N / X). Each phase then has R ``paced`` rounds (one
task per account, or M no-ops) sent open loop at ``--paced-load`` x the burst's idle rate, so the latencies
are what a trigger sees on a loaded but not saturated fleet. The latency targets are judged on the paced
rounds.

Latency, trigger to committed: the run row's ``finished_at`` (written in the run's final transaction) minus
the send time, both UTC on this machine. ``finished_at`` is the clock read before the plan is made and
applied, so it is a slight lower bound; the result's ``date_done`` (stored in Redis after the task returned,
i.e. after the commit and the publish to the bots' cache) is printed beside it as an upper bound. No-op
latencies are ``date_done`` minus the send time.

CPU: ``/proc`` is read before the first send and after idle, and the CPU time is split into the worker
process groups, the Postgres and Redis server processes, this process (sending and collecting), and the rest
of the machine; per measured task, with the machine's busy share. Linux only (empty elsewhere).

Then, in this process (``--in-process K``, one account): the pieces of the tasks' bodies called directly, K
times each, with wall and CPU time and the SQL statements, commits and pool checkouts per call:
``load_fleet`` (which ``recon.reconcile`` does on every call), the sim fetch, ``workers.orchestrator.reconcile``
in sync, ``workers.service.Service.reconcile`` (lock + run + publish, follow-ups not sent) in sync and with
drift, ``workers.follow_ups.follow_ups_of``, the bodies of ``recon.alerts`` and ``recon.backfill``. Compared with a
task's time in a worker (workers / idle rate) it splits the cost into the run itself and the rest (Celery,
Redis, the follow-ups). ``--profile`` adds a cProfile of the in-process in-sync task bodies.

Everything is dropped at the end (workers stopped with SIGTERM, then SIGKILL; Redis database flushed; schema
dropped; temporary directory removed), also on error, Ctrl-C or SIGTERM. Exit status: 0 (also when a target
is missed, unless ``--strict``), 1 when tasks failed or runs ended with an unexpected status (or a target
was missed with ``--strict``), 2 when Postgres, Redis or the workers could not be used.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import logging
import math
import os
import platform
import pstats
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import celery
import kombu
from celery import Celery
from celery.result import AsyncResult
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/celery_throughput.py` from anywhere
    sys.path.insert(0, str(ROOT))

from models.database import Database, make_engine, normalize_url, upgrade  # noqa: E402
from models.runs import Run  # noqa: E402
from workers.alerts import deliver  # noqa: E402
from workers.backfill import backfill  # noqa: E402
from workers.books import BooksClient  # noqa: E402
from workers.celery import create_app  # noqa: E402
from workers.connect import open_venue  # noqa: E402
from workers.fleet import AccountConfig, load_fleet  # noqa: E402
from workers.follow_ups import follow_ups_of  # noqa: E402
from workers.pipeline import run_reconciliation as reconcile  # noqa: E402
from workers.schedule import QUEUES, RECONCILE_TASK  # noqa: E402
from workers.service import Service  # noqa: E402
from workers.settings import Settings  # noqa: E402

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
NOOP_TASK = "recon.noop"
QUEUE = "recon.sim"
ACCOUNT = "paper"
CURRENCY, CASH = "USDT", "1000000"
PING_SECONDS = 30.0
STOP_SECONDS = 15.0

TARGET_RATIO = 0.30  # in-sync runs/s >= 30 % of the no-op tasks/s
TARGET_P50_MS = 50.0
TARGET_P99_MS = 250.0

LESS, MORE, GONE, OPENED, FLIP = "venue holds less", "venue holds more", "gone at venue", "opened at venue", "flip"
DRIFT_KINDS = (LESS, MORE, GONE, OPENED, FLIP)

Key = tuple[str, str, int]  # (category, symbol, leg)
T = TypeVar("T")


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


# --- the venue each account sees, and the books that follow it ---------------------------------------------------


@dataclass
class SimAccount:
    """One account's venue state (what its sim state file says); after a sync_to_broker run the books equal it."""

    bot: str
    state_file: Path
    positions: dict[Key, tuple[Decimal, Decimal]]  # key -> (signed qty, average price)
    marks: dict[Key, Decimal] = field(default_factory=dict)
    opened: int = 0

    @classmethod
    def create(cls, bot: str, state_file: Path, positions: int, rng: random.Random) -> SimAccount:
        held = {}
        for i in range(positions):
            qty = Decimal(rng.randint(1, 5000)) / 10 * (1 if rng.random() < 0.6 else -1)
            held[("linear", f"B{i:04d}USDT", 0)] = (qty, Decimal(rng.randint(100, 10_000_000)) / 100)
        return cls(bot, state_file, held)

    def write(self) -> None:
        rows = []
        for (category, symbol, leg), (qty, price) in self.positions.items():
            rows.append(
                {
                    "symbol": symbol,
                    "category": category,
                    "leg": leg,
                    "side": "long" if qty > 0 else "short",
                    "qty": str(abs(qty)),
                    "avg_price": str(price),
                    "mark_price": str(price * Decimal("1.01")),
                }
            )
        marks = [{"symbol": s, "category": c, "leg": g, "price": str(p)} for (c, s, g), p in self.marks.items()]
        state = {
            "positions": rows,
            "cash": {"currency": CURRENCY, "balance": CASH},
            "open_orders": [],
            "fills": [],
            "marks": marks,
        }
        self.state_file.write_text(json.dumps(state), encoding="utf-8")

    def drift(self, count: int, kinds: Iterator[str], rng: random.Random) -> Counter[str]:
        """Change ``count`` instruments of the venue state (not the books) and rewrite the state file."""
        self.marks = {}
        done: Counter[str] = Counter()
        for key in rng.sample(sorted(self.positions), min(count, len(self.positions))):
            kind = next(kinds)
            qty, price = self.positions[key]
            if kind == LESS:
                self.positions[key] = (qty * Decimal("0.6"), price)
            elif kind == MORE:
                self.positions[key] = (qty * Decimal("1.5"), price)
            elif kind == GONE:
                del self.positions[key]
                self.marks[key] = price * Decimal("1.01")  # the price the books close at
            elif kind == OPENED:
                self.opened += 1
                new = ("linear", f"N{self.opened:04d}USDT", 0)
                self.positions[new] = (Decimal(rng.randint(1, 5000)) / 10, Decimal(rng.randint(100, 100_000)) / 100)
            else:
                self.positions[key] = (-qty * Decimal("0.8"), price)
            done[kind] += 1
        self.write()
        return done


def drift_counts(accounts: int, positions: int, pct: Decimal) -> list[int]:
    """Instruments to change per account so the fleet as a whole drifts by ``pct`` % (2 and 3 of 50 for 5 %)."""
    share = Decimal(positions) * pct / 100
    return [int(share * (i + 1)) - int(share * i) for i in range(accounts)]


def cycle(items: Sequence[str]) -> Iterator[str]:
    while True:
        yield from items


def fleet_toml(bots: Sequence[str]) -> str:
    lines = [
        "# Written by bench/celery_throughput.py: sim accounts whose books follow the venue at every severity.",
        "[defaults]",
        "interval_seconds = 300",
        "grace_seconds = 0",
        "[defaults.policy]",
        'minor = "sync_to_broker"',
        'moderate = "sync_to_broker"',
        'critical = "sync_to_broker"',
        "[defaults.policy.by_kind]",
        'missing_in_ledger = "sync_to_broker"',
        'missing_at_venue = "sync_to_broker"',
    ]
    for bot in bots:
        lines += ["", f"[bots.{bot}.accounts.{ACCOUNT}]", 'venue = "sim"', f'state_file = "venues/{bot}.json"']
    return "\n".join(lines) + "\n"


def seed_books(client: BooksClient, account: SimAccount, start: datetime) -> None:
    """The bot's books: one fill per position (hence one lot), and the venue's cash as expected cash."""
    for i, ((category, symbol, leg), (qty, price)) in enumerate(account.positions.items()):
        client.record_fill(
            account.bot,
            ACCOUNT,
            symbol=symbol,
            category=category,
            leg=leg,
            side="buy" if qty > 0 else "sell",
            qty=abs(qty),
            price=price,
            fill_id=f"seed-{account.bot}-{i:04d}",
            time=start + timedelta(seconds=i),
        )
    client.set_expected_cash(account.bot, ACCOUNT, CASH, CURRENCY)


# --- Postgres and Redis -----------------------------------------------------------------------------------------


class Schema:
    """A private schema in the benchmark's Postgres, dropped by ``drop``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.name = f"bench_celery_{os.getpid()}"
        self.admin = make_engine(base_url)
        self.created = False
        self.url = ""

    def create(self) -> str:
        with self.admin.begin() as connection:
            self.created = True  # connected: from here on a half-made schema is dropped too
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'))
            connection.execute(text(f'CREATE SCHEMA "{self.name}"'))
        url = make_url(self.base_url).update_query_dict({"options": f"-csearch_path={self.name}"})
        self.url = url.render_as_string(hide_password=False)
        return self.url

    def server_version(self) -> str:
        with self.admin.connect() as connection:
            return str(connection.execute(text("SHOW server_version")).scalar_one())

    def drop(self) -> None:
        try:
            if self.created:
                with self.admin.begin() as connection:
                    connection.execute(text(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'))
                self.created = False
        except Exception as error:
            print(f"warning: could not drop schema {self.name}: {error}", file=sys.stderr)
        finally:
            self.admin.dispose()


# --- the worker processes ---------------------------------------------------------------------------------------


class Workers:
    """``count`` worker subprocesses, each in its own process group so it can be stopped with its pool child."""

    def __init__(self, count: int, env: dict[str, str], folder: Path) -> None:
        self.count = count
        self.env = env
        self.folder = folder
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def names(self) -> list[str]:
        return [f"bench{i}" for i in range(self.count)]

    def start(self) -> None:
        for name in self.names():
            log = self.folder / f"{name}.log"
            self.logs.append(log)
            command = [
                sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool=prefork", "--concurrency=1",
                "--queues=recon.default,recon.sim", "--without-gossip", "--without-mingle", "-n", f"{name}@%h",
                "--loglevel=WARNING",
            ]  # fmt: skip
            with log.open("wb") as out:
                self.processes.append(
                    subprocess.Popen(
                        command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )

    def wait_ready(self, app: Celery, timeout: float) -> None:
        """Until every worker answers a ping; a worker that exits or stays silent fails with its log."""
        deadline = time.monotonic() + timeout
        wanted = set(self.names())
        answered: set[str] = set()
        while time.monotonic() < deadline:
            for process, log in zip(self.processes, self.logs, strict=True):
                if process.poll() is not None:
                    raise WorkerTrouble(f"worker exited with status {process.returncode}:\n{tail(log)}")
            replies = app.control.ping(timeout=1.0) or []
            answered = {name.split("@", 1)[0] for reply in replies for name in reply} & wanted
            if answered == wanted:
                return
        silent = sorted(wanted - answered)
        logs = "\n".join(f"--- {log.name}\n{tail(log)}" for log in self.logs)
        raise WorkerTrouble(f"workers {', '.join(silent)} did not answer a ping within {timeout:g} s\n{logs}")

    def stop(self) -> None:
        """SIGTERM (warm shutdown) to each worker's process group, then SIGKILL to what is left after a timeout."""
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"warning: worker {process.pid} ignored SIGTERM; killing it", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the pool child too, if it outlived its parent
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)

    def log_problems(self) -> list[str]:
        """Lines of the workers' logs that say something went wrong."""
        lines = []
        for log in self.logs:
            for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
                if any(word in line for word in ("ERROR", "CRITICAL", "Traceback")):
                    lines.append(f"{log.stem}: {line}")
        return lines


class WorkerTrouble(Exception):
    """The workers could not be started or stopped answering."""


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- CPU accounting -------------------------------------------------------------------------------------------


CLOCK_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
COMPONENTS = ("workers", "postgres", "redis", "bench client", "other")


def cpu_sample(worker_pids: set[int]) -> dict[str, float]:
    """CPU seconds used so far, by component: the worker process groups, Postgres and Redis server processes,
    this process, and the machine's total busy time (``other`` is the rest). Linux only; empty elsewhere."""
    totals = dict.fromkeys(COMPONENTS, 0.0)
    try:
        fields = Path("/proc/stat").read_text(encoding="utf-8").splitlines()[0].split()[1:]
    except OSError:
        return {}
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    busy = (user + nice + system + irq + softirq + steal) / CLOCK_TICK
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text(encoding="utf-8")
        except OSError:
            continue  # gone meanwhile
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2 :].split()
        pid, group = int(entry.name), int(rest[2])
        used = (int(rest[11]) + int(rest[12])) / CLOCK_TICK
        if pid in worker_pids or group in worker_pids:
            totals["workers"] += used
        elif comm == "postgres":
            totals["postgres"] += used
        elif comm.startswith("redis-server"):
            totals["redis"] += used
        elif pid == me:
            totals["bench client"] += used
    totals["other"] = busy - sum(totals.values())  # the rest of the machine (and exited processes)
    totals["total"] = busy
    return totals


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in after if name in before}


# --- sending and measuring --------------------------------------------------------------------------------------


@dataclass
class Sent:
    result: AsyncResult
    at: datetime  # UTC, just before the send
    mono: float


@dataclass
class Row:
    """One line of the report: the burst or the paced rounds of one phase."""

    phase: str
    mode: str  # "burst" or "paced"
    tasks: int = 0
    follow_ups: int = 0  # tasks the measured ones sent (alerts, backfill), run by the same workers
    wall: float = 0.0  # first send -> last result collected
    wall_idle: float = 0.0  # first send -> the last task of the round (follow-ups included) done
    committed_ms: list[float] = field(default_factory=list)  # run finished_at - send (reconcile) or date_done - send
    done_ms: list[float] = field(default_factory=list)  # result date_done - send
    statuses: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    offered: float | None = None  # paced rounds: the rate asked for
    cpu: Counter[str] = field(default_factory=Counter)  # CPU seconds by component, first send -> idle
    cpu_wall: float = 0.0  # the wall time those CPU seconds were sampled over

    @property
    def per_second(self) -> float:
        return self.tasks / self.wall if self.wall else 0.0

    @property
    def sustained(self) -> float:
        return self.tasks / self.wall_idle if self.wall_idle else 0.0

    def add(self, other: Row) -> None:
        self.tasks += other.tasks
        self.follow_ups += other.follow_ups
        self.wall += other.wall
        self.wall_idle += other.wall_idle
        self.committed_ms += other.committed_ms
        self.done_ms += other.done_ms
        self.statuses.update(other.statuses)
        self.failures += other.failures
        self.offered = other.offered
        self.cpu.update(other.cpu)
        self.cpu_wall += other.cpu_wall


class Results:
    """The result keys in the benchmark's Redis database: which tasks finished, and when the last one did."""

    PATTERN = "celery-task-meta-*"

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.seen: set[bytes] = set(redis.scan_iter(self.PATTERN, count=1000))

    def new(self) -> list[dict[str, Any]]:
        """The results stored since the last call."""
        keys = [k for k in self.redis.scan_iter(self.PATTERN, count=1000) if k not in self.seen]
        self.seen.update(keys)
        values = self.redis.mget(keys) if keys else []
        return [json.loads(v) for v in values if v is not None]

    def wait_idle(self, timeout: float) -> None:
        """Until no message is queued or delivered-but-unacknowledged (acks are late: after the task returned)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pipe = self.redis.pipeline(transaction=False)
            for queue in QUEUES:
                pipe.llen(queue)
            pipe.hlen("unacked")
            if not any(pipe.execute()):
                return
            time.sleep(0.005)
        raise WorkerTrouble(f"the workers were still busy {timeout:g} s after the last result")


@dataclass
class Sender:
    """Sends tasks to the workers and measures a round: results, latencies, follow-ups, CPU."""

    app: Celery
    database: Database
    results: Results
    worker_pids: set[int]
    timeout: float

    def send(self, name: str, args: Sequence[Any]) -> Sent:
        at, mono = datetime.now(UTC), time.perf_counter()
        return Sent(self.app.send_task(name, args=list(args), queue=QUEUE), at, mono)

    def send_all(self, name: str, arglists: Sequence[Sequence[Any]], rate: float | None) -> list[Sent]:
        """At once, or open loop at ``rate`` (the i-th at start + i / rate, whatever became of the others)."""
        sent: list[Sent] = []
        start = time.perf_counter()
        for i, args in enumerate(arglists):
            if rate:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            sent.append(self.send(name, args))
        return sent

    def collect(self, sent: list[Sent]) -> tuple[float, list[Any]]:
        """Every result, in send order; returns the wall time from the first send, and the values."""
        values = []
        deadline = time.monotonic() + self.timeout
        for item in sent:
            try:
                values.append(item.result.get(timeout=max(0.1, deadline - time.monotonic()), propagate=False))
            except Exception as error:  # a timeout: recorded, the others are still collected
                values.append(error)
        return time.perf_counter() - sent[0].mono, values

    def round(self, row: Row, name: str, arglists: Sequence[Sequence[Any]], rate: float | None) -> list[Any]:
        """Send, collect, wait until the follow-ups are done too; fills the row's counts, walls and CPU."""
        cpu_started, cpu_before = time.perf_counter(), cpu_sample(self.worker_pids)
        sent = self.send_all(name, arglists, rate)
        row.wall, values = self.collect(sent)
        self.results.wait_idle(self.timeout)
        row.cpu.update(cpu_delta(cpu_before, cpu_sample(self.worker_pids)))
        row.cpu_wall = time.perf_counter() - cpu_started
        finished = [parse_time(r["date_done"]) for r in self.results.new() if r.get("date_done")]
        row.tasks, row.offered = len(sent), rate
        row.follow_ups = max(0, len(finished) - len(sent))
        last = max(finished, default=None)
        row.wall_idle = ms(last, sent[0].at) / 1000 if last else row.wall
        for item, value in zip(sent, values, strict=True):
            done = date_done(item.result)
            if done is not None:
                row.done_ms.append(ms(done, item.at))
            if not item.result.successful():
                row.failures.append(f"{name} {item.result.id}: {item.result.state} {value!r}")
        return list(zip(sent, values, strict=True))

    def noop(self, row: Row, count: int, rate: float | None = None) -> Row:
        self.round(row, NOOP_TASK, [[] for _ in range(count)], rate)
        row.committed_ms = list(row.done_ms)
        row.statuses["ok"] = count - len(row.failures)
        return row

    def reconcile(self, row: Row, bots: Sequence[str], expected: str, rate: float | None = None) -> Row:
        run_of: dict[int, Sent] = {}
        for item, value in self.round(row, RECONCILE_TASK, [[bot, ACCOUNT, "manual"] for bot in bots], rate):
            if not isinstance(value, dict):
                continue
            runs = value.get("runs") or []
            if value.get("deferred_to_holder") or len(runs) != 1:
                row.failures.append(f"{value.get('bot')}: expected one run, got {value!r}")
            if runs:
                run_of[runs[-1]["run_id"]] = item
        with self.database.sessions() as session:
            stored = session.execute(select(Run.id, Run.status, Run.finished_at).where(Run.id.in_(list(run_of))))
            for run_id, status, finished_at in stored:
                row.statuses[status] += 1
                if status != expected:
                    row.failures.append(f"run {run_id}: {status}, expected {expected}")
                if finished_at is not None:
                    row.committed_ms.append(ms(finished_at, run_of[run_id].at))
        return row


def parse_time(value: str | datetime) -> datetime:
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def date_done(result: AsyncResult) -> datetime | None:
    value = result.date_done
    return parse_time(value) if value is not None else None


def ms(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() * 1000


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 120 samples is the 119th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


# --- the phases -------------------------------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    sender: Sender
    accounts: list[SimAccount]
    rows: list[Row] = field(default_factory=list)
    drifted: Counter[str] = field(default_factory=Counter)
    drift_rounds: int = 0

    @property
    def bots(self) -> list[str]:
        return [a.bot for a in self.accounts]

    @property
    def noop_rate(self) -> float:
        return next((r.sustained for r in self.rows if (r.phase, r.mode) == ("no-op", "burst")), 0.0)

    def warm_up(self) -> None:
        """Each worker process imports what the tasks need, connects, checks the schema (not measured)."""
        count = 2 * self.args.workers
        self.sender.noop(Row("warm-up", "burst"), 4 * count)
        row = self.sender.reconcile(Row("warm-up", "burst"), self.bots[:count], "in_sync")
        if row.failures:
            raise WorkerTrouble(f"warm-up reconciliations failed: {row.failures[0]}")

    def noop_phase(self) -> None:
        count = self.args.noop_tasks
        progress(f"no-op: {count} tasks at once")
        burst = self.sender.noop(Row("no-op", "burst"), count)
        self.rows.append(burst)
        rate = self.args.paced_load * burst.sustained
        progress(f"no-op: {count} tasks paced at {rate:.0f}/s")
        self.rows.append(self.sender.noop(Row("no-op", "paced"), count, rate))

    def reconcile_phase(self, phase: str, expected: str, before_round: Callable[[], None]) -> None:
        rounds = self.args.rounds
        burst = Row(phase, "burst")
        for number in range(rounds):
            before_round()
            progress(f"{phase}: burst {number + 1}/{rounds}, {len(self.bots)} runs at once")
            burst.add(self.sender.reconcile(Row(phase, "burst"), self.bots, expected))
        self.rows.append(burst)
        rate = self.args.paced_load * burst.sustained
        paced = Row(phase, "paced")
        for number in range(rounds):
            before_round()
            progress(f"{phase}: paced {number + 1}/{rounds}, {len(self.bots)} runs at {rate:.1f}/s")
            paced.add(self.sender.reconcile(Row(phase, "paced"), self.bots, expected, rate))
        self.rows.append(paced)

    def drift_all(self, rng: random.Random, kinds: Iterator[str]) -> None:
        counts = drift_counts(len(self.accounts), self.args.positions, self.args.drift_pct)
        for account, count in zip(self.accounts, counts, strict=True):
            self.drifted.update(account.drift(count, kinds, rng))
        self.drift_rounds += 1


# --- in-process comparison --------------------------------------------------------------------------------------


class SqlCount:
    """Statements, commits and pool checkouts on one engine."""

    def __init__(self, database: Database) -> None:
        self.counts: Counter[str] = Counter()
        event.listen(database.engine, "before_cursor_execute", lambda *_: self.counts.update(["statements"]))
        event.listen(database.engine, "commit", lambda *_: self.counts.update(["commits"]))
        event.listen(database.engine.pool, "checkout", lambda *_: self.counts.update(["checkouts"]))


@dataclass
class Piece:
    """One piece of a task body timed in this process: milliseconds and database round trips per call."""

    samples: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    calls: int = 0

    def line(self, name: str) -> str:
        per = {k: v / self.calls for k, v in self.counts.items()} if self.calls else {}
        return (
            f"  {name:<58} {statistics.median(self.samples):6.2f} ms {statistics.median(self.cpu):6.2f} ms CPU  "
            f"{per.get('statements', 0):5.1f} statements  "
            f"{per.get('commits', 0):4.1f} commits  {per.get('checkouts', 0):4.1f} checkouts"
        )


@dataclass
class InProcess:
    """The pieces of the tasks' bodies, called directly in this process on one account."""

    pieces: dict[str, Piece] = field(default_factory=dict)
    profile: str = ""

    def time(self, name: str, sql: SqlCount, function: Callable[[], T]) -> T:
        piece = self.pieces.setdefault(name, Piece())
        before = Counter(sql.counts)
        started, cpu = time.perf_counter(), time.process_time()
        value = function()
        piece.samples.append((time.perf_counter() - started) * 1000)
        piece.cpu.append((time.process_time() - cpu) * 1000)
        piece.counts.update(sql.counts - before)
        piece.calls += 1
        return value


def in_process(bench: Bench, settings: Settings, redis: Redis, fleet_path: Path, repeat: int) -> InProcess:
    """Time what ``recon.reconcile`` and its follow-ups do, piece by piece, with statements counted."""
    out = InProcess()
    quiet = logging.getLogger("recon.alerts")  # the alerts go to the log; here, not onto the report
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())
    database = bench.sender.database
    sql = SqlCount(database)
    account = bench.accounts[0]
    config: AccountConfig = load_fleet(fleet_path).account(account.bot, ACCOUNT)
    count = max(drift_counts(len(bench.accounts), bench.args.positions, bench.args.drift_pct))
    rng, kinds = random.Random(7), cycle(DRIFT_KINDS)
    now = partial(datetime.now, UTC)
    service = Service(database, settings, redis, dispatch=lambda *_: None)  # the follow-ups are measured apart
    for _ in range(repeat):
        out.time(
            f"load_fleet ({len(bench.accounts)} accounts; every task does it)", sql, partial(load_fleet, fleet_path)
        )
        out.time("open_venue + fetch_snapshot (sim file)", sql, lambda: open_venue(config).fetch_snapshot(now()))
        out.time("run_reconciliation, in sync", sql, partial(reconcile, database, config, reason="manual"))
        exclusive = partial(service.reconcile, config, "manual")
        result = out.time("serve, in sync (lock + run + publish)", sql, exclusive).results[-1]
        out.time("  follow_ups_of (which follow-up tasks)", sql, partial(follow_ups_of, result))
        alerts = partial(deliver, database, settings, now(), result.run_id)
        out.time("  recon.alerts body (deliver), in sync", sql, alerts)
    for _ in range(repeat):
        account.drift(count, kinds, rng)
        exclusive = partial(service.reconcile, config, "manual")
        result = out.time(f"serve, {count} instruments drifted", sql, exclusive).results[-1]
        if result.status != "resolved":
            raise WorkerTrouble(f"in-process drift run ended {result.status}: {result.error}")
        alerts = partial(deliver, database, settings, now(), result.run_id)
        out.time("  recon.alerts body (deliver), drift", sql, alerts)
        out.time("  recon.backfill body (backfill), drift", sql, partial(backfill, database, config))
    if bench.args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(repeat):
            fleet = load_fleet(fleet_path)  # what recon.reconcile does on every call
            outcome = service.reconcile(fleet.account(account.bot, ACCOUNT), "manual")
            for _name in follow_ups_of(outcome.results[-1]):
                pass
        profiler.disable()
        buffer = io.StringIO()
        stats = pstats.Stats(profiler, stream=buffer).strip_dirs()
        buffer.write(f"--- cProfile of {repeat} in-process in-sync task bodies (recon.reconcile)\n")
        stats.sort_stats("cumulative").print_stats(35)
        out.profile = buffer.getvalue()
    return out


# --- report -----------------------------------------------------------------------------------------------------


def machine(schema: Schema) -> list[str]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return [
        f"machine    : {platform.platform()}, {model or platform.machine()}, os.cpu_count() = {os.cpu_count()}",
        f"python     : {platform.python_implementation()} {platform.python_version()}, "
        f"celery {celery.__version__}, kombu {kombu.__version__}",
        f"postgres   : {schema.server_version()}",
    ]


def render(head: Sequence[str], cells: list[Sequence[str]], left: set[int]) -> str:
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(w) if i in left else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    return "\n".join([line(head), "  ".join("-" * w for w in widths), *(line(c) for c in cells)])


def table(rows: list[Row], noop_rate: float) -> str:
    head = ("phase", "mode", "tasks", "follow-ups", "wall s", "per second", "ratio to no-op", "wall s, idle",
            "per second, idle", "ratio, idle", "p50 ms", "p99 ms", "p50/p99 ms (result)", "statuses")  # fmt: skip
    noop_first = next((r.per_second for r in rows if (r.phase, r.mode) == ("no-op", "burst")), 0.0)
    cells = []
    for row in rows:
        burst = row.mode == "burst"
        cells.append(
            (
                row.phase,
                row.mode + (f" {row.offered:.0f}/s" if row.offered else ""),
                f"{row.tasks}",
                f"{row.follow_ups}",
                f"{row.wall:.2f}",
                f"{row.per_second:.1f}",
                f"{row.per_second / noop_first:.1%}" if burst and noop_first else "-",
                f"{row.wall_idle:.2f}",
                f"{row.sustained:.1f}",
                f"{row.sustained / noop_rate:.1%}" if burst and noop_rate else "-",
                f"{percentile(row.committed_ms, 50):.1f}",
                f"{percentile(row.committed_ms, 99):.1f}",
                f"{percentile(row.done_ms, 50):.1f}/{percentile(row.done_ms, 99):.1f}",
                ", ".join(f"{k} {v}" for k, v in sorted(row.statuses.items())),
            )
        )
    return render(head, cells, {0, 1, len(head) - 1})


def cpu_table(rows: list[Row]) -> str:
    head = ("phase", "mode", *(f"{c} ms" for c in COMPONENTS), "total ms", "machine busy")
    cells = []
    for row in rows:
        if not row.cpu or not row.tasks:
            continue
        per_task = [f"{row.cpu[c] / row.tasks * 1000:.1f}" for c in COMPONENTS]
        busy = row.cpu["total"] / (row.cpu_wall * (os.cpu_count() or 1)) if row.cpu_wall else 0.0
        cells.append((row.phase, row.mode, *per_task, f"{row.cpu['total'] / row.tasks * 1000:.1f}", f"{busy:.0%}"))
    return render(head, cells, {0, 1})


def verdicts(rows: list[Row], noop_rate: float) -> tuple[list[str], list[str]]:
    """One line per target (met / missed, with the numbers), and the lines of the targets missed."""
    found = {(r.phase, r.mode): r for r in rows}
    noop = found.get(("no-op", "burst"))
    lines: list[str] = []
    missed: list[str] = []

    def judge(ok: bool, text_: str) -> None:
        lines.append(f"{'met   ' if ok else 'MISSED'}  {text_}")
        if not ok:
            missed.append(text_)

    in_sync = found.get(("in sync", "burst"))
    if in_sync and noop and noop_rate:
        ratio = in_sync.sustained / noop_rate
        judge(
            ratio >= TARGET_RATIO,
            f"in-sync throughput {in_sync.sustained:.1f} runs/s with their follow-ups = {ratio:.1%} of the no-op's "
            f"{noop_rate:.1f} tasks/s (target >= {TARGET_RATIO:.0%}); to the last reconcile result only: "
            f"{in_sync.per_second:.1f} runs/s = {in_sync.per_second / noop.per_second:.1%}",
        )
    for phase in ("in sync", "drift"):
        for mode in ("paced", "burst"):
            row = found.get((phase, mode))
            if row is None:
                continue
            p50, p99 = percentile(row.committed_ms, 50), percentile(row.committed_ms, 99)
            upper50, upper99 = percentile(row.done_ms, 50), percentile(row.done_ms, 99)
            numbers = (
                f"latency {phase}, {mode}: p50 {p50:.1f} ms (target <= {TARGET_P50_MS:g}), p99 {p99:.1f} ms "
                f"(target <= {TARGET_P99_MS:g}); result stored: p50 {upper50:.1f}, p99 {upper99:.1f}"
            )
            if mode == "paced":
                judge(p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS, numbers)
            else:
                lines.append(f"info    {numbers} (burst: queueing included, not judged)")
    return lines, missed


def runs_recorded(database: Database) -> str:
    """Every run in the schema by reason and status (follow-up backfills included), and the failed ones' errors."""
    with database.sessions() as session:
        counts = session.execute(
            select(Run.reason, Run.status, func.count()).group_by(Run.reason, Run.status).order_by(Run.reason)
        ).all()
        errors = session.execute(
            select(Run.reason, Run.error, func.count()).where(Run.status == "failed").group_by(Run.reason, Run.error)
        ).all()
    lines = ["runs recorded: " + ", ".join(f"{reason} {status} {count}" for reason, status, count in counts)]
    lines += [f"  failed {reason} x{count}: {error}" for reason, error, count in errors]
    return "\n".join(lines) + "\n"


def report(args: argparse.Namespace, schema: Schema, bench: Bench, inproc: InProcess | None) -> None:
    total = args.accounts * args.positions
    per_round = sum(drift_counts(args.accounts, args.positions, args.drift_pct))
    print("\n".join(machine(schema)))
    print(
        f"scenario   : {args.accounts} sim accounts x {args.positions} positions, {args.workers} workers "
        f"(prefork, concurrency 1) on Redis and Postgres; {args.noop_tasks} no-ops at once, then paced;\n"
        f"             per reconcile phase {args.rounds} rounds of {args.accounts} runs at once, then {args.rounds} "
        f"paced at {args.paced_load:g} x the burst's idle rate;\n"
        f"             drift: {per_round} of {total} instruments ({Decimal(per_round * 100) / total:.1f} %) per round, "
        f"{dict(bench.drifted)} over {bench.drift_rounds} rounds"
    )
    print(
        "columns    : wall s = first send -> last result collected; wall s, idle = first send -> last task done, "
        "follow-ups (recon.alerts, recon.backfill) included;\n"
        "             p50/p99 = run finished_at (no-op: result date_done) minus send; (result) = result date_done "
        "minus send, after commit and publish"
    )
    print()
    print(table(bench.rows, bench.noop_rate))
    print()
    print("CPU per measured task, from the first send until idle (follow-ups included), by process:")
    print(cpu_table(bench.rows))
    print()
    if inproc:
        print(
            f"in process, one account (median of {args.in_process}: wall, this process's CPU; statements, commits "
            "and pool checkouts per call):"
        )
        for name, piece in inproc.pieces.items():
            print(piece.line(name))
        print(f"per task in a worker ({args.workers} workers / idle rate; follow-ups included):")
        for row in bench.rows:
            if row.mode == "burst":
                print(f"  {row.phase:<58} {args.workers / row.sustained * 1000:7.2f} ms")
        print()
        if inproc.profile:
            print(inproc.profile)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--accounts", type=int, default=40, help="sim accounts in the fleet (default 40)")
    add("--positions", type=int, default=50, help="open positions per account (default 50)")
    add("--drift-pct", type=Decimal, default=Decimal(5), help="%% of the fleet's instruments drifted per round (5)")
    add("--rounds", type=int, default=3, help="burst rounds, and paced rounds, per reconcile phase (default 3)")
    add("--noop-tasks", type=int, default=400, help="no-op tasks per no-op round (default 400)")
    add(
        "--paced-load",
        type=float,
        default=0.5,
        help="paced rounds send at this fraction of the burst's idle rate (0.5)",
    )
    add("--workers", type=int, default=2, help="worker processes (default 2, as the issue asks)")
    add("--in-process", type=int, default=20, help="repeats of each in-process timing (default 20; 0: none)")
    add("--profile", action="store_true", help="also cProfile the in-process task bodies")
    add("--timeout", type=float, default=120.0, help="seconds to wait for the results of one round (default 120)")
    add("--strict", action="store_true", help="exit 1 when a target is missed")
    add(
        "--db",
        default=os.environ.get("RECON_BENCH_DATABASE_URL", DEFAULT_DB),
        help=f"Postgres URL; a private schema is created in it (default {DEFAULT_DB} or RECON_BENCH_DATABASE_URL)",
    )
    add(
        "--redis",
        default=os.environ.get("RECON_BENCH_REDIS_URL", DEFAULT_REDIS),
        help=f"Redis URL of a database the benchmark may flush (default {DEFAULT_REDIS} or RECON_BENCH_REDIS_URL)",
    )
    args = parser.parse_args(argv)
    if min(args.accounts, args.positions, args.rounds, args.noop_tasks, args.workers) < 1:
        parser.error("--accounts, --positions, --rounds, --noop-tasks and --workers must be positive")
    if not 0 < args.paced_load <= 1:
        parser.error("--paced-load must be in (0, 1]")
    if not Decimal(0) < args.drift_pct <= Decimal(100):
        parser.error("--drift-pct must be in (0, 100]")
    return args


def raise_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def prepare(
    args: argparse.Namespace, schema: Schema, folder: Path, cleanup: list[Callable[[], None]]
) -> tuple[Database, list[SimAccount], Path]:
    """The migrated schema, the fleet file and state files, the seeded books (not measured)."""
    url = schema.create()
    progress(f"schema {schema.name}: migrating")
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    database = Database(url)
    cleanup.append(database.dispose)

    rng = random.Random(20261121)
    (folder / "venues").mkdir()
    bots = [f"bench{i}" for i in range(args.accounts)]
    accounts = [SimAccount.create(b, folder / "venues" / f"{b}.json", args.positions, rng) for b in bots]
    for account in accounts:
        account.write()
    fleet_path = folder / "fleet.toml"
    fleet_path.write_text(fleet_toml(bots), encoding="utf-8")
    progress(f"seeding {args.accounts} accounts x {args.positions} positions through BooksClient")
    started = time.perf_counter()
    client = BooksClient(database, fleet=load_fleet(fleet_path))
    seeded_at = datetime.now(UTC) - timedelta(days=1)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda a: seed_books(client, a, seeded_at), accounts))
    progress(f"seeded in {time.perf_counter() - started:.1f} s")
    return database, accounts, fleet_path


def run(args: argparse.Namespace, schema: Schema, redis: Redis, folder: Path, cleanup: list[Callable[[], None]]) -> int:
    database, accounts, fleet_path = prepare(args, schema, folder, cleanup)
    url = schema.url
    settings = Settings(database_url=url, fleet=str(fleet_path), redis_url=args.redis)
    app = create_app(settings)
    cleanup.append(app.close)
    env = {
        **os.environ,
        "RECON_DATABASE_URL": url,
        "RECON_FLEET": str(fleet_path),
        "RECON_REDIS_URL": args.redis,
        "PYTHONPATH": str(ROOT),
    }
    workers = Workers(args.workers, env, folder)
    cleanup.append(workers.stop)
    progress(f"starting {args.workers} workers")
    workers.start()
    workers.wait_ready(app, PING_SECONDS)
    sender = Sender(app, database, Results(redis), {p.pid for p in workers.processes}, args.timeout)
    bench = Bench(args, sender, accounts)
    progress("warm-up")
    bench.warm_up()

    bench.noop_phase()
    bench.reconcile_phase("in sync", "in_sync", lambda: None)
    drift_rng, kinds = random.Random(11), cycle(DRIFT_KINDS)
    bench.reconcile_phase("drift", "resolved", lambda: bench.drift_all(drift_rng, kinds))
    problems = workers.log_problems()

    inproc = None
    if args.in_process:
        progress(f"in-process timings ({args.in_process} repeats)")
        inproc = in_process(bench, settings, redis, fleet_path, args.in_process)

    report(args, schema, bench, inproc)
    print(runs_recorded(database))
    lines, missed = verdicts(bench.rows, bench.noop_rate)
    print("\n".join(lines))
    failures = [f"{r.phase} {r.mode}: {f}" for r in bench.rows for f in r.failures] + problems
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures[:20]), file=sys.stderr)
        return 1
    return 1 if args.strict and missed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = normalize_url(args.db)
    if make_url(base).get_backend_name() != "postgresql":
        print("this benchmark needs Postgres (--db postgresql://...)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, raise_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background (SIG_IGN)
    schema = Schema(base)
    redis = Redis.from_url(args.redis, socket_timeout=10)
    cleanup: list[Callable[[], None]] = []
    try:
        keys = redis.dbsize()
        if keys:
            progress(f"flushing {keys} keys from {args.redis}")
        redis.flushdb()
        with tempfile.TemporaryDirectory(prefix="recon-celery-bench-") as folder:
            try:
                return run(args, schema, redis, Path(folder), cleanup)
            finally:
                for step in reversed(cleanup):  # workers first, then the app and the database
                    try:
                        step()
                    except Exception as error:
                        print(f"warning: clean-up step failed: {error}", file=sys.stderr)
    except OperationalError as error:
        print(f"Postgres is not usable at {make_url(base).render_as_string()}: {error.orig}", file=sys.stderr)
        return 2
    except RedisError as error:
        print(f"Redis is not usable at {args.redis}: {error}", file=sys.stderr)
        return 2
    except WorkerTrouble as error:
        print(f"the workers could not be used: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        with contextlib.suppress(RedisError):
            redis.flushdb()
        redis.close()
        schema.drop()


if __name__ == "__main__":
    sys.exit(main())
