"""Benchmark: one reconciliation of an account holding N open positions, against a naive per-row baseline.

    .venv/bin/python bench/reconcile_10k.py [--positions 10000] [--drift-pct 5] [--small-positions 1000]
                                            [--repeat 1] [--venue-history 200] [--skip-naive] [--profile]
                                            [--gc normal|freeze|off] [--lots-index] [--strict]
                                            [--db postgresql://postgres@127.0.0.1:5432/test]

For every size (``--positions`` and ``--small-positions``) and implementation it creates a private Postgres
schema (``bench_<pid>_<n>``), runs the Alembic migrations there, seeds the books (one bot fill, hence one lot,
per instrument, through ``models.write_fills``; not measured), writes a sim venue state file in which
``--drift-pct`` % of the instruments differ, and measures ONE reconciliation: wall time, and through a
``before_cursor_execute`` listener the SQL statements executed (an executemany, or an INSERT that SQLAlchemy
splits into insertmanyvalues batches, counts as one statement) and their parameter sets. Every schema is
dropped at the end, also on error or Ctrl-C. Nothing outside the private schemas is touched.

Implementations:

* ``real``: ``workers.pipeline.run_reconciliation`` with every severity mapped to ``sync_to_broker``, grace 0 and a
  clock after every fill; then a second ``reconcile`` against the same snapshot must find the account in sync
  (invariant 4), or the benchmark exits non-zero.
* ``naive``: the way the seed documents did it, written here: one SELECT of the open instruments, then per
  instrument one SELECT of its lots, compare, and one INSERT/UPDATE per fill, lot, trade, finding and action.
  The books it leaves are checked with the real engine (load the books, plan): no position may still differ.

Also printed: where the time goes, step by step (the pipeline's and the books' functions are wrapped in this
process only), and the statements by verb and table. See bench/README.md.

Exit status: 0 when every check passed, 1 when one failed (with ``--strict``, also when a target is missed),
2 when Postgres cannot be used.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import itertools
import json
import os
import platform
import pstats
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, event, func, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/reconcile_10k.py` from anywhere
    sys.path.insert(0, str(ROOT))

from models import actions as actions_module  # noqa: E402
from models import apply as apply_module  # noqa: E402
from models import books as tables  # noqa: E402
from models import fills as fills_module  # noqa: E402
from models import reading as reading_module  # noqa: E402
from models.accounts import get_or_create_account, lock_account  # noqa: E402
from models.cash import set_expected_cash  # noqa: E402
from models.database import Database, make_engine, normalize_url, upgrade  # noqa: E402
from models.fills import _trade_row, write_fills  # noqa: E402
from models.lots import load_open_lots  # noqa: E402
from models.reading import load_books  # noqa: E402
from models.runs import Action, Finding, Run  # noqa: E402
from reconciliation.fifo import apply_fill  # noqa: E402
from reconciliation.findings import compare_positions  # noqa: E402
from reconciliation.plan import plan  # noqa: E402
from reconciliation.policy import Policy, Rules, Strategy  # noqa: E402
from reconciliation.values import (  # noqa: E402
    ZERO,
    Cash,
    Fill,
    InstrumentKey,
    Lot,
    LotSide,
    Side,
    Snapshot,
    Source,
    plain,
)
from venues.sim import SimVenue  # noqa: E402
from workers import pipeline as pipeline_module  # noqa: E402
from workers.fleet import AccountConfig  # noqa: E402
from workers.pipeline import run_reconciliation as reconcile  # noqa: E402

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/test"
BOT, ACCOUNT = "benchbot", "paper"
T0 = datetime(2026, 11, 1, tzinfo=UTC)  # seeded bot fills: T0 + i seconds
VENUE_FILL_TIME = datetime(2026, 11, 15, tzinfo=UTC)  # fills the venue reports and the books lack
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # the run's clock: after every fill
CASH = Cash("USDT", Decimal(1_000_000))
TARGET_SECONDS = 1.0

MISSING, LESS, MORE, OPENED, FLIP = (
    "missing at venue",
    "venue holds less",
    "venue holds more",
    "opened at venue",
    "side flip",
)
DRIFT_KINDS = (MISSING, LESS, MORE, OPENED, FLIP)

LOTS = cast(Table, tables.Lot.__table__)
FILLS = cast(Table, tables.Fill.__table__)
TRADES = cast(Table, tables.Trade.__table__)
ACCOUNTS = cast(Table, tables.Account.__table__)
BOTS = cast(Table, tables.Bot.__table__)
RUNS = cast(Table, Run.__table__)
FINDINGS = cast(Table, Finding.__table__)
ACTIONS = cast(Table, Action.__table__)


# --- scenario -------------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    """The books to seed and the venue state to reconcile them with."""

    positions: int
    book_fills: list[Fill]
    venue_state: dict[str, Any]
    drifted: dict[str, int]

    @property
    def drifted_total(self) -> int:
        return sum(self.drifted.values())


def _key(index: int) -> InstrumentKey:
    return InstrumentKey("linear" if index % 4 else "inverse", f"S{index:06d}USDT", 0)


def _venue_key(key: InstrumentKey) -> dict[str, Any]:
    return {"symbol": key.symbol, "category": key.category, "leg": key.leg}


def build_scenario(positions: int, drift_pct: Decimal, venue_history: int, seed: int = 20261120) -> Scenario:
    """N one-lot positions; ``drift_pct`` % of instruments drift, the five kinds in turn; the rest agree."""
    rng = random.Random(seed + positions)
    fills: list[Fill] = []
    for i in range(positions):
        qty = Decimal(rng.randint(1, 5000)) / 10
        price = Decimal(rng.randint(100, 10_000_000)) / 100
        fills.append(
            Fill(
                fill_id=f"bot-{i:06d}",
                key=_key(i),
                side=Side.BUY if rng.random() < 0.6 else Side.SELL,
                qty=qty,
                price=price,
                time=T0 + timedelta(seconds=i),
                fee=Decimal("0.01"),
                order_id=f"ord-{i:06d}",
            )
        )
    drift_count = int(positions * drift_pct / 100)
    kinds = [DRIFT_KINDS[i % len(DRIFT_KINDS)] for i in range(drift_count)]
    in_books = [k for k in kinds if k != OPENED]
    chosen = dict(zip(rng.sample(range(positions), len(in_books)), in_books, strict=True))
    venue_positions: list[dict[str, Any]] = []
    venue_fills: list[dict[str, Any]] = []
    marks: list[dict[str, Any]] = []
    explained = 0  # every other "missing" / "more" is explained by a venue fill the books lack

    def venue_fill(key: InstrumentKey, side: Side, qty: Decimal, price: Decimal) -> None:
        venue_fills.append(
            {
                "fill_id": f"venue-{len(venue_fills):06d}",
                **_venue_key(key),
                "side": side.value,
                "qty": plain(qty),
                "price": plain(price),
                "fee": "0",
                "time": (VENUE_FILL_TIME + timedelta(seconds=len(venue_fills))).isoformat().replace("+00:00", "Z"),
            }
        )

    for i, fill in enumerate(fills):
        signed = fill.signed_qty
        mark = fill.price * Decimal("1.01")
        kind = chosen.get(i)
        if kind == MISSING:
            explained += 1
            if explained % 2:
                venue_fill(fill.key, fill.side.opposite, fill.qty, mark)
            else:
                marks.append({**_venue_key(fill.key), "price": plain(mark)})
            continue
        if kind == LESS:
            signed = signed * Decimal("0.6")
        elif kind == MORE:
            explained += 1
            if explained % 2:
                venue_fill(fill.key, fill.side, fill.qty / 2, mark)
            signed = signed * Decimal("1.5")
        elif kind == FLIP:
            signed = -signed * Decimal("0.8")
        venue_positions.append(_position_row(fill.key, signed, fill.price, mark))
    for j in range(kinds.count(OPENED)):
        qty = Decimal(rng.randint(1, 5000)) / 10 * (1 if j % 2 else -1)
        price = Decimal(rng.randint(100, 10_000_000)) / 100
        venue_positions.append(_position_row(_key(positions + j), qty, price, price))
    # The venue's recent fill history also holds fills the books already have (the newest bot fills).
    known = [
        {
            "fill_id": f.fill_id,
            "order_id": f.order_id,
            **_venue_key(f.key),
            "side": f.side.value,
            "qty": plain(f.qty),
            "price": plain(f.price),
            "fee": plain(f.fee),
            "time": f.time.isoformat().replace("+00:00", "Z"),
        }
        for f in fills[-venue_history:]
        if venue_history > 0
    ]
    state = {
        "positions": venue_positions,
        "cash": {"currency": CASH.currency, "balance": plain(CASH.balance)},
        "open_orders": [],
        "fills": known + venue_fills,
        "marks": marks,
    }
    drifted = {kind: kinds.count(kind) for kind in DRIFT_KINDS}
    return Scenario(positions, fills, state, drifted)


def _position_row(key: InstrumentKey, signed: Decimal, avg: Decimal, mark: Decimal) -> dict[str, Any]:
    return {
        **_venue_key(key),
        "side": "long" if signed > 0 else "short",
        "qty": plain(abs(signed)),
        "avg_price": plain(avg),
        "mark_price": plain(mark),
    }


@dataclass(frozen=True)
class Case:
    """One size of the benchmark: how to rebuild its scenario, and where its venue state file is.

    The scenario (10,000 fills and venue rows) is rebuilt for each seeding and dropped before the measured
    run, so the benchmark's own data does not sit in the heap the garbage collector walks during the run.
    """

    positions: int
    drift_pct: Decimal
    venue_history: int
    state_file: Path
    drifted: dict[str, int]
    gc_mode: str = "normal"
    lots_index: bool = False

    @classmethod
    def create(cls, args: argparse.Namespace, positions: int, folder: Path) -> Case:
        scenario = build_scenario(positions, args.drift_pct, args.venue_history)
        state_file = folder / f"venue_{positions}.json"
        state_file.write_text(json.dumps(scenario.venue_state), encoding="utf-8")
        drifted = scenario.drifted
        return cls(positions, args.drift_pct, args.venue_history, state_file, drifted, args.gc, args.lots_index)

    @property
    def drifted_total(self) -> int:
        return sum(self.drifted.values())

    def scenario(self) -> Scenario:
        return build_scenario(self.positions, self.drift_pct, self.venue_history)


# --- databases ------------------------------------------------------------------------------------------------


class Schemas:
    """Private schemas created by this process; all dropped by ``drop_all``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.admin = make_engine(base_url)
        self.created: list[str] = []
        self._numbers = itertools.count()

    def create(self) -> str:
        name = f"bench_{os.getpid()}_{next(self._numbers)}"
        self.created.append(name)  # listed before creation: a half-made schema is dropped too
        with self.admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
            connection.execute(text(f'CREATE SCHEMA "{name}"'))
        return name

    def url(self, schema: str) -> str:
        return make_url(self.base_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)

    def drop(self, schema: str) -> None:
        with self.admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        self.created.remove(schema)

    def drop_all(self) -> None:
        for schema in list(self.created):
            try:
                self.drop(schema)
            except Exception as error:  # keep dropping the others; say which one is left
                print(f"warning: could not drop schema {schema}: {error}", file=sys.stderr)
        self.admin.dispose()

    def server_version(self) -> str:
        with self.admin.connect() as connection:
            return str(connection.execute(text("SHOW server_version")).scalar_one())


