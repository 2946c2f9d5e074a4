"""After each committed run: the account's positions to the bots' Redis cache, and an event on the stream.

    recon:<bot>:<account>:positions   hash, instrument key -> {"qty", "avg_entry"} (decimal strings)
    recon:<bot>:<account>:last_run    {"run_id", "status"}
    recon:events                      stream of {bot, account, run_id, status}

and, when the account has a publisher table (``workers.publisher_table``), the positions once more in the bot's
own layout (``workers.redis_layout``), with

    recon:<bot>:<account>:published   set of the instruments written there, as JSON [category, symbol, leg]

so that the next run deletes (or writes as flat) the keys of an instrument no longer held. An index rather than a
SCAN over the bot's prefix: SCAN walks the whole keyspace on every run, and a prefix can match keys the bot wrote
for its own reasons; the index names exactly what we wrote. Everything goes in one MULTI/EXEC, watched on the
index, so a bot never reads half a run. Nothing is read back from Postgres: everything comes from the run's result.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from functools import lru_cache

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError

from reconciliation.errors import CoordinationUnavailable
from reconciliation.values import InstrumentKey
from workers.coalescing import account_key, redis_errors
from workers.redis_layout import OWN_LAYOUT, Delete, Layout, LayoutClash, Published, SetString, Write, plan_writes
from workers.results import RunResult
from workers.settings import Settings

EVENTS = "recon:events"
WATCH_ATTEMPTS = 3  # the index changes only under the account's lock: a second attempt is already rare
log = logging.getLogger(__name__)


def publish(
    redis: Redis, result: RunResult, settings: Settings, publisher: Layout | None = None, now: datetime | None = None
) -> None:
    """Write the run's positions to the bots' cache (ours, and the bot's own layout when ``publisher`` is given)
    and append its event, in one Redis transaction; a publisher naming another database of the same Redis gets a
    transaction of its own there, after ours."""
    elsewhere = publisher is not None and publisher.db is not None and publisher.db != _database(redis)
    _write(redis, result, settings, None if elsewhere else publisher, now, ours=True)
    if elsewhere and publisher is not None and publisher.db is not None:
        _write(_on_database(redis, publisher.db), result, settings, publisher, now, ours=False)


def _write(
    redis: Redis, result: RunResult, settings: Settings, publisher: Layout | None, now: datetime | None, *, ours: bool
) -> None:
    """One MULTI/EXEC: our own layout, the run's ``last_run`` and its event (``ours``), and ``publisher``'s layout
    with its index, watched so that two writers never interleave."""
    key = account_key(result.bot, result.account)
    index = f"{key}:published"
    tracked = publisher is not None and publisher.tracks
    with redis_errors(), redis.pipeline(transaction=True) as pipe:
        for _ in range(WATCH_ATTEMPTS):
            try:
                published: frozenset[InstrumentKey] = frozenset()
                if tracked:
                    pipe.watch(index)  # type: ignore[no-untyped-call]
                    published = _members(pipe.smembers(index))  # type: ignore[arg-type]
                    pipe.multi()
                if ours:
                    _queue(pipe, _planned(OWN_LAYOUT, result, frozenset(), now).writes)
                if publisher is not None:
                    _queue_publisher(pipe, publisher, result, published, index, now)
                if ours:
                    pipe.set(f"{key}:last_run", json.dumps({"run_id": result.run_id, "status": result.status.value}))
                    pipe.xadd(
                        EVENTS,
                        {"bot": result.bot, "account": result.account, "run_id": str(result.run_id),
                         "status": result.status.value},
                        maxlen=settings.events_maxlen,
                        approximate=True,
                    )  # fmt: skip
                pipe.execute()
                return
            except WatchError:
                pipe.reset()
        raise CoordinationUnavailable(f"{result.bot}/{result.account}: the published index kept changing")


def _database(redis: Redis) -> int:
    """The database number ``redis`` talks to."""
    return int(redis.connection_pool.connection_kwargs.get("db", 0))


@lru_cache(maxsize=32)
def _on_database(redis: Redis, db: int) -> Redis:
    """The same Redis server as ``redis``, database ``db`` (one client per pair, reused across runs)."""
    return Redis(connection_pool=redis.connection_pool.__class__(**{**redis.connection_pool.connection_kwargs,
                                                                    "db": db}))  # fmt: skip


def _queue_publisher(
    pipe: Pipeline, publisher: Layout, result: RunResult, published: frozenset[InstrumentKey], index: str,
    now: datetime | None,
) -> None:  # fmt: skip
    """The bot's own layout. One that cannot show the account (two instruments on one key) is left as it was and
    logged: the run is committed, and its follow-ups (orders, alerts) must not wait for a fleet file fix."""
    try:
        planned = _planned(publisher, result, published, now)
    except LayoutClash as clash:
        log.error("not published in %s/%s's own layout: %s", result.bot, result.account, clash,
                  extra={"bot": result.bot, "account": result.account, "run_id": result.run_id})  # fmt: skip
        return
    _queue(pipe, planned.writes)
    if planned.index is not None:
        pipe.delete(index)
        if planned.index:
            pipe.sadd(index, *sorted(json.dumps([k.category, k.symbol, k.leg]) for k in planned.index))


def _planned(layout: Layout, result: RunResult, published: frozenset[InstrumentKey], now: datetime | None) -> Published:
    return plan_writes(layout, bot=result.bot, account=result.account, positions=result.positions,
                       published=published, now=now or datetime.now(UTC), run_id=result.run_id)  # fmt: skip


def _queue(pipe: Pipeline, writes: tuple[Write, ...]) -> None:
    for write in writes:
        if isinstance(write, Delete):
            pipe.delete(write.key)
        elif isinstance(write, SetString):
            pipe.set(write.key, write.value)
        else:
            pipe.hset(write.key, mapping=dict(write.mapping))


def _members(raw: set[bytes]) -> frozenset[InstrumentKey]:
    """The index's instruments; a member that is not ours (written by hand) is ignored."""
    keys = set()
    for member in raw:
        try:
            category, symbol, leg = json.loads(member)
            keys.add(InstrumentKey(str(category), str(symbol), int(leg)))
        except (ValueError, TypeError):
            continue
    return frozenset(keys)
