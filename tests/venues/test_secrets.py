"""API credentials never show: not in reprs, logs (even at DEBUG), errors, run reports or a failed run's error.

The venues run with the real SDK clients against the loopback fake exchange, under distinctive keys that the tests
then look for everywhere the outside world can see.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fake_exchange import FakeExchange

from models import history
from models.database import Database
from reconciliation.errors import AuthenticationFailed, ReconError
from reconciliation.values import InstrumentKey, Order, Side
from tests.conftest import Clock
from venues.alpaca import AlpacaSettings, AlpacaVenue
from venues.bybit import BybitSettings, BybitVenue
from venues.credentials import Credentials, Secret, credentials_from
from workers.connect import open_venue
from workers.fleet import AccountConfig, load_fleet
from workers.orchestrator import reconcile
from workers.report import run_json

BYBIT_KEY, BYBIT_SECRET = "BYBITKEY7f3a9c0d", "BYBITSECRETe81d44b2"
ALPACA_KEY, ALPACA_SECRET = "PKALPACA5b6e1f93", "ALPACASECRET0c7d2a55"
SECRETS = (BYBIT_KEY, BYBIT_SECRET, ALPACA_KEY, ALPACA_SECRET)
VENUES = ("bybit", "alpaca")


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        shown = str(text)
        for secret in SECRETS:
            assert secret not in shown, f"{secret!r} shown in {shown[:300]!r}"


def everything_about(error: BaseException) -> list[str]:
    """What a log line, a traceback or a report could show of an error and its causes."""
    shown = ["".join(traceback.format_exception(error))]
    link: BaseException | None = error
    while link is not None:
        shown += [str(link), repr(link), repr(link.args)]
        link = link.__cause__ or link.__context__
    return shown


@pytest.fixture
def keyed(exchange: FakeExchange) -> Iterator[FakeExchange]:
    """The fake exchange knowing the distinctive keys, with a little of everything to read."""
    exchange.bybit_keys[BYBIT_KEY] = BYBIT_SECRET
    exchange.alpaca_keys[ALPACA_KEY] = ALPACA_SECRET
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
    assert_no_secret(*everything_about(caught.value))


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

    assert_no_secret(caplog.text, *everything_about(caught.value))


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
