"""Looking again when a deferred finding becomes decidable, instead of a whole interval later.

A run that defers a finding (fills in flight within the grace window, an order recorded after the venue was
read) says when it could be decided (``RunResult.recheck_at``). One ``recon.recheck`` task is sent for that
moment (an ETA task on ``recon.default``); when it comes due it asks for a run like any trigger
(``workers.triggers.trigger_run``, reason ``recheck``), so it coalesces with bots' and beat's requests.

    recheck    recon:<bot>:<account>:recheck holds the moment (epoch seconds) of the recheck already sent. A run
               deferring until a later moment sends nothing; one deferring until an earlier moment sends its
               own. The key expires a minute after its moment, so a lost task blocks nothing for long.

Rechecks never come sooner than ``MIN_DELAY_SECONDS`` after the run and never later than the grace window
after it (the engine counts a fill dated in the future as now), so a run that keeps deferring is not a loop.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from celery import Celery
from redis import Redis

from reconciliation.plan import RunReason
from workers.coalescing import Trigger, account_key, redis_errors
from workers.fleet import AccountConfig
from workers.settings import Settings
from workers.triggers import send_task, trigger_run

RECHECK_TASK = "recon.recheck"
RECHECK_QUEUE = "recon.default"
MIN_DELAY_SECONDS = 1.0
KEY_SLACK_MS = 60_000

# Claim the moment unless a recheck at or before it is already sent. KEYS[1] the key; ARGV: moment, TTL in ms.
CLAIM = (
    "local sent = redis.call('GET', KEYS[1]) "
    "if sent and tonumber(sent) <= tonumber(ARGV[1]) then return 0 end "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1"
)
# Forget the sent recheck once it is due (a later claim made meanwhile stays). ARGV: now.
RELEASE = (
    "local sent = redis.call('GET', KEYS[1]) "
    "if sent and tonumber(sent) <= tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) end return 0"
)


def recheck_key(config: AccountConfig) -> str:
    """The Redis key holding the moment of the account's pending recheck."""
    return f"{account_key(config.bot, config.account)}:recheck"


def schedule_recheck(redis: Redis, app: Celery, config: AccountConfig, at: datetime, now: datetime) -> datetime | None:
    """Send one recheck of the account for ``at`` (not sooner than ``MIN_DELAY_SECONDS`` from ``now``), unless one
    at or before it is already sent; the moment it was sent for, or None."""
    at = max(at, now + timedelta(seconds=MIN_DELAY_SECONDS))
    ttl_ms = int((at - now).total_seconds() * 1000) + KEY_SLACK_MS
    with redis_errors():
        claimed = redis.eval(CLAIM, 1, recheck_key(config), f"{at.timestamp():.6f}", ttl_ms)
    if not claimed:
        return None
    send_task(app, RECHECK_TASK, [config.bot, config.account], RECHECK_QUEUE, eta=at)
    return at


def recheck_due(redis: Redis, app: Celery, config: AccountConfig, settings: Settings, now: datetime) -> Trigger:
    """A recheck came due: forget it and ask for a run, coalesced with any already asked for."""
    with redis_errors():
        redis.eval(RELEASE, 1, recheck_key(config), f"{now.timestamp():.6f}")
    return trigger_run(redis, app, config, RunReason.RECHECK.value, settings)


def recheck_sender(redis: Redis, settings: Settings) -> Callable[[AccountConfig, datetime], None]:
    """Rechecks sent to the workers from a process that is not one (``recon reconcile`` with Redis set)."""

    def send(config: AccountConfig, at: datetime) -> None:
        from workers.celery import create_app  # noqa: PLC0415 - the app reads the fleet file: only when sending

        schedule_recheck(redis, create_app(settings), config, at, datetime.now(UTC))

    return send