def seed(database: Database, scenario: Scenario) -> int:
    """Write the scenario's books (bot fills -> one open lot each, expected cash); returns the account id."""
    with database.sessions.begin() as session:
        account_id = get_or_create_account(session, BOT, ACCOUNT, T0, "sim").id
        lock_account(session, account_id)
        lots = load_open_lots(session, account_id)
        write_fills(session, account_id, [(f, Source.BOT) for f in scenario.book_fills], lots, T0)
        set_expected_cash(session, account_id, CASH, T0)
    with database.engine.begin() as connection:
        connection.execute(text("ANALYZE"))  # fresh tables get real statistics, as a long-lived database has
    return account_id


# --- counting -------------------------------------------------------------------------------------------------


class SqlCounter:
    """Counts statements and parameter sets sent through an engine while ``counting`` is active.

    An executemany, and an INSERT that SQLAlchemy sends as several insertmanyvalues batches, count as one
    statement with all their parameter sets; ``cursor_calls`` counts every cursor execution (each batch).
    ``db_seconds`` is the time spent inside cursor executions (driver, network and server), per statement
    label (verb and table) in ``by_label``.
    """

    def __init__(self, engine: Engine) -> None:
        self.enabled = False
        self.reset()
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def reset(self) -> None:
        self.statements = self.param_sets = self.cursor_calls = 0
        self.db_seconds = 0.0
        self.by_verb: dict[str, int] = {}
        self.by_label: dict[str, list[float]] = {}  # label -> [statements, parameter sets, seconds]
        self._last_context: Any = None
        self._label = ""
        self._started = 0.0

    def _before(
        self, _conn: Connection, _cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if not self.enabled:
            return
        self.cursor_calls += 1
        self._started = time.perf_counter()
        if context is not None and context is self._last_context:
            return  # another insertmanyvalues batch of the same execute(): the same statement
        self._last_context = context
        self._label = statement_label(statement)
        verb = self._label.split(" ", 1)[0]
        self.statements += 1
        self.by_verb[verb] = self.by_verb.get(verb, 0) + 1
        if executemany:
            rows = getattr(context, "parameters", None) if context is not None else None
            sets = len(rows) if rows is not None else len(parameters)
        else:
            sets = 1
        self.param_sets += sets
        entry = self.by_label.setdefault(self._label, [0, 0, 0.0])
        entry[0] += 1
        entry[1] += sets

    def _after(self, *_args: Any) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self._started
        self.db_seconds += elapsed
        self.by_label[self._label][2] += elapsed

    @contextmanager
    def counting(self) -> Iterator[SqlCounter]:
        self.reset()
        self.enabled = True
        try:
            yield self
        finally:
            self.enabled = False
            self._last_context = None


TABLE_NAMED = re.compile(r"\b(?:INTO|UPDATE|FROM)\s+\"?([A-Za-z_][\w.]*)", re.IGNORECASE)


def statement_label(statement: str) -> str:
    """'INSERT fills', 'SELECT lots', 'UPDATE accounts': the verb and the first table named."""
    verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
    named = TABLE_NAMED.search(statement)
    return f"{verb} {named.group(1)}" if named else verb


class Phases:
    """Wall time spent in the main steps of ``reconcile`` (nested steps are named parent/child).

    The steps are wrapped where the pipeline and the books look them up (module attributes), in this
    process only; nothing in the project is edited. The residue, "other", is sessions, commits and glue.
    """

    STEPS: tuple[tuple[Any, str, str], ...] = (
        (pipeline_module, "start_run", "start_run"),
        (SimVenue, "fetch_snapshot", "fetch_snapshot"),
        (pipeline_module, "_decide_and_write", "decide_and_write"),
        (reading_module, "load_open_lots", "load_open_lots"),
        (pipeline_module, "plan", "plan"),
        (pipeline_module, "screen_orders", "screen_orders"),
        (actions_module, "write_fills", "write_fills"),
        (fills_module, "_insert_fills", "insert_fills"),
        (fills_module, "_persist", "persist_lots_trades"),
        (apply_module, "record_findings", "findings_breaks"),
    )

    def __init__(self) -> None:
        self.enabled = False
        self.totals: dict[str, float] = {}
        self._stack: list[str] = []
        for owner, attribute, name in self.STEPS:
            setattr(owner, attribute, self._wrap(getattr(owner, attribute), name))

    def _wrap(self, function: Callable[..., Any], name: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.enabled:
                return function(*args, **kwargs)
            path = "/".join([*self._stack, name])
            self.totals.setdefault(path, 0.0)  # listed in call order, parents before children
            self._stack.append(name)
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.totals[path] = self.totals.get(path, 0.0) + time.perf_counter() - started
                self._stack.pop()

        return timed

    @contextmanager
    def timing(self) -> Iterator[dict[str, float]]:
        self.totals = {}
        self.enabled = True
        try:
            yield self.totals
        finally:
            self.enabled = False


PHASES = Phases()


# --- one measured run -----------------------------------------------------------------------------------------


@dataclass
class Measure:
    implementation: str
    positions: int
    drifted: int
    seconds: list[float] = field(default_factory=list)
    statements: int = 0
    param_sets: int = 0
    cursor_calls: int = 0
    by_verb: dict[str, int] = field(default_factory=dict)
    status: str = ""
    phases: list[dict[str, float]] = field(default_factory=list)
    db_seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    by_label: dict[str, list[float]] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def record(self, seconds: float, cpu: float, counter: SqlCounter) -> None:
        if self.seconds and (counter.statements, counter.param_sets) != (self.statements, self.param_sets):
            self.failures.append(
                f"statement counts differ between repeats: {self.statements}/{self.param_sets} then "
                f"{counter.statements}/{counter.param_sets}"
            )
        self.seconds.append(seconds)
        self.cpu_seconds.append(cpu)
        self.statements, self.param_sets, self.cursor_calls = (
            counter.statements,
            counter.param_sets,
            counter.cursor_calls,
        )
        self.by_verb = dict(sorted(counter.by_verb.items()))
        self.db_seconds.append(counter.db_seconds)
        self.by_label = {label: list(entry) for label, entry in counter.by_label.items()}


def account_config(state_file: Path) -> AccountConfig:
    sync = Strategy.SYNC_TO_BROKER
    rules = Rules(policy=Policy(minor=sync, moderate=sync, critical=sync), grace_seconds=0)
    return AccountConfig(BOT, ACCOUNT, "sim", rules, interval_seconds=300, state_file=state_file)


@contextmanager
def prepared(schemas: Schemas, case: Case) -> Iterator[tuple[Database, SqlCounter, int]]:
    """A fresh migrated schema with the case's books, a warm connection pool and a statement counter."""
    schema = schemas.create()
    database = Database(schemas.url(schema))
    try:
        upgrade(database.engine)
        if case.lots_index:  # what-if: a partial index on open lots only (see README)
            with database.engine.begin() as connection:
                connection.execute(text(LOTS_INDEX))
        account_id = seed(database, case.scenario())
        with database.engine.connect() as connection:  # warm the pool: connecting is not what we measure
            connection.execute(text("SELECT 1"))
        counter = SqlCounter(database.engine)
        gc.collect()  # start every measured run from the same, clean heap
        yield database, counter, account_id
    finally:
        database.dispose()
        schemas.drop(schema)


LOTS_INDEX = (
    "CREATE INDEX ix_bench_lots_open_instrument ON lots (account_id, category, symbol, leg) WHERE status = 'OPEN'"
)


@contextmanager
def gc_policy(mode: str) -> Iterator[None]:
    """``normal``: Python's collector as configured; ``freeze``: the heap before the run is frozen (as a worker
    that calls gc.freeze() after start-up); ``off``: no collection during the run."""
    if mode == "freeze":
        gc.freeze()
    elif mode == "off":
        gc.disable()
    try:
        yield
    finally:
        gc.enable()
        if mode == "freeze":
            gc.unfreeze()


def clock() -> datetime:
    return NOW


def measured_reconcile(
    database: Database, config: AccountConfig, counter: SqlCounter, measure: Measure, gc_mode: str
) -> Any:
    """One ``reconcile`` call, timed as a whole and by step, with its statements counted."""
    with counter.counting(), PHASES.timing() as steps, gc_policy(gc_mode):
        started, cpu = time.perf_counter(), time.process_time()
        result = reconcile(database, config, clock=clock)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    measure.record(elapsed, cpu, counter)
    measure.phases.append({**steps, "other (sessions, commits, glue)": elapsed - _top_level(steps)})
    measure.status = result.status
    return result


def _top_level(steps: dict[str, float]) -> float:
    return sum(seconds for name, seconds in steps.items() if "/" not in name)


def run_real(schemas: Schemas, case: Case, repeat: int, measure: Measure, rerun: Measure) -> None:
    config = account_config(case.state_file)
    expected = case.drifted_total
    for _ in range(repeat):
        with prepared(schemas, case) as (database, counter, _account_id):
            first = measured_reconcile(database, config, counter, measure, case.gc_mode)
            if first.status != "resolved":
                measure.failures.append(f"first run ended {first.status!r} ({first.error}), expected 'resolved'")
            with database.sessions() as session:
                findings = session.scalar(
                    select(func.count()).select_from(FINDINGS).where(FINDINGS.c.run_id == first.run_id)
                )
            if findings != expected:
                measure.failures.append(f"first run recorded {findings} findings, expected {expected}")
            second = measured_reconcile(database, config, counter, rerun, case.gc_mode)
            if second.status != "in_sync":
                rerun.failures.append(f"second run against the same snapshot ended {second.status!r}, expected in_sync")
    measure.checks.append(f"first run: {measure.status}, {expected} findings")
    rerun.checks.append(f"second run against the same snapshot: {rerun.status}")


def profile_real(schemas: Schemas, case: Case, top: int) -> str:
    """cProfile of one real run on fresh books, as text (cumulative, then own time)."""
    config = account_config(case.state_file)
    with prepared(schemas, case) as (database, _counter, _account_id):
        profiler = cProfile.Profile()
        profiler.enable()
        reconcile(database, config, clock=clock)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    out.write("--- by cumulative time ---\n")
    stats.sort_stats("cumulative").print_stats(top)
    out.write("--- by own time ---\n")
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


# --- the naive per-row implementation ---------------------------------------------------------------------------


def naive_reconcile(engine: Engine, snapshot: Snapshot, now: datetime) -> str:
    """Reconcile row by row, as the seeds did: per instrument one SELECT, per change one INSERT/UPDATE.

    Books follow the venue (close FIFO at the mark, open at the venue's average); every difference is a finding
    row and every fill an action row. No breaks, no fencing: the baseline is about statements, not features.
    """
    venue = snapshot.positions_by_key()
    with engine.begin() as conn:
        account_id = conn.execute(
            select(ACCOUNTS.c.id)
            .join(BOTS, BOTS.c.id == ACCOUNTS.c.bot_id)
            .where(BOTS.c.name == BOT, ACCOUNTS.c.name == ACCOUNT)
            .with_for_update()
        ).scalar_one()
        run_id = conn.execute(
            insert(RUNS)
            .values(account_id=account_id, reason="manual", status="running", dry_run=False, epoch=0, started_at=now)
            .returning(RUNS.c.id)
        ).scalar_one()
        open_keys = {
            InstrumentKey(r.category, r.symbol, r.leg)
            for r in conn.execute(
                select(LOTS.c.category, LOTS.c.symbol, LOTS.c.leg)
                .where(LOTS.c.account_id == account_id, LOTS.c.status == "OPEN")
                .distinct()
            )
        }
        resolved = 0
        for key in sorted(open_keys | set(venue)):
            rows = conn.execute(
                select(LOTS)
                .where(
                    LOTS.c.account_id == account_id,
                    LOTS.c.category == key.category,
                    LOTS.c.symbol == key.symbol,
                    LOTS.c.leg == key.leg,
                    LOTS.c.status == "OPEN",
                )
                .order_by(LOTS.c.entry_time, LOTS.c.id)
            ).all()
            lots = tuple(_lot_of(r) for r in rows)
            ids = {r.entry_fill_id: r.id for r in rows}
            mine = sum((lot.signed_remaining for lot in lots), ZERO)
            theirs = venue[key].qty if key in venue else ZERO
            if mine == theirs:
                continue
            found = compare_positions({key: mine}, {key: theirs}, Rules().thresholds).discrepancies[0]
            finding_id = conn.execute(
                insert(FINDINGS)
                .values(
                    run_id=run_id,
                    subject=found.subject,
                    kind=found.kind.value,
                    severity=found.severity.value,
                    category=key.category,
                    symbol=key.symbol,
                    leg=key.leg,
                    ledger_value=mine,
                    venue_value=theirs,
                    diff_pct=found.diff_pct,
                    strategy="sync_to_broker",
                    outcome="resolved",
                    action="synced to the venue row by row",
                )
                .returning(FINDINGS.c.id)
            ).scalar_one()
            for fill in _naive_fills(run_id, key, mine, theirs, venue, snapshot, lots):
                lots = _naive_apply(conn, account_id, run_id, finding_id, fill, lots, ids, now)
            resolved += 1
        conn.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id)
            .values(status="resolved" if resolved else "in_sync", finished_at=now)
        )
    return "resolved" if resolved else "in_sync"


