"""What the API process holds: its settings and tokens, the database, Redis (None on the embedded default), the
Celery app it sends tasks through, and the fleet file. One per app, made when the app is made."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from redis import Redis

from api.auth import Token, parse_tokens
from api.errors import not_found
from models.database import Database
from workers.fleet import AccountConfig, Fleet, fleet_of
from workers.pipeline import utc_now
from workers.runtime import database_of, redis_client
from workers.settings import Settings

if TYPE_CHECKING:
    from workers.celery import CeleryApp


@dataclass
class ApiContext:
    """The API's dependencies. ``coordinated`` is False on the embedded default (no ``RECON_REDIS_URL``): reads
    work, and a trigger runs the reconciliation in this process, one at a time."""

    settings: Settings
    clock: Callable[[], datetime] = field(default=utc_now)
    in_process_runs: threading.Lock = field(default_factory=threading.Lock)

    @cached_property
    def tokens(self) -> tuple[Token, ...]:
        """The configured tokens (checked when the app is made)."""
        configured = self.settings.api_tokens
        return parse_tokens(configured.get_secret_value() if configured else None)

    @property
    def coordinated(self) -> bool:
        """True when Redis and the workers are configured (``RECON_REDIS_URL`` set)."""
        return "redis_url" in self.settings.model_fields_set

    @cached_property
    def database(self) -> Database:
        """This process's database (its schema checked on first use)."""
        return database_of(self.settings)

    @cached_property
    def redis(self) -> Redis | None:
        """This process's Redis client, or None on the embedded default."""
        return redis_client(self.settings) if self.coordinated else None

    @cached_property
    def celery(self) -> CeleryApp:
        """The Celery app tasks are sent through (by name: the API never imports the tasks)."""
        from workers.celery import create_app  # noqa: PLC0415 - importing it makes a default app: only when sending

        return create_app(self.settings)

    def fleet(self) -> Fleet | None:
        """The fleet file (re-read when it changes), or None when there is none."""
        return fleet_of(self.settings)

    def account_config(self, bot: str, account: str) -> AccountConfig:
        """The fleet file's configuration of one account; 404 when the fleet file does not name it."""
        fleet = self.fleet()
        for config in fleet.accounts if fleet else ():
            if config.bot == bot and config.account == account:
                return config
        raise not_found(f"no account {bot}/{account} in the fleet file")
