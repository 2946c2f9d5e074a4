"""Connections a worker process keeps: one database engine and one Redis client per URL, made after fork."""

from __future__ import annotations

from functools import cache

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


def forget_connections() -> None:
    """Drop connections inherited from a parent process (call in each forked worker): new ones are made on use."""
    database_for.cache_clear()
    redis_for.cache_clear()
