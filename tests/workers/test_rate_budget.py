"""One request budget per venue key, shared through Redis by every adapter using that key: proved against the
loopback fake exchange (real pybit and alpaca-py), which logs when each key's requests arrive."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from redis import Redis

from reconciliation.errors import CoordinationUnavailable, FixConfiguration, RateLimited
from tests.conftest import REDIS_URL
from tests.venues.fake_exchange import FakeExchange
from tests.venues.fake_tws import FakeTws
from venues.alpaca import AlpacaSettings, AlpacaVenue
from venues.budget import UNLIMITED, RequestBudget
from venues.bybit import BybitSettings, BybitVenue
from venues.credentials import Credentials, Secret
from venues.ibkr import IbkrSettings, IbkrVenue
from workers.connect import open_venue
from workers.fleet import load_fleet
from workers.rate_budget import DEFAULT_RATES, Rate, RedisRequestBudget, budget_key, gateway_key, rate_of

BYBIT_KEY, BYBIT_SECRET = "budget-bybit-key", "budget-bybit-secret"
ALPACA_KEY, ALPACA_SECRET = "budget-alpaca-key", "budget-alpaca-secret"
BYBIT = Credentials(Secret(BYBIT_KEY), Secret(BYBIT_SECRET))
ALPACA = Credentials(Secret(ALPACA_KEY), Secret(ALPACA_SECRET))
#: How late a request may reach the venue after its token was due (thread scheduling, the loopback hop) on a busy
#: machine. Only the per-second check allows for it; the check over the whole run needs no allowance.
LATENESS = 1.0


@pytest.fixture
def exchange() -> Iterator[FakeExchange]:
    with FakeExchange(bybit_keys={BYBIT_KEY: BYBIT_SECRET}, alpaca_keys={ALPACA_KEY: ALPACA_SECRET}) as fake:
        yield fake


def bybit(exchange: FakeExchange, budget: RequestBudget | None) -> BybitVenue:
    settings = BybitSettings(credentials=BYBIT, base_url=exchange.url, timeout_seconds=5, settle_coins=("USDT",))
    return BybitVenue(settings, budget=budget)


def alpaca(exchange: FakeExchange, budget: RequestBudget | None) -> AlpacaVenue:
    return AlpacaVenue(AlpacaSettings(credentials=ALPACA, base_url=exchange.url, timeout_seconds=5), budget=budget)


def hammer(workers: int, seconds: float, request: Callable[[int], None]) -> list[BaseException]:
    """``workers`` threads calling ``request(worker)`` until ``seconds`` are up; the errors they met."""
    deadline = time.monotonic() + seconds
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        while time.monotonic() < deadline:
            try:
                request(worker)
            except BaseException as error:  # reported by the test, not lost in a thread
                errors.append(error)
                return

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 30)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def most_in_any_window(arrivals: list[float], seconds: float) -> int:
    """The largest number of arrivals within any span of ``seconds``."""
    return max((sum(1 for t in arrivals[i:] if t < start + seconds) for i, start in enumerate(arrivals)), default=0)


def ceiling(rate: Rate, seconds: float) -> float:
    """What a token bucket lets through in any span of ``seconds``: the burst, and the rate over the span."""
    return rate.burst + float(rate.per_second) * seconds


def test_ten_bybit_adapters_on_one_key_stay_within_its_budget_together(exchange: FakeExchange, redis: Redis) -> None:
    rate = Rate(Decimal(10), 5)
    key = budget_key("bybit", BYBIT)
    venues = [bybit(exchange, RedisRequestBudget(redis, key, rate, max_wait=5)) for _ in range(10)]
    started = time.time()

    errors = hammer(
        10, 2.0, lambda n: venues[n].fills_between(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC))
    )

    arrivals = exchange.arrivals_of(BYBIT_KEY)
    assert errors == []
    assert len(arrivals) > rate.burst  # the workers did work, past the first burst
    # every request took a token before it was sent, so over the whole run the bucket is a hard ceiling
    assert len(arrivals) <= ceiling(rate, arrivals[-1] - started)
    # and in any one second, allowing for requests that reached the venue late
    assert most_in_any_window(arrivals, 1.0) <= ceiling(rate, 1.0 + LATENESS)


def test_alpaca_adapters_on_one_key_stay_within_its_budget_beside_a_bybit_key(
    exchange: FakeExchange, redis: Redis
) -> None:
    rate = Rate(Decimal(8), 4)
    alpaca_venues = [alpaca(exchange, RedisRequestBudget(redis, budget_key("alpaca", ALPACA), rate)) for _ in range(4)]
    bybit_venue = bybit(exchange, RedisRequestBudget(redis, budget_key("bybit", BYBIT), rate))
    started = time.time()

    def request(worker: int) -> None:
        if worker < 4:
            alpaca_venues[worker].fills_between(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC))
        else:
            bybit_venue.fills_between(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC))

    errors = hammer(5, 1.5, request)

    assert errors == []
    for key in (ALPACA_KEY, BYBIT_KEY):  # each key its own bucket: neither starves the other
        arrivals = exchange.arrivals_of(key)
        assert 0 < len(arrivals) <= ceiling(rate, arrivals[-1] - started), key


def test_a_spent_budget_fails_the_call_as_rate_limited_without_sending_anything(
    exchange: FakeExchange, redis: Redis
) -> None:
    budget = RedisRequestBudget(redis, budget_key("bybit", BYBIT), Rate(Decimal("0.1"), 1), max_wait=1)
    venue = bybit(exchange, budget)
    venue.fills_between(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC))  # the one token

    with pytest.raises(RateLimited) as raised:
        venue.fetch_snapshot(datetime.now(UTC))

    assert exchange.count() == 1
    assert raised.value.retry_after is not None and 5 < raised.value.retry_after <= 10


def test_a_waiting_take_reserves_its_token_and_a_refused_one_reserves_nothing(redis: Redis) -> None:
    slept: list[float] = []  # a token every 5 s: the waits below hold however slowly this machine runs the takes
    budget = RedisRequestBudget(redis, "recon:budget:test:x", Rate(Decimal("0.2"), 2), max_wait=7, sleep=slept.append)

    budget.take()
    budget.take()  # the burst: no wait
    budget.take()  # the next token is due in 5 s: reserved, waited for
    with pytest.raises(RateLimited) as first:
        budget.take()  # a second queued token would be 10 s away: refused
    with pytest.raises(RateLimited) as second:
        budget.take()  # and refusing reserved nothing: still 10 s away, not 15

    assert len(slept) == 1 and 4 < slept[0] <= 5
    assert first.value.retry_after is not None and second.value.retry_after is not None
    assert 7 < second.value.retry_after <= first.value.retry_after <= 10


def test_the_bucket_is_named_by_a_digest_of_the_venue_and_key_never_the_key(redis: Redis) -> None:
    key = budget_key("bybit", BYBIT)

    assert key.startswith("recon:budget:bybit:") and BYBIT_KEY not in key and BYBIT_SECRET not in key
    assert key == budget_key("bybit", Credentials(Secret(BYBIT_KEY), Secret("another-secret")))
    assert key != budget_key("bybit", ALPACA) and key != budget_key("alpaca", BYBIT)
    RedisRequestBudget(redis, key, DEFAULT_RATES["bybit"]).take()
    stored = b"".join(k + b"".join(redis.hgetall(k).values()) for k in redis.keys("*"))  # type: ignore[union-attr]
    assert BYBIT_KEY.encode() not in stored and BYBIT_SECRET.encode() not in stored


def test_redis_unreachable_is_coordination_unavailable_and_nothing_is_sent(exchange: FakeExchange) -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    venue = bybit(exchange, RedisRequestBudget(unreachable, budget_key("bybit", BYBIT), DEFAULT_RATES["bybit"]))

    with pytest.raises(CoordinationUnavailable, match="request budget"):
        venue.fetch_snapshot(datetime.now(UTC))

    assert exchange.count() == 0


def test_the_venue_defaults_keep_under_the_documented_limits() -> None:
    bybit_rate, alpaca_rate = rate_of("bybit", None, None), rate_of("alpaca", None, None)

    assert ceiling(bybit_rate, 1.0) <= 10  # Bybit: 10 requests a second per UID on its strictest endpoint we call
    assert ceiling(alpaca_rate, 60.0) <= 200  # Alpaca: 200 requests a minute per account
    assert rate_of("bybit", Decimal(20), 40) == Rate(Decimal(20), 40)


def write_fleet(tmp_path: Path, exchange: FakeExchange, extra: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(f"""
[bots.lxalgo.accounts.live]
venue = "bybit"
environment = "testnet"
base_url = "{exchange.url}"
api_key_env = "BUDGET_KEY"
api_secret_env = "BUDGET_SECRET"
{extra}
""")
    return path


def test_an_opened_venue_takes_from_its_keys_shared_budget_sized_by_the_fleet_file(
    exchange: FakeExchange, redis: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECON_REDIS_URL", REDIS_URL)
    environ = {"BUDGET_KEY": BYBIT_KEY, "BUDGET_SECRET": BYBIT_SECRET}
    config = load_fleet(write_fleet(tmp_path, exchange, "requests_per_second = 2\nburst = 3")).account("lxalgo", "live")

    venue = open_venue(config, environ=environ)
    venue.fetch_snapshot(datetime.now(UTC))

    stored = redis.hgetall(budget_key("bybit", BYBIT))
    assert stored and set(stored) == {b"tokens", b"at"}  # type: ignore[arg-type]
    monkeypatch.delenv("RECON_REDIS_URL")
    assert open_venue(config, environ=environ)._budget is UNLIMITED  # type: ignore[attr-defined]  # embedded default


@pytest.mark.parametrize("extra", ["requests_per_second = 0", "burst = 0", "burst = 1.5"])
def test_the_fleet_file_refuses_a_budget_that_cannot_let_a_request_through(
    exchange: FakeExchange, tmp_path: Path, extra: str
) -> None:
    with pytest.raises(
        FixConfiguration, match=r"table \[bots\.lxalgo\.accounts\.live\]: key '(requests_per_second|burst)'"
    ):
        load_fleet(write_fleet(tmp_path, exchange, extra))


def test_an_ibkr_call_takes_its_messages_from_the_gateways_budget_before_it_connects(redis: Redis) -> None:
    with FakeTws() as tws:
        tws.set_cash("USD", "1000")
        budget = RedisRequestBudget(redis, gateway_key("127.0.0.1", tws.port), Rate(Decimal("0.1"), 15), max_wait=1)
        venue = IbkrVenue(IbkrSettings(client_id=7, port=tws.port, timeout_seconds=5), budget=budget)
        venue.fetch_snapshot(datetime.now(UTC))  # 10 of the 15 tokens

        with pytest.raises(RateLimited):
            venue.fetch_snapshot(datetime.now(UTC))  # 5 left, the next one 10 s away: refused before connecting

        assert tws.connections == 1
    assert gateway_key("127.0.0.1", 4002) == gateway_key("127.0.0.1", 4002) != gateway_key("127.0.0.1", 4001)
    assert ceiling(rate_of("ibkr", None, None), 1.0) <= 50  # IB: 50 messages a second from all API clients together


def test_several_tokens_are_taken_together_or_not_at_all(redis: Redis) -> None:
    slept: list[float] = []  # a token every 5 s, as above
    budget = RedisRequestBudget(redis, "recon:budget:test:n", Rate(Decimal("0.2"), 5), max_wait=7, sleep=slept.append)

    budget.take(3)  # from the burst of 5
    budget.take(3)  # 2 left: the third is due in 5 s, reserved with them
    with pytest.raises(RateLimited) as refused:
        budget.take(3)  # 20 s away (one owed, three wanted): refused, and none of the three taken

    assert len(slept) == 1 and 4 < slept[0] <= 5
    assert refused.value.retry_after is not None and 15 < refused.value.retry_after <= 20
