"""Fixtures for venue tests: a loopback fake exchange, and the real SDK clients pointed at it.

``exchange`` is a started ``FakeExchange`` (Bybit v5 + Alpaca v2 on 127.0.0.1, random port), stopped after the
test. ``bybit_session`` and ``alpaca_client`` are the real ``pybit`` and ``alpaca-py`` clients aimed at it with the
default keys, set up never to sleep inside the library (one attempt, no built-in retry codes, short timeouts).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alpaca.trading.client import TradingClient
from fake_exchange import DEFAULT_ALPACA_KEYS, DEFAULT_BYBIT_KEYS, FakeExchange
from pybit.unified_trading import HTTP

from venues.bybit import NEVER_RETRY

BYBIT_KEY, BYBIT_SECRET = next(iter(DEFAULT_BYBIT_KEYS.items()))
ALPACA_KEY, ALPACA_SECRET = next(iter(DEFAULT_ALPACA_KEYS.items()))


@pytest.fixture
def exchange() -> Iterator[FakeExchange]:
    """A started fake exchange; shut down (socket closed, slow handlers woken) after the test."""
    with FakeExchange() as fake:
        yield fake


def make_bybit_session(
    exchange: FakeExchange, key: str = BYBIT_KEY, secret: str = BYBIT_SECRET, timeout: float = 2
) -> HTTP:
    """A real pybit session against the fake: one attempt, no retry codes (pybit sleeps on them), no proxies."""
    session = HTTP(api_key=key, api_secret=secret, max_retries=1, retry_codes=NEVER_RETRY, timeout=timeout)
    session.endpoint = exchange.url
    session.client.trust_env = False
    return session


def make_alpaca_client(exchange: FakeExchange, key: str = ALPACA_KEY, secret: str = ALPACA_SECRET) -> TradingClient:
    """A real alpaca-py TradingClient against the fake, raw dicts out, no proxies, no 3 s retry sleeps."""
    client = TradingClient(key, secret, paper=True, raw_data=True, url_override=exchange.url)
    client._session.trust_env = False
    client._retry = 0  # alpaca-py has no public knob: 429/504 are otherwise retried 3 times with 3 s sleeps
    return client


@pytest.fixture
def bybit_session(exchange: FakeExchange) -> HTTP:
    return make_bybit_session(exchange)


@pytest.fixture
def alpaca_client(exchange: FakeExchange) -> TradingClient:
    return make_alpaca_client(exchange)
