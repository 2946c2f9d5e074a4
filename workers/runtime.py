"""Connections a worker process keeps: one database engine and one Redis client per URL, made after fork."""

from __future__ import annotations

from functools import cache

from redis import Redis

from models.database import Database, open_database
from workers.settings import Settings


@cache
def database_for(url: str) -> Database:
    """This process's database for ``url`` (schema checked once)."""
    return open_database(url)


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


def forget_connections() -> None:
    """Drop connections inherited from a parent process (call in each forked worker): new ones are made on use."""
    database_for.cache_clear()
    redis_for.cache_clear()
