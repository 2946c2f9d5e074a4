"""Process settings from the environment (``RECON_*``), one object for the CLI, the workers and beat.

URLs may carry passwords and tokens (the database, Redis, the message broker, the alert webhook), and the API's
tokens are secrets themselves, so they are ``SecretStr``: they print as ``**********`` in reprs, logs,
``celery inspect conf`` and Flower, and code that needs the value says so with ``.get_secret_value()``; a refused
value is never echoed (``hide_input_in_errors``).

The message broker is Redis (``RECON_REDIS_URL``) unless ``RECON_BROKER_URL`` names another: RabbitMQ
(``amqp://``, ``amqps://``) or a separate Redis. Redis stays required either way, for the locks, the results,
beat's schedule and the bots' caches.

The time limits must nest, or long tasks are redelivered and run twice: soft limit < hard limit < lock TTL
< Redis visibility timeout, and the visibility timeout exceeds the hard limit plus the longest retry delay.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reconciliation.errors import FixConfiguration
from reconciliation.names import shown

REDIS_BROKER_SCHEMES = ("redis", "rediss")
RABBITMQ_SCHEMES = ("amqp", "amqps")


class Settings(BaseSettings):
    """Everything a process needs to know that is not in the fleet file."""

    model_config = SettingsConfigDict(env_prefix="RECON_", extra="ignore", hide_input_in_errors=True)

    database_url: SecretStr = SecretStr("sqlite:///recon.db")  # the embedded default
    fleet: str | None = None
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    broker_url: SecretStr | None = None  # None: the broker is RECON_REDIS_URL's Redis
    task_soft_time_limit: int = 240
    task_time_limit: int = 300
    lock_ttl: int = 360
    visibility_timeout: int = 3600
    retry_max: int = 5
    retry_backoff_max: int = 600
    coalesce_seconds: int = 5
    recover_seconds: int = 60
    order_max_age_seconds: int = 60
    result_expires: int = 3600
    beat_lock_timeout: int = Field(default=30, ge=5)
    events_maxlen: int = 10_000
    alert_webhook_url: SecretStr | None = None
    log_format: Literal["text", "json"] = "text"
    api_tokens: SecretStr | None = None  # "name:role:token,…" (api.auth); never printed
    metrics_token: SecretStr | None = None  # when set, GET /metrics needs it as a bearer token
    stale_after_intervals: float = Field(default=2.0, gt=0)  # an account is stale after this many intervals

    @field_validator("broker_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, url: object) -> object:
        return None if isinstance(url, str) and not url.strip() else url  # RECON_BROKER_URL= (Compose's default)

    @field_validator("broker_url")
    @classmethod
    def _a_broker(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            scheme, separator, _ = url.get_secret_value().partition("://")
            if not separator or scheme.lower() not in REDIS_BROKER_SCHEMES + RABBITMQ_SCHEMES:
                what = f"scheme {shown(scheme)}" if separator else "no scheme"
                raise ValueError(f"not a message broker URL ({what}): use redis://, rediss://, amqp:// or amqps://")
        return url

    @property
    def broker(self) -> str:
        """The message broker's URL (with its password: for Celery only)."""
        return (self.broker_url or self.redis_url).get_secret_value()

    @property
    def broker_is_rabbitmq(self) -> bool:
        """True when the message broker is RabbitMQ (an ``amqp://`` or ``amqps://`` URL), not Redis."""
        return self.broker.partition("://")[0].lower() in RABBITMQ_SCHEMES

    @model_validator(mode="after")
    def _limits_nest(self) -> Settings:
        if not self.task_soft_time_limit < self.task_time_limit < self.lock_ttl < self.visibility_timeout:
            raise ValueError(
                "time limits must nest: RECON_TASK_SOFT_TIME_LIMIT < RECON_TASK_TIME_LIMIT < RECON_LOCK_TTL "
                "< RECON_VISIBILITY_TIMEOUT"
            )
        if self.visibility_timeout <= self.task_time_limit + self.retry_backoff_max:
            raise ValueError("RECON_VISIBILITY_TIMEOUT must exceed RECON_TASK_TIME_LIMIT + RECON_RETRY_BACKOFF_MAX")
        return self


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment, with ``overrides``; a bad value is ``FixConfiguration`` naming its
    variable (``invalid setting RECON_LOCK_TTL: ...``)."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        first = error.errors()[0]
        where = "_".join(str(part) for part in first["loc"]).upper()
        says = str(first["msg"]).removeprefix("Value error, ")
        raise FixConfiguration(f"invalid setting {'RECON_' + where if where else 'RECON_*'}: {says}") from None
