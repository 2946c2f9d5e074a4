"""API credentials never show: not in reprs, logs (even at DEBUG), errors, their kept causes, run reports or a
failed run's error.

The venues run with the real SDK clients against the loopback fake exchange, under distinctive keys that the tests
then look for everywhere the outside world can see, as sent and URL-encoded. The fake echoes the key in its error
messages (``echo_credentials``), as Bybit repeats the signed string and a gateway may name the key it refused.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from fake_exchange import FakeExchange
from pybit.unified_trading import HTTP

from models import history
from models.database import Database
from reconciliation.errors import AuthenticationFailed, ReconError, RequestRejected
from reconciliation.values import InstrumentKey, Order, Side
from tests.conftest import Clock, reconcile
from venues.alpaca import AlpacaSettings, AlpacaVenue
from venues.bybit import BybitSettings, BybitVenue
from venues.credentials import Credentials, Secret, credentials_from
from workers.connect import open_venue
from workers.fleet import AccountConfig, load_fleet
from workers.reports import run_json

BYBIT_KEY, BYBIT_SECRET = "BYBITKEY7f3a/9c0d+e", "BYBITSECRETe81d44b2"
ALPACA_KEY, ALPACA_SECRET = "PKALPACA5b6e/1f93+x", "ALPACASECRET0c7d2a55"
SECRETS = tuple({form for value in (BYBIT_KEY, BYBIT_SECRET, ALPACA_KEY, ALPACA_SECRET)
                 for form in (value, quote(value, safe=""), quote_plus(value))})  # fmt: skip
VENUES = ("bybit", "alpaca")


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        shown = str(text)
        for secret in SECRETS:
            assert secret not in shown, f"{secret!r} shown in {shown[:300]!r}"


def chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every cause and context behind it."""
    link: BaseException | None = error
    while link is not None:
        yield link
        link = link.__cause__ or link.__context__


def everything_about(error: BaseException) -> list[str]:
    """What a log line, a traceback or a report could show of an error and its causes."""
    shown = ["".join(traceback.format_exception(error))]
    for link in chain(error):
        shown += [str(link), repr(link), repr(link.args), repr(vars(link))]
    return shown


def reachable(error: BaseException, depth: int = 8) -> Iterator[object]:
    """Every object reachable from ``error`` through causes, arguments, attributes and containers."""
    seen: set[int] = set()
    todo: list[tuple[object, int]] = [(error, 0)]
    while todo:
        value, level = todo.pop()
        if id(value) in seen or level > depth:
            continue
        seen.add(id(value))
        yield value
        children: list[object] = []
        if isinstance(value, BaseException):
            children += [value.__cause__, value.__context__, *value.args]
        if isinstance(value, Mapping):
            children += [*value.keys(), *value.values()]
        elif isinstance(value, list | tuple | set | frozenset):
            children += list(value)
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            children += list(vars(value).values())
        todo += [(child, level + 1) for child in children if child is not None]


def assert_nothing_to_leak(error: BaseException) -> None:
    """No text of the error or its causes shows a credential, and no request, session or header set is kept."""
    assert_no_secret(*everything_about(error))
    for value in reachable(error):
        assert not isinstance(value, requests.PreparedRequest | requests.Request | requests.Session), repr(value)
        assert not isinstance(value, HTTP | TradingClient), type(value)
        if isinstance(value, str | bytes):
            assert_no_secret(value)
    for link in list(chain(error))[1:]:
        assert link.__traceback__ is None  # the SDK's frames hold the request headers as locals


@pytest.fixture
def keyed(exchange: FakeExchange) -> Iterator[FakeExchange]:
    """The fake exchange knowing the distinctive keys, with a little of everything to read."""
    exchange.bybit_keys[BYBIT_KEY] = BYBIT_SECRET
    exchange.alpaca_keys[ALPACA_KEY] = ALPACA_SECRET
    exchange.echo_credentials = True
    exchange.add_bybit_position("linear", "BTCUSDT", "Buy", "1", "60000", "61000")
    exchange.add_bybit_execution("linear", "BTCUSDT", "Buy", "1", "60000", exec_time=now() - timedelta(hours=1))
    exchange.add_alpaca_position("AAPL", "10", "190", "191")
    exchange.add_alpaca_fill("AAPL", "10", "190", "buy", transaction_time=now() - timedelta(hours=1))
    yield exchange


