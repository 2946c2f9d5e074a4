"""``venue = "ibkr"`` in the fleet file, opening it, and ``recon venue check`` on it as a user runs it.

The port says whether an account is live (IBKR's convention: TWS 7496 live / 7497 paper, IB Gateway 4001 live /
4002 paper); an unknown port counts as live, and a label the port contradicts is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_tws import FakeTws, free_port, option, stock

from reconciliation.errors import FixConfiguration
from venues.ibkr import IbkrVenue
from workers.connect import open_venue
from workers.fleet import AccountConfig, load_fleet

pytestmark = pytest.mark.timeout(60)

RECON = Path(sys.executable).parent / "recon"


def fleet_file(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(f'[bots.lxalgo.accounts.ib]\nvenue = "ibkr"\n{table}\n', encoding="utf-8")
    return path


def one_account(tmp_path: Path, table: str) -> AccountConfig:
    (config,) = load_fleet(fleet_file(tmp_path, table)).accounts
    return config


def refusal(tmp_path: Path, table: str) -> str:
    with pytest.raises(FixConfiguration) as caught:
        load_fleet(fleet_file(tmp_path, table))
    return str(caught.value)


def test_an_ibkr_table_needs_only_a_client_id(tmp_path: Path) -> None:
    config = one_account(tmp_path, "client_id = 3")

    venue = open_venue(config)

    assert isinstance(venue, IbkrVenue)
    settings = venue.settings
    assert (settings.host, settings.port, settings.client_id, settings.account, settings.cash_currency) == (
        "127.0.0.1",
        4002,
        3,
        None,
        "USD",
    )
    assert (config.endpoint and config.endpoint.url, config.is_live) == ("ibkr://127.0.0.1:4002", False)


def test_every_key_of_the_table_reaches_the_adapter(tmp_path: Path) -> None:
    config = one_account(
        tmp_path,
        'host = "gateway.internal"\nport = 4001\nclient_id = 12\naccount = "U7654321"\nenvironment = "live"\n'
        'timeout_seconds = 2.5\nfill_lookback_days = 3\ncash_currency = "EUR"\nallow_live_orders = true\n'
        "max_order_notional = 5000",
    )

    settings = open_venue(config).settings  # type: ignore[attr-defined]

    assert (settings.host, settings.port, settings.client_id, settings.account, settings.environment) == (
        "gateway.internal",
        4001,
        12,
        "U7654321",
        "live",
    )
    assert (settings.timeout_seconds, settings.fill_lookback.days, settings.cash_currency) == (2.5, 3, "EUR")
    assert config.is_live


@pytest.mark.parametrize(
    ("environment", "port", "live"),
    [("paper", 7497, False), ("live", 7496, True), ("paper", 4002, False), ("live", 4001, True), ("paper", 4010, True)],
)
def test_the_port_decides_whether_the_account_is_live(tmp_path: Path, environment: str, port: int, live: bool) -> None:
    config = one_account(tmp_path, f'client_id = 1\nenvironment = "{environment}"\nport = {port}')

    assert config.is_live is live


@pytest.mark.parametrize(
    ("environment", "port", "known_as"),
    [("paper", 7496, "live"), ("paper", 4001, "live"), ("live", 4002, "paper"), ("live", 7497, "paper")],
)
def test_a_label_the_port_contradicts_is_refused(tmp_path: Path, environment: str, port: int, known_as: str) -> None:
    message = refusal(tmp_path, f'client_id = 1\nenvironment = "{environment}"\nport = {port}')

    assert "table [bots.lxalgo.accounts.ib]" in message
    assert f"environment = '{environment}' but port {port} is the {known_as} port" in message


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ("client_id = 1\nport = 70000", "key 'port'"),
        ('client_id = 1\nport = "4002"', "key 'port'"),
        ("port = 4002", "missing key 'client_id'"),
        ('client_id = 1\nenvironment = "mainnet"', "key 'environment'"),
        ('client_id = 1\napi_key_env = "IB_KEY"', "unknown key 'api_key_env'"),
        ('client_id = 1\naccount = "U123 4"', "key 'account'"),
        ('client_id = 1\ncash_currency = "usd"', "key 'cash_currency'"),
        ("client_id = 1\ntimeout_seconds = 0", "key 'timeout_seconds'"),
    ],
    ids=["port-range", "port-text", "no-client-id", "bybit-environment", "api-key", "account", "currency", "timeout"],
)
def test_a_bad_table_is_refused_naming_the_key(tmp_path: Path, table: str, says: str) -> None:
    message = refusal(tmp_path, table)

    assert says in message and "bots.lxalgo.accounts.ib" in message


# --- recon venue check, as a subprocess -----------------------------------------------------------------------------


@pytest.fixture
def tws() -> Iterator[FakeTws]:
    with FakeTws() as fake:
        yield fake


def venue_check(tmp_path: Path, port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    fleet = fleet_file(tmp_path, f"port = {port}\nclient_id = 5\ntimeout_seconds = 1")
    return recon(tmp_path, "--config", str(fleet), "venue", "check", "lxalgo", "ib", *extra)


def recon(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``recon`` run as a user runs it, without our test settings (nothing of it needs a database or Redis)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RECON_")}
    return subprocess.run(
        [str(RECON), *args],
        capture_output=True,
        text=True,
        timeout=45,
        cwd=tmp_path,
        env=env,
        check=False,
    )


def test_venue_check_shows_what_the_gateway_reports(tws: FakeTws, tmp_path: Path) -> None:
    tws.set_cash("USD", "25031.17")
    tws.add_position(stock(265598, "AAPL"), "10", "190.5")
    tws.add_order(stock(265598, "AAPL"), "SELL", "5", order_id=11, lmt_price="200", order_ref="take-profit")

    shown = venue_check(tmp_path, tws.port)
    as_json = venue_check(tmp_path, tws.port, "--json")

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.replace("\n", " ").strip() == (
        f"ibkr paper at 127.0.0.1:{tws.port} (client id 5) (LIVE): 1 positions, 1 open orders, "
        "0 fills in the lookback window, cash 25031.17 USD"
    )
    document = json.loads(as_json.stdout)
    assert (as_json.returncode, document["ok"], document["live"], document["cash"]) == (
        0,
        True,
        True,  # a port IBKR's convention does not name counts as live
        {"currency": "USD", "balance": "25031.17"},
    )


def test_venue_check_of_a_gateway_that_is_down_exits_3_with_the_reason(tmp_path: Path) -> None:
    port = free_port()

    outcome = venue_check(tmp_path, port)

    assert outcome.returncode == 3
    assert f"connection refused at 127.0.0.1:{port}" in outcome.stderr
    assert outcome.stderr.startswith("recon: error: ") and outcome.stderr.count("\n") == 1
    assert "Traceback" not in outcome.stdout + outcome.stderr


def test_venue_check_of_a_gateway_that_never_answers_exits_3_within_its_timeouts(tws: FakeTws, tmp_path: Path) -> None:
    tws.handshake = "silent"

    started = time.monotonic()
    outcome = venue_check(tmp_path, tws.port)

    assert outcome.returncode == 3
    assert "no answer to the API handshake" in outcome.stderr
    assert time.monotonic() - started < 15  # timeout_seconds = 1: a few seconds of waiting, plus start-up


def test_venue_check_of_an_account_the_login_does_not_manage_exits_2(tws: FakeTws, tmp_path: Path) -> None:
    fleet = fleet_file(tmp_path, f'port = {tws.port}\nclient_id = 5\naccount = "U0000001"\ntimeout_seconds = 1')

    outcome = recon(tmp_path, "--config", str(fleet), "venue", "check", "lxalgo", "ib")

    assert outcome.returncode == 2, outcome.stderr
    assert "account 'U0000001' is not managed by the login" in outcome.stderr


def test_venue_snapshot_captures_an_option_with_its_multiplier_as_a_sim_state(tws: FakeTws, tmp_path: Path) -> None:
    tws.set_cash("USD", "100")
    tws.add_position(option(512345678, "AAPL  261218C00150000"), "-2", "315", market_price="3.2")
    fleet = fleet_file(tmp_path, f"port = {tws.port}\nclient_id = 5\ntimeout_seconds = 1")

    outcome = recon(tmp_path, "--config", str(fleet), "venue", "snapshot", "lxalgo", "ib")

    assert outcome.returncode == 0, outcome.stderr
    (position,) = json.loads(outcome.stdout)["positions"]
    assert {k: position[k] for k in ("category", "symbol", "side", "qty", "avg_price", "multiplier")} == {
        "category": "option",
        "symbol": "AAPL261218C00150000",
        "side": "short",
        "qty": "2",
        "avg_price": "3.15",
        "multiplier": "100",
    }


def test_the_documented_ibkr_table_loads(tmp_path: Path) -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "venues.md").read_text(encoding="utf-8")
    section = guide.split("## Interactive Brokers (ibkr)", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "fleet.toml").write_text(example, encoding="utf-8")

    (config,) = load_fleet(tmp_path / "fleet.toml").accounts

    assert (config.venue, config.is_live, config.endpoint and config.endpoint.url) == (
        "ibkr",
        True,
        "ibkr://127.0.0.1:4001",
    )
