"""One request budget per venue key, shared by every worker process and host: a token bucket in Redis.

    recon:budget:<venue>:<key identity>   hash {tokens, at}: tokens left (may be negative: reserved) and when, in
                                          Redis server microseconds; expires once the bucket would be full again

Each request takes a token (``venues.budget.RequestBudget.take``). A token bucket of ``rate`` tokens a second
holding at most ``burst`` lets through at most ``burst + rate × T`` requests in any span of T seconds. Taking is one
Lua script (``register_script``), so concurrent takers never both get the last token, and the clock is Redis's
own (``TIME``), so hosts with drifting clocks share one bucket correctly.

A taker that finds the bucket empty reserves the next token and sleeps until it is due, when that is at most
``max_wait`` seconds away: requests queue fairly in the order they asked. Further away, nothing is reserved and the
taker raises ``RateLimited`` with ``retry_after`` (a ``RetryLater``: the task is retried, nothing half-done stays).
Redis unreachable is ``CoordinationUnavailable``: no request goes out without a token.

Default sizes, per key, below each venue's documented limit:

- Bybit: 5 a second, burst 5, so at most 10 in any second. Bybit's API limit is per UID and per second on a
  rolling window, per endpoint; the lowest among the endpoints the adapter calls is 10/s (``/v5/order/create``;
  reads are 10-50/s), https://bybit-exchange.github.io/docs/v5/rate-limit.
- Alpaca: 3 a second, burst 20, so at most 200 in any minute: the trading API allows 200 requests a minute per
  account (https://docs.alpaca.markets/docs/api-rate-limits).
- IBKR: 25 messages a second, burst 25, per gateway (host and port), so at most 50 in any second: TWS and IB
  Gateway accept at most 50 messages a second from all API clients together, and pace or disconnect beyond.
  An IBKR call takes ``venues.ibkr.MESSAGES_PER_CALL`` tokens before it connects (ib_async also paces each
  connection itself).

A venue table of the fleet file may set ``requests_per_second`` and ``burst`` (e.g. for a Bybit VIP UID).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from reconciliation.errors import CoordinationUnavailable, RateLimited
from venues.budget import RequestBudget, key_identity
from venues.credentials import Credentials
from workers.runtime import redis_client
from workers.settings import load_settings

log = logging.getLogger(__name__)

KEY_PREFIX = "recon:budget"
#: The longest a request waits for a token before the call gives up with ``RateLimited``.
MAX_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class Rate:
    """A bucket's size: tokens added a second, and the most it holds (the largest burst)."""

    per_second: Decimal
    burst: int


DEFAULT_RATES = {
    "bybit": Rate(Decimal(5), 5),
    "alpaca": Rate(Decimal(3), 20),
    "ibkr": Rate(Decimal(25), 25),
}

# KEYS[1] the bucket; ARGV rate (tokens a second), burst, max wait (ms), tokens wanted. Returns the wait in ms (the
# tokens are reserved), or minus the wait when it is longer than allowed (nothing reserved). Redis microseconds.
TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait_ms = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate / 1000000)
  at = now
end
local wait_us = 0
if tokens < wanted then
  wait_us = math.ceil((wanted - tokens) * 1000000 / rate)
end
local wait_ms = math.ceil(wait_us / 1000)
if wait_ms > max_wait_ms then
  return -wait_ms
end
tokens = tokens - wanted
redis.call('HSET', KEYS[1], 'tokens', string.format('%.9f', tokens), 'at', string.format('%.0f', at))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return wait_ms
"""


class RedisRequestBudget:
    """The shared budget of one venue key (see the module's docstring)."""

    def __init__(
        self,
        redis: Redis,
        key: str,
        rate: Rate,
        *,
        max_wait: float = MAX_WAIT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.key = key
        self.rate = rate
        self.max_wait = max_wait
        self._script: Any = redis.register_script(TAKE)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"<RedisRequestBudget {self.key} {self.rate.per_second}/s burst {self.rate.burst}>"

    def take(self, count: int = 1) -> None:
        """Wait for this key's next ``count`` tokens, taken together in one round trip (at most ``max_wait``
        seconds), else raise ``RateLimited`` having taken none."""
        args = [str(self.rate.per_second), self.rate.burst, _ms(self.max_wait), count]
        try:
            wait_ms = int(self._script(keys=[self.key], args=args))
        except RedisError as error:
            message = f"redis unavailable for the request budget: {type(error).__name__}"
            raise CoordinationUnavailable(message) from error
        if wait_ms < 0:
            raise RateLimited(
                f"request budget of {self.key} spent ({self.rate.per_second}/s, burst {self.rate.burst}): "
                f"the next request could go in {-wait_ms / 1000:.1f} s",
                retry_after=-wait_ms / 1000,
            )
        if wait_ms:
            self._sleep(wait_ms / 1000)


def budget_key(venue: str, credentials: Credentials) -> str:
    """The Redis key of a venue key's bucket: the venue and a digest of the API key, never the key itself."""
    return f"{KEY_PREFIX}:{venue}:{key_identity(venue, credentials)}"


def gateway_key(host: str, port: int) -> str:
    """The Redis key of an IBKR gateway's bucket: every client of one TWS or IB Gateway shares its message limit."""
    digest = hashlib.sha256(f"ibkr\0{host.lower()}:{port}".encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}:ibkr:{digest}"


def rate_of(venue: str, per_second: Decimal | None, burst: int | None) -> Rate:
    """The venue's default rate with the fleet table's ``requests_per_second`` and ``burst`` over it."""
    default = DEFAULT_RATES[venue]
    return Rate(per_second if per_second is not None else default.per_second, burst or default.burst)


def shared_budget(
    redis: Redis | None, venue: str, credentials: Credentials, per_second: Decimal | None, burst: int | None
) -> RequestBudget | None:
    """The bucket of ``credentials`` at ``venue`` in ``redis``; None without Redis (the embedded default runs alone)."""
    if redis is None:
        return None
    return RedisRequestBudget(redis, budget_key(venue, credentials), rate_of(venue, per_second, burst))


def gateway_budget(
    redis: Redis | None, host: str, port: int, per_second: Decimal | None, burst: int | None
) -> RequestBudget | None:
    """The bucket of the IBKR gateway at ``host:port`` in ``redis``; None without Redis."""
    if redis is None:
        return None
    return RedisRequestBudget(redis, gateway_key(host, port), rate_of("ibkr", per_second, burst))


def configured_redis() -> Redis | None:
    """This process's Redis when ``RECON_REDIS_URL`` is set, else None: the embedded default runs one process, with
    nothing to share a budget with (``cli.runs`` decides coordination the same way). Every venue a run opens asks;
    the settings are parsed once per URL, not per run."""
    url = next((value for name, value in os.environ.items() if name.upper() == "RECON_REDIS_URL"), None)
    return _redis_at(url) if url else None


@cache
def _redis_at(url: str) -> Redis:
    return redis_client(load_settings(redis_url=url))


def _ms(seconds: float) -> int:
    return math.ceil(seconds * 1000)