def now() -> datetime:
    return datetime.now(UTC)


def venue(name: str, url: str, timeout: float = 1) -> BybitVenue | AlpacaVenue:
    if name == "bybit":
        credentials = Credentials(Secret(BYBIT_KEY), Secret(BYBIT_SECRET))
        return BybitVenue(BybitSettings(credentials=credentials, base_url=url, timeout_seconds=timeout,
                                        settle_coins=("USDT",)))  # fmt: skip
    credentials = Credentials(Secret(ALPACA_KEY), Secret(ALPACA_SECRET))
    return AlpacaVenue(AlpacaSettings(credentials=credentials, base_url=url, timeout_seconds=timeout))


# --- the Secret type --------------------------------------------------------------------------------------------


def test_a_secret_shows_as_stars_however_it_is_printed() -> None:
    secret = Secret(BYBIT_SECRET)

    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret, "%r" % secret, format(secret)]  # noqa: UP031

    assert shown == ["'***'"] * len(shown)
    assert_no_secret(repr([secret]), str({"secret": secret}), repr((secret,)))
    assert secret.reveal() == BYBIT_SECRET


def test_credentials_show_neither_key_nor_secret() -> None:
    credentials = Credentials(Secret(BYBIT_KEY), Secret(BYBIT_SECRET))

    assert repr(credentials) == "Credentials(key='***', secret='***')"
    assert_no_secret(str(credentials), f"{credentials}")


def test_a_missing_variable_is_named_without_any_value() -> None:
    environ = {"LX_KEY": BYBIT_KEY}

    with pytest.raises(AuthenticationFailed) as caught:
        credentials_from(environ, "LX_KEY", "LX_SECRET")

    assert "LX_SECRET" in str(caught.value)
    assert_no_secret(*everything_about(caught.value))


@pytest.mark.parametrize("environ", [{"LX_SECRET": BYBIT_SECRET}, {"LX_KEY": "", "LX_SECRET": BYBIT_SECRET}],
                         ids=["unset", "empty"])  # fmt: skip
def test_a_missing_or_empty_key_variable_is_named_and_the_secret_is_not_shown(environ: dict[str, str]) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        credentials_from(environ, "LX_KEY", "LX_SECRET")

    assert "LX_KEY" in str(caught.value)
    assert_no_secret(*everything_about(caught.value))


def test_credentials_are_read_from_the_named_variables() -> None:
    credentials = credentials_from({"LX_KEY": BYBIT_KEY, "LX_SECRET": BYBIT_SECRET}, "LX_KEY", "LX_SECRET")

    assert (credentials.key.reveal(), credentials.secret.reveal()) == (BYBIT_KEY, BYBIT_SECRET)
    assert_no_secret(repr(credentials))


# --- the adapters -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VENUES)
def test_venue_settings_and_description_show_no_credentials(keyed: FakeExchange, name: str) -> None:
    adapter = venue(name, keyed.url)

    assert "***" in repr(adapter.settings)
    assert_no_secret(repr(adapter.settings), str(adapter.settings), adapter.describe(), repr(adapter))


FAULTS = [
    pytest.param("revoked", "", id="revoked-key"),
    pytest.param("fail", "http500", id="http500"),
    pytest.param("fail", "http429", id="http429"),
    pytest.param("fail", "malformed", id="malformed"),
    pytest.param("fail", "non_json_error", id="html502"),
    pytest.param("fail", "slow", id="timeout"),
]


@pytest.mark.parametrize(("how", "fault"), FAULTS)
@pytest.mark.parametrize("name", VENUES)
def test_debug_logs_and_errors_of_failing_and_succeeding_fetches_show_no_credentials(
    keyed: FakeExchange, caplog: pytest.LogCaptureFixture, name: str, how: str, fault: str
) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = venue(name, keyed.url, timeout=0.3)
    path = "/v5/position/list" if name == "bybit" else "/v2/positions"

    snapshot = adapter.fetch_snapshot(now())
    if how == "revoked":
        keyed.revoke(BYBIT_KEY if name == "bybit" else ALPACA_KEY)
    else:
        keyed.fail(path, fault, delay=1.0)
    with pytest.raises(ReconError) as caught:
        adapter.fetch_snapshot(now())

    assert len(snapshot.positions) == 1
    assert caplog.records, "DEBUG logging captured nothing: the check would prove nothing"
    assert_no_secret(caplog.text, *(record.getMessage() for record in caplog.records))
    assert_nothing_to_leak(caught.value)