def _lot_of(row: Any) -> Lot:
    return Lot(
        entry_fill_id=row.entry_fill_id,
        key=InstrumentKey(row.category, row.symbol, row.leg),
        side=LotSide(row.side),
        quantity=row.quantity,
        remaining=row.remaining,
        entry_price=row.entry_price,
        entry_time=row.entry_time,
        commission=row.commission,
        source=Source(row.source),
    )


def _naive_fills(
    run_id: int,
    key: InstrumentKey,
    mine: Decimal,
    theirs: Decimal,
    venue: dict[InstrumentKey, Any],
    snapshot: Snapshot,
    lots: tuple[Lot, ...],
) -> list[Fill]:
    same_side = ZERO not in (mine, theirs) and (mine > ZERO) == (theirs > ZERO)
    to_close = abs(mine) - abs(theirs) if same_side else abs(mine)
    to_open = abs(theirs) - abs(mine) if same_side else abs(theirs)
    fills = []
    if to_close > ZERO:
        position = venue.get(key)
        price = position.mark_price if position is not None and position.mark_price is not None else None
        price = price or snapshot.marks.get(key) or lots[0].entry_price
        side = Side.SELL if mine > ZERO else Side.BUY
        fills.append(_naive_fill(run_id, key, "close", side, to_close, price, snapshot.as_of))
    if to_open > ZERO:
        side = Side.BUY if theirs > ZERO else Side.SELL
        fills.append(_naive_fill(run_id, key, "open", side, to_open, venue[key].avg_price, snapshot.as_of))
    return fills


