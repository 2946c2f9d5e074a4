"""Stop the test run early, with one clear message, when the Postgres, Redis or RabbitMQ the tests need cannot be
reached."""

from __future__ import annotations

import os
import sys

import psycopg
from kombu.connection import Connection
from redis import Redis
from redis.exceptions import RedisError

url = os.environ.get("RECON_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
try:
    psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=5).close()
except psycopg.Error as error:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    sys.exit(
        f"recon tests: Postgres is not reachable at RECON_TEST_DATABASE_URL={url}: {first_line}\n"
        "Start Postgres (e.g. `pg_ctlcluster 15 main start`) or point RECON_TEST_DATABASE_URL at one; "
        "the database tests are never skipped."
    )

redis_url = os.environ.get("RECON_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
try:
    Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5).ping()
except RedisError as error:
    sys.exit(
        f"recon tests: Redis is not reachable at RECON_TEST_REDIS_URL={redis_url}: {error}\n"
        "Start Redis (e.g. `redis-server --daemonize yes`) or point RECON_TEST_REDIS_URL at one; "
        "the worker tests are never skipped."
    )

rabbitmq_url = os.environ.get("RECON_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
try:
    with Connection(rabbitmq_url, connect_timeout=5) as connection:
        connection.ensure_connection(max_retries=1)
except Exception as error:  # refused, wrong password, unknown vhost: all mean the same to the person running this
    shown = Connection(rabbitmq_url).as_uri()  # the password masked
    sys.exit(
        f"recon tests: RabbitMQ is not reachable at RECON_TEST_RABBITMQ_URL={shown}: {error}\n"
        "Start RabbitMQ (e.g. `rabbitmq-server -detached`) or point RECON_TEST_RABBITMQ_URL at one; "
        "the broker tests are never skipped."
    )