@pytest.mark.parametrize("name", VENUES)
def test_order_lookups_and_placements_log_no_credentials(
    keyed: FakeExchange, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = venue(name, keyed.url)
    key = InstrumentKey("linear", "BTCUSDT") if name == "bybit" else InstrumentKey("us_equity", "AAPL")

    adapter.place_order(key, Side.SELL, Decimal(1), True, "recon-1")
    adapter.lookup_order(Order("recon-1", None, key, Side.SELL, Decimal(1), None))
    with pytest.raises(ReconError) as caught:
        adapter.place_order(key, Side.SELL, Decimal(1), True, "recon-1")  # the same client id again: refused

    assert_no_secret(caplog.text)
    assert_nothing_to_leak(caught.value)


# --- what a venue echoes ----------------------------------------------------------------------------------------


def test_the_fake_really_echoes_the_key_so_the_checks_below_prove_something(keyed: FakeExchange) -> None:
    keyed.revoke(ALPACA_KEY)
    client = TradingClient(ALPACA_KEY, ALPACA_SECRET, paper=True, raw_data=True, url_override=keyed.url)
    client._session.trust_env = False

    with pytest.raises(APIError) as caught:
        client.get_account()

    assert ALPACA_KEY in str(caught.value) and quote(ALPACA_KEY, safe="") in str(caught.value)


def test_an_alpaca_refusal_naming_the_key_is_shown_without_it(keyed: FakeExchange) -> None:
    keyed.revoke(ALPACA_KEY)

    with pytest.raises(AuthenticationFailed) as caught:
        venue("alpaca", keyed.url).fetch_snapshot(now())

    assert str(caught.value).startswith("alpaca HTTP 401: key *** is not authorized")
    assert_nothing_to_leak(caught.value)


def test_a_bybit_params_error_repeating_the_signed_string_is_shown_without_the_key(keyed: FakeExchange) -> None:
    adapter = venue("bybit", keyed.url)

    with pytest.raises(RequestRejected) as caught:  # the fake allows order link ids of 36 characters at most
        adapter.place_order(InstrumentKey("linear", "BTCUSDT"), Side.BUY, Decimal(1), False, "x" * 40)

    assert "bybit retCode 10001: params error" in str(caught.value) and "origin_string[" in str(caught.value)
    assert "***" in str(caught.value)
    assert_nothing_to_leak(caught.value)


def test_pybit_logging_an_error_body_that_echoes_the_key_logs_it_masked(
    keyed: FakeExchange, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    keyed.fail("/v5/position/list", "http500")

    with pytest.raises(ReconError):
        venue("bybit", keyed.url).fetch_snapshot(now())

    assert "500 Service Error origin_string[***]" in caplog.text
    assert_no_secret(caplog.text)


# --- kept causes ------------------------------------------------------------------------------------------------

CAUSES: list[tuple[str, Callable[[FakeExchange], Any]]] = [
    ("timeout", lambda fake: fake.fail("*", "slow", delay=1.0)),
    ("disconnect", lambda fake: fake.fail("*", "disconnect")),
    ("http500", lambda fake: fake.fail("*", "http500")),
    ("http429", lambda fake: fake.fail("*", "http429")),
    ("malformed", lambda fake: fake.fail("*", "malformed")),
    ("html502", lambda fake: fake.fail("*", "non_json_error")),
    ("list-body", lambda fake: setattr(fake, "mutate", lambda path, document: [])),
    ("deep-body", lambda fake: setattr(fake, "mutate", lambda path, document: b"[" * 50_000)),
    ("revoked", lambda fake: (fake.revoke(BYBIT_KEY), fake.revoke(ALPACA_KEY))),
]


@pytest.mark.parametrize(("fault", "cause"), CAUSES, ids=[fault for fault, _ in CAUSES])
@pytest.mark.parametrize("name", VENUES)
def test_kept_causes_hold_no_request_headers_or_credentials(
    keyed: FakeExchange, name: str, fault: str, cause: Callable[[FakeExchange], Any]
) -> None:
    cause(keyed)

    with pytest.raises(ReconError) as caught:
        venue(name, keyed.url, timeout=0.3).fetch_snapshot(now())

    if (name, fault) != ("alpaca", "list-body"):  # alpaca-py hands a list on: our parsing refuses it, no cause
        assert caught.value.__cause__ is not None
    assert_nothing_to_leak(caught.value)


@pytest.mark.parametrize("name", VENUES)
def test_a_refused_connection_keeps_no_request_either(name: str) -> None:
    with pytest.raises(ReconError) as caught:
        venue(name, "http://127.0.0.1:9").fetch_snapshot(now())

    assert isinstance(caught.value.__cause__, requests.ConnectionError)
    assert caught.value.__cause__.request is None and caught.value.__cause__.response is None
    assert_nothing_to_leak(caught.value)


def test_an_alpaca_api_error_kept_as_cause_still_says_its_status(keyed: FakeExchange) -> None:
    keyed.fail("/v2/positions", "http500")

    with pytest.raises(ReconError) as caught:
        venue("alpaca", keyed.url).fetch_snapshot(now())

    kept = caught.value.__cause__
    assert isinstance(kept, APIError) and kept.status_code == 500 and kept.request is None


# --- reprs ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VENUES)
def test_the_sdk_objects_are_private_and_show_no_credentials(keyed: FakeExchange, name: str) -> None:
    adapter = venue(name, keyed.url)
    sdk = adapter._session if isinstance(adapter, BybitVenue) else adapter._client

    assert repr(adapter) == f"<{type(adapter).__name__} {adapter.describe()}>"
    assert not any(isinstance(value, HTTP | TradingClient) for value in vars(adapter).values() if value is not sdk)
    assert not [name for name, value in vars(adapter).items() if value is sdk and not name.startswith("_")]
    assert_no_secret(repr(adapter), str(vars(adapter)), repr(sdk), str(sdk), str(vars(sdk)))
    adapter.fetch_snapshot(now())  # the SDK still has what it needs
    assert_no_secret(repr(sdk), str(vars(sdk)))


# --- runs and their reports -------------------------------------------------------------------------------------


def fleet_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, url: str) -> AccountConfig:
    key, secret = (BYBIT_KEY, BYBIT_SECRET) if name == "bybit" else (ALPACA_KEY, ALPACA_SECRET)
    monkeypatch.setenv("RECON_TEST_API_KEY", key)
    monkeypatch.setenv("RECON_TEST_API_SECRET", secret)
    extra = 'environment = "testnet"\nsettle_coins = ["USDT"]\n' if name == "bybit" else ""
    path = tmp_path / "fleet.toml"
    path.write_text(
        f'[bots.lxalgo.accounts.paper]\nvenue = "{name}"\nbase_url = "{url}"\n'
        'api_key_env = "RECON_TEST_API_KEY"\napi_secret_env = "RECON_TEST_API_SECRET"\ntimeout_seconds = 1\n' + extra,
        encoding="utf-8",
    )
    return load_fleet(path).account("lxalgo", "paper")


@pytest.mark.parametrize("fails", [True, False], ids=["failed-run", "finished-run"])
@pytest.mark.parametrize("name", VENUES)
def test_a_runs_report_error_and_logs_show_no_credentials(
    database: Database,
    clock: Clock,
    keyed: FakeExchange,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    name: str,
    fails: bool,
) -> None:
    caplog.set_level(logging.DEBUG)
    config = fleet_account(tmp_path, monkeypatch, name, keyed.url)
    if fails:
        keyed.revoke(BYBIT_KEY if name == "bybit" else ALPACA_KEY)

    result = reconcile(database, config, clock=clock)

    assert (result.status == "failed") is fails
    with database.sessions() as session:
        report = json.dumps(run_json(history.run_record(session, result.run_id)), default=str)
    assert json.loads(report)["error"] == result.error
    if fails:
        assert result.error is not None and "fetch failed" in result.error and name in result.error
    assert_no_secret(report, result.error, repr(result), repr(config), caplog.text)


def test_opening_a_venue_without_its_variables_names_them_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = fleet_account(tmp_path, monkeypatch, "bybit", "http://127.0.0.1:9")

    with pytest.raises(AuthenticationFailed) as caught:
        open_venue(config, environ={"RECON_TEST_API_KEY": BYBIT_KEY})

    assert "RECON_TEST_API_SECRET" in str(caught.value)
    assert_no_secret(*everything_about(caught.value))
