"""After each committed run: the account's positions to the bots' Redis cache, and an event on the stream.

    recon:<bot>:<account>:positions   hash, instrument key -> {"qty", "avg_entry"} (decimal strings)
    recon:<bot>:<account>:last_run    {"run_id", "status"}
    recon:events                      stream of {bot, account, run_id, status}

Everything comes from the run's result: nothing is read back from Postgres.
"""

from __future__ import annotations

import json

from redis import Redis

from reconciliation.values import plain
from workers.coalescing import account_key, redis_errors
from workers.results import RunResult
from workers.settings import Settings

EVENTS = "recon:events"


def publish(redis: Redis, result: RunResult, settings: Settings) -> None:
    """Write the run's positions to the bots' cache and append its event, in one Redis transaction."""
    cache = {
        str(p.key): json.dumps({"qty": plain(p.qty), "avg_entry": plain(p.avg_entry) if p.avg_entry else None})
        for p in result.positions
    }
    key = account_key(result.bot, result.account)
    with redis_errors():
        pipe = redis.pipeline(transaction=True)
        pipe.delete(f"{key}:positions")
        if cache:
            pipe.hset(f"{key}:positions", mapping=cache)
        pipe.set(f"{key}:last_run", json.dumps({"run_id": result.run_id, "status": result.status.value}))
        pipe.xadd(
            EVENTS,
            {"bot": result.bot, "account": result.account, "run_id": str(result.run_id), "status": result.status.value},
            maxlen=settings.events_maxlen,
            approximate=True,
        )
        pipe.execute()