def _naive_fill(
    run_id: int, key: InstrumentKey, purpose: str, side: Side, qty: Decimal, price: Decimal, at: datetime
) -> Fill:
    return Fill(
        fill_id=f"naive-{run_id}-{key}-{purpose}",
        key=key,
        side=side,
        qty=qty,
        price=price,
        time=at,
        reason="closed at the venue outside the bot" if purpose == "close" else None,
        estimated=purpose == "close",
    )


def _naive_apply(
    conn: Connection,
    account_id: int,
    run_id: int,
    finding_id: int,
    fill: Fill,
    lots: tuple[Lot, ...],
    ids: dict[str, int],
    now: datetime,
) -> tuple[Lot, ...]:
    conn.execute(
        insert(FILLS).values(
            account_id=account_id,
            fill_id=fill.fill_id,
            category=fill.key.category,
            symbol=fill.key.symbol,
            leg=fill.key.leg,
            side=fill.side.value,
            qty=fill.qty,
            price=fill.price,
            fee=fill.fee,
            time=fill.time,
            kind=fill.kind.value,
            source=Source.RECONCILIATION.value,
            reason=fill.reason,
            estimated=fill.estimated,
            run_id=run_id,
            recorded_at=now,
        )
    )
    outcome = apply_fill(lots, fill, Source.RECONCILIATION)
    after = {lot.entry_fill_id: lot for lot in outcome.lots}
    closed = {t.entry_fill_id: t for t in outcome.trades}
    for lot in lots:
        if after.get(lot.entry_fill_id) == lot:
            continue
        trade = closed.get(lot.entry_fill_id)
        remaining = after[lot.entry_fill_id].remaining if lot.entry_fill_id in after else ZERO
        values: dict[str, Any] = {"remaining": remaining}
        if lot.entry_fill_id not in after and trade is not None:
            values.update(status=trade.status.value, exit_reason=trade.exit_reason, closed_at=trade.exit_time)
        conn.execute(update(LOTS).where(LOTS.c.id == ids[lot.entry_fill_id]).values(**values))
    for trade in outcome.trades:
        conn.execute(insert(TRADES).values(_trade_row(account_id, trade, ids[trade.entry_fill_id])))
    if outcome.opened is not None:
        opened = outcome.opened
        ids[opened.entry_fill_id] = conn.execute(
            insert(LOTS)
            .values(
                account_id=account_id,
                category=opened.key.category,
                symbol=opened.key.symbol,
                leg=opened.key.leg,
                side=opened.side.value,
                quantity=opened.quantity,
                remaining=opened.remaining,
                entry_price=opened.entry_price,
                entry_time=opened.entry_time,
                entry_fill_id=opened.entry_fill_id,
                commission=opened.commission,
                source=opened.source.value,
                status="OPEN",
            )
            .returning(LOTS.c.id)
        ).scalar_one()
    conn.execute(
        insert(ACTIONS).values(
            run_id=run_id,
            finding_id=finding_id,
            kind="correct_position",
            subject=f"position:{fill.key}",
            applied=True,
            detail=f"{fill.side} {plain(fill.qty)} {fill.key.symbol} @ {plain(fill.price)}",
        )
    )
    return outcome.lots


