"""Connections a worker process keeps: one database engine and one Redis client per URL, made after fork; and the
checks that Redis and the message broker answer, made before a command relies on them."""

from __future__ import annotations

from functools import cache

from kombu.connection import Connection
from kombu.exceptions import OperationalError
from redis import Redis
from redis.exceptions import RedisError

from models.database import Database, open_database, without_password
from reconciliation.errors import CoordinationUnavailable, FixConfiguration
from reconciliation.names import shown
from workers.settings import Settings


@cache
def database_for(url: str) -> Database:
    """This process's database for ``url`` (schema checked once). No pre-ping: a stale pooled connection after a
    database restart fails one attempt of a task, which is retried, instead of a round trip on every checkout."""
    return open_database(url, pre_ping=False)


@cache
def redis_for(url: str) -> Redis:
    """This process's Redis client for ``url``; commands time out instead of hanging."""
    return Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30)


def database_of(settings: Settings) -> Database:
    """This process's database for the URL the settings name."""
    return database_for(settings.database_url.get_secret_value())


def redis_of(settings: Settings) -> Redis:
    """This process's Redis client for the URL the settings name."""
    return redis_for(settings.redis_url.get_secret_value())


REDIS_SCHEMES = ("redis", "rediss", "unix")


def redis_client(settings: Settings) -> Redis:
    """This process's Redis for the settings; a URL that is not Redis's is ``FixConfiguration``."""
    url = settings.redis_url.get_secret_value()
    scheme, separator, _ = url.partition("://")
    if not separator or scheme not in REDIS_SCHEMES:
        raise FixConfiguration(f"RECON_REDIS_URL: not a Redis URL: {shown(without_password(url))}")
    try:
        return redis_for(url)
    except ValueError:
        raise FixConfiguration(f"RECON_REDIS_URL: not a Redis URL: {shown(without_password(url))}") from None


def checked_redis(settings: Settings) -> Redis:
    """This process's Redis for the settings, checked to answer: a URL that is not Redis's is a configuration
    error, one that does not answer ``CoordinationUnavailable`` (at once, not after Celery's 20 s of retries)."""
    redis = redis_client(settings)
    url = settings.redis_url.get_secret_value()
    try:
        redis.ping()
    except RedisError as error:
        where = without_password(url)
        raise CoordinationUnavailable(f"Redis unavailable at {where}: {str(error).strip().splitlines()[0]}") from error
    return redis


BROKER_CHECK_SECONDS = 5


def broker_errors(url: str) -> tuple[type[BaseException], ...]:
    """What a failing message broker at ``url`` raises through Celery and kombu: kombu's ``OperationalError`` and the
    transport's own connection and channel errors (RabbitMQ refusing a login or a vhost is not wrapped)."""
    transport = Connection(url)  # type: ignore[no-untyped-call]  # kombu is untyped
    return (OperationalError, *transport.connection_errors, *transport.channel_errors)


def broker_unavailable(url: str, error: BaseException) -> CoordinationUnavailable:
    """The one-line error for a message broker at ``url`` that failed with ``error`` (no password shown)."""
    return CoordinationUnavailable(f"the message broker is unavailable at {without_password(url)}: {first_line(error)}")


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def checked_broker(settings: Settings) -> None:
    """Check that the message broker answers, when it is not ``RECON_REDIS_URL``'s Redis (``checked_redis`` checks
    that one): one that does not is ``CoordinationUnavailable`` at once, not after Celery's retries."""
    url = settings.broker
    if url == settings.redis_url.get_secret_value():
        return
    connection = Connection(url, connect_timeout=BROKER_CHECK_SECONDS)  # type: ignore[no-untyped-call]
    try:
        connection.ensure_connection(  # type: ignore[no-untyped-call]
            max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_CHECK_SECONDS
        )
    except broker_errors(url) as error:
        raise broker_unavailable(url, error) from error
    finally:
        connection.release()  # type: ignore[no-untyped-call]


def forget_connections() -> None:
    """Drop connections inherited from a parent process (call in each forked worker): new ones are made on use."""
    database_for.cache_clear()
    redis_for.cache_clear()
