"""What a bot meets when something is wrong: every failure of ``BotClient`` is a ``ReconError`` naming what to do
(fix the configuration, or retry later), never a library's exception for the bot to parse."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from reconciliation.errors import CoordinationUnavailable, DatabaseUnavailable, FixConfiguration, ReconError
from workers.bot_client import BotClient
from workers.settings import Settings

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
UNREACHABLE_POSTGRES = "postgresql://postgres@127.0.0.1:1/x"

CALLS: dict[str, Callable[[BotClient], object]] = {
    "request_reconciliation": lambda client: client.request_reconciliation("lxalgo", "paper"),
    "is_halted": lambda client: client.is_halted("lxalgo", "paper"),
    "last_positions": lambda client: client.last_positions("lxalgo", "paper"),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_url_that_is_not_redis_is_a_configuration_error_for_every_call(call: str, settings: Settings) -> None:
    with pytest.raises(FixConfiguration, match="RECON_REDIS_URL: not a Redis URL: 'garbage'"):
        CALLS[call](BotClient(settings.model_copy(update={"redis_url": SecretStr("garbage")})))


@pytest.mark.parametrize("call", ["request_reconciliation", "last_positions"])
def test_redis_down_is_retry_later_naming_redis(call: str, settings: Settings) -> None:
    client = BotClient(Settings(database_url=settings.database_url, fleet=settings.fleet, redis_url=UNREACHABLE_REDIS))

    with pytest.raises(CoordinationUnavailable, match="redis unavailable"):
        CALLS[call](client)


def test_the_database_down_is_retry_later_naming_the_database(settings: Settings) -> None:
    client = BotClient(Settings(database_url=UNREACHABLE_POSTGRES, fleet=settings.fleet, redis_url=settings.redis_url))

    with pytest.raises(DatabaseUnavailable, match="database unavailable"):
        client.is_halted("lxalgo", "paper")


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda c: c.request_reconciliation("nobody", "paper"), "nobody"),
        (lambda c: c.request_reconciliation("lxalgo", "paper", reason="because"), "unknown reason 'because'"),
        (lambda c: c.last_positions("lxalgo", "pa per"), "account"),
        (lambda c: c.is_halted("ghost", "paper"), "no books for ghost/paper"),
    ],
)
def test_bad_input_is_a_configuration_error_naming_it(
    call: Callable[[BotClient], object], says: str, settings: Settings
) -> None:
    with pytest.raises(FixConfiguration, match=says):
        call(BotClient(settings))


def test_no_fleet_file_is_a_configuration_error(settings: Settings, tmp_path: Path) -> None:
    client = BotClient(settings.model_copy(update={"fleet": str(tmp_path / "missing.toml")}))

    with pytest.raises(ReconError, match="no fleet file"):
        client.request_reconciliation("lxalgo", "paper")