def run_naive(schemas: Schemas, case: Case, repeat: int, measure: Measure) -> None:
    config = account_config(case.state_file)
    state_file = case.state_file
    for _ in range(repeat):
        with prepared(schemas, case) as (database, counter, account_id):
            with counter.counting(), gc_policy(case.gc_mode):
                started, cpu = time.perf_counter(), time.process_time()
                snapshot = SimVenue(state_file).fetch_snapshot(NOW)
                measure.status = naive_reconcile(database.engine, snapshot, NOW)
                elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            measure.record(elapsed, cpu, counter)
            with database.sessions() as session:  # the real engine must see nothing left to do
                books, _ = load_books(session, account_id, [f.fill_id for f in snapshot.fills])
            left = [d for d in plan(books, snapshot, config.rules, NOW).decisions if d.finding.kind.value in POSITIONS]
            if left:
                measure.failures.append(f"naive run left {len(left)} position discrepancies, e.g. {left[0].finding}")
    measure.checks.append("naive books checked with the real engine: no position differs")


POSITIONS = {"missing_at_venue", "missing_in_ledger", "quantity_mismatch", "side_mismatch"}


# --- report ---------------------------------------------------------------------------------------------------


def machine(schemas: Schemas) -> list[str]:
    model = ""
    with contextlib.suppress(OSError):  # not every system has /proc/cpuinfo
        for row in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if row.startswith("model name"):
                model = row.split(":", 1)[1].strip()
                break
    cpu = platform.processor() or platform.machine()
    return [
        f"platform   : {platform.platform()}",
        f"processor  : {cpu}{f' ({model})' if model else ''}, os.cpu_count() = {os.cpu_count()}",
        f"python     : {platform.python_implementation()} {platform.python_version()}",
        f"postgres   : {schemas.server_version()}",
    ]


