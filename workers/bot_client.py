"""What bots import: ask for a reconciliation, read the halt flag, restore positions at start-up.

    from workers.bot_client import BotClient
    client = BotClient()                               # settings from RECON_* (Redis, database, fleet)
    client.request_reconciliation("lxalgo", "live", reason="large_fill")
    if client.is_halted("lxalgo", "live"): ...
    positions = client.last_positions("lxalgo", "live")  # {"linear:BTCUSDT:0": {"qty": "0.5", ...}}

Requests are sent by task name (bots never import the tasks) and coalesce: any number of requests for one
account within ``RECON_COALESCE_SECONDS`` queue one run.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from celery import Celery

from models.accounts import find_account
from reconciliation.errors import FixConfiguration
from reconciliation.names import check_name, shown
from reconciliation.plan import RECONCILE_REASONS
from workers.celery import create_app
from workers.coalescing import account_key, redis_errors
from workers.fleet import fleet_of
from workers.runtime import database_of, redis_client
from workers.settings import Settings, load_settings
from workers.triggers import trigger_run


class BotClient:
    """A bot's view of reconciliation, over Redis and the database.

    Every failure is a ``ReconError`` (``reconciliation.errors``): ``FixConfiguration`` for bad settings or
    input, ``RetryLater`` (``CoordinationUnavailable``, ``DatabaseUnavailable``) when Redis, the broker or the
    database does not answer. Nothing else escapes for a bot to parse.
    """

    def __init__(self, settings: Settings | None = None, app: Celery | None = None) -> None:
        self.settings = settings or load_settings()
        self.redis = redis_client(self.settings)
        self.app = app or create_app(self.settings)

    def request_reconciliation(self, bot: str, account: str, reason: str = "large_fill") -> bool:
        """Queue a run of the account unless one is already queued; True when this call queued it."""
        if reason not in RECONCILE_REASONS:
            raise FixConfiguration(f"unknown reason {shown(reason)}: use one of {', '.join(RECONCILE_REASONS)}")
        check_name(bot, "bot")
        check_name(account, "account")
        fleet = fleet_of(self.settings)
        if fleet is None:
            raise FixConfiguration("no fleet file: set RECON_FLEET")
        return trigger_run(self.redis, self.app, fleet.account(bot, account), reason, self.settings).queued

    def is_halted(self, bot: str, account: str) -> bool:
        """True when reconciliation or an operator halted the account: open no new risk."""
        database = database_of(self.settings)
        with database.reading() as session:
            return find_account(session, bot, account).halted

    def last_positions(self, bot: str, account: str) -> dict[str, dict[str, Any]]:
        """The positions of the last committed run, per instrument key (amounts as decimal strings)."""
        check_name(bot, "bot")
        check_name(account, "account")
        with redis_errors():
            cache: dict[bytes, bytes] = self.redis.hgetall(f"{account_key(bot, account)}:positions")  # type: ignore[assignment]
        return {key.decode(): json.loads(value) for key, value in cache.items()}


def request_reconciliation(bot: str, account: str, reason: str = "large_fill") -> bool:
    """``BotClient().request_reconciliation`` with settings from the environment."""
    return _default_client().request_reconciliation(bot, account, reason)


def is_halted(bot: str, account: str) -> bool:
    """``BotClient().is_halted`` with settings from the environment."""
    return _default_client().is_halted(bot, account)


@cache
def _default_client() -> BotClient:
    return BotClient()