def table(measures: list[Measure]) -> str:
    head = (
        "implementation",
        "positions",
        "drifted",
        "wall time (s)",
        "best (s)",
        "in DB (s)",
        "CPU (s)",
        "SQL statements",
        "parameter sets",
        "cursor calls",
        "status",
    )
    rows = [
        (
            m.implementation,
            f"{m.positions:,}",
            f"{m.drifted:,}",
            f"{statistics.median(m.seconds):.3f}",
            f"{min(m.seconds):.3f}",
            f"{statistics.median(m.db_seconds):.3f}",
            f"{statistics.median(m.cpu_seconds):.3f}",
            f"{m.statements:,}",
            f"{m.param_sets:,}",
            f"{m.cursor_calls:,}",
            m.status,
        )
        for m in measures
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    left = (0, len(head) - 1)

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(head), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def details(measure: Measure) -> str:
    """Median time per step of ``reconcile`` (nested steps indented) and the statements by verb and table."""
    title = f"{measure.implementation} @ {measure.positions:,} positions"
    lines = [f"{title}: {statistics.median(measure.seconds) * 1000:.1f} ms"]
    names = list(dict.fromkeys(name for run in measure.phases for name in run))
    for name in names:
        seconds = statistics.median(run.get(name, 0.0) for run in measure.phases)
        depth = name.count("/")
        lines.append(f"  {'  ' * depth}{name.rsplit('/', 1)[-1]:<{36 - 2 * depth}} {seconds * 1000:8.1f} ms")
    lines.append(f"  statements (count, parameter sets, time in cursor.execute; {measure.statements} in all):")
    for label, (count, sets, seconds) in sorted(measure.by_label.items(), key=lambda item: -item[1][2]):
        lines.append(f"    {label:<34} {int(count):>6,} {int(sets):>7,} {seconds * 1000:8.1f} ms")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--positions", type=int, default=10_000, help="open positions in the books (default 10000)")
    add("--drift-pct", type=Decimal, default=Decimal(5), help="%% of instruments that differ (default 5)")
    add("--small-positions", type=int, default=1_000, help="the smaller size run beside it (default 1000; 0: none)")
    add("--repeat", type=int, default=1, help="runs per case, each on fresh books; the table shows the median")
    add("--venue-history", type=int, default=200, help="known bot fills in the venue's fill history (default 200)")
    add("--skip-naive", action="store_true", help="measure only the real implementation")
    add("--profile", action="store_true", help="also cProfile one real run at --positions and print it")
    add("--profile-top", type=int, default=30, help="lines per profile listing (default 30)")
    add(
        "--gc",
        choices=("normal", "freeze", "off"),
        default="normal",
        help="garbage collector during measured runs: normal (default), freeze (gc.freeze() first), off",
    )
    add("--lots-index", action="store_true", help="what-if: add a partial index on open lots by instrument")
    add("--strict", action="store_true", help="exit 1 also when a target (constant statements, 1 s) is missed")
    add(
        "--db",
        default=os.environ.get("RECON_BENCH_DATABASE_URL", DEFAULT_DB),
        help=f"Postgres URL; private schemas are created in it (default {DEFAULT_DB}, or RECON_BENCH_DATABASE_URL)",
    )
    args = parser.parse_args(argv)
    if args.positions < 1 or args.small_positions < 0 or args.repeat < 1:
        parser.error("--positions and --repeat must be positive, --small-positions not negative")
    if not Decimal(0) <= args.drift_pct <= Decimal(100):
        parser.error("--drift-pct must be between 0 and 100")
    return args


def run_all(args: argparse.Namespace, schemas: Schemas, folder: Path) -> tuple[list[Measure], str]:
    """Every case, biggest size first; returns the measures and the profile text (if asked for)."""
    measures: list[Measure] = []
    profile = ""
    for size in sorted({args.positions, args.small_positions} - {0}, reverse=True):
        case = Case.create(args, size, folder)
        drifted = case.drifted_total
        real, rerun = Measure("real", size, drifted), Measure("real, 2nd run", size, 0)
        progress(f"{size:,} positions, {drifted:,} drifted {case.drifted}: real")
        run_real(schemas, case, args.repeat, real, rerun)
        measures += [real, rerun]
        if not args.skip_naive:
            progress(f"{size:,} positions: naive per-row")
            naive = Measure("naive per-row", size, drifted)
            run_naive(schemas, case, args.repeat, naive)
            measures.append(naive)
        if args.profile and size == args.positions:
            progress(f"{size:,} positions: profiling one real run")
            profile = profile_real(schemas, case, args.profile_top)
    return measures, profile


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = normalize_url(args.db)
    if make_url(base).get_backend_name() != "postgresql":
        print("this benchmark needs Postgres (--db postgresql://...)", file=sys.stderr)
        return 2
    schemas = Schemas(base)
    try:
        info = machine(schemas)
        with tempfile.TemporaryDirectory(prefix="recon-bench-") as folder:
            measures, profile = run_all(args, schemas, Path(folder))
    except OperationalError as error:
        print(f"Postgres is not usable at {make_url(base).render_as_string()}: {error.orig}", file=sys.stderr)
        return 2
    finally:
        schemas.drop_all()
    print("\n".join(info))
    print(
        f"scenario   : {args.drift_pct}% of instruments drift, evenly: {', '.join(DRIFT_KINDS)}; the venue's fill "
        f"history holds {args.venue_history} fills the books know and fills explaining half of the 'missing' "
        f"and 'more' drifts; every severity sync_to_broker, grace 0; median of {args.repeat} run(s) on fresh books; "
        f"gc {args.gc}{'; with the what-if index on open lots by instrument' if args.lots_index else ''}"
    )
    print()
    print(table(measures))
    print()
    for m in measures:
        if m.positions == args.positions:
            print(details(m))
            print()
    for m in measures:
        for check in m.checks:
            print(f"check {m.implementation} @ {m.positions:,}: {check}")
    verdicts, missed = targets(measures, args.positions)
    print("\n".join(verdicts))
    if profile:
        print()
        print(profile)
    failures = [f"{m.implementation} @ {m.positions:,}: {f}" for m in measures for f in m.failures]
    if args.strict:
        failures += missed
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


def targets(measures: list[Measure], positions: int) -> tuple[list[str], list[str]]:
    """Verdicts on the issue's targets, and the targets missed."""
    real = {m.positions: m for m in measures if m.implementation == "real"}
    naive = {m.positions: m for m in measures if m.implementation == "naive per-row"}
    lines, missed = [], []
    if len(real) > 1:
        small, big = real[min(real)], real[max(real)]
        constant = small.statements == big.statements
        lines.append(
            f"target, statements: real {small.statements} at {small.positions:,} positions, {big.statements} at "
            f"{big.positions:,}: {'constant' if constant else 'NOT constant'} in the number of positions"
        )
        if not constant:
            missed.append(lines[-1])
    if len(naive) > 1:
        small, big = naive[min(naive)], naive[max(naive)]
        lines.append(
            f"baseline: naive {small.statements:,} statements at {small.positions:,}, "
            f"{big.statements:,} at {big.positions:,}"
        )
    if positions in real:
        wall = statistics.median(real[positions].seconds)
        verdict = "meets" if wall < TARGET_SECONDS else "MISSES"
        lines.append(
            f"target, time: real at {positions:,} positions {wall:.3f} s: {verdict} the {TARGET_SECONDS:g} s target"
        )
        if wall >= TARGET_SECONDS:
            missed.append(lines[-1])
    return lines, missed


if __name__ == "__main__":
    sys.exit(main())
