"""Settings: the time limits must nest (checked whenever a process starts), and URLs never print."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from reconciliation.errors import FixConfiguration
from workers.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("limits", "says"),
    [
        ({"task_soft_time_limit": 300, "task_time_limit": 300}, "time limits must nest"),
        ({"task_time_limit": 400}, "time limits must nest"),
        ({"lock_ttl": 4000}, "time limits must nest"),
        (
            {"retry_backoff_max": 3400},
            "RECON_VISIBILITY_TIMEOUT must exceed RECON_TASK_TIME_LIMIT + RECON_RETRY_BACKOFF_MAX",
        ),
    ],
)
def test_limits_that_do_not_nest_are_refused_naming_the_variables(limits: dict[str, int], says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(**limits)  # type: ignore[arg-type]
    assert says in str(refused.value)


def test_a_worker_with_limits_that_do_not_nest_refuses_to_start(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RECON_LOCK_TTL": "100"}
    command = [sys.executable, "-m", "celery", "-A", "workers", "worker", "--loglevel=WARNING"]
    started = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert started.returncode != 0
    assert "time limits must nest" in started.stderr


def test_urls_with_passwords_and_tokens_never_print() -> None:
    settings = Settings(
        database_url="postgresql://recon:DBPW1234@db/recon",  # type: ignore[arg-type]
        redis_url="redis://:REDISPW5678@cache:6379/0",  # type: ignore[arg-type]
        broker_url="amqp://recon:MQPW3456@mq:5672/recon",  # type: ignore[arg-type]
        alert_webhook_url="https://hooks.example/services/TOKEN9012",  # type: ignore[arg-type]
    )

    shown = f"{settings!r} {settings} {settings.model_dump()}"

    assert all(secret not in shown for secret in ("DBPW1234", "REDISPW5678", "MQPW3456", "TOKEN9012"))
    assert settings.database_url.get_secret_value() == "postgresql://recon:DBPW1234@db/recon"


@pytest.mark.parametrize(
    ("broker_url", "broker", "rabbitmq"),
    [
        (None, "redis://cache:6379/0", False),  # the default: Redis is the broker too
        ("rediss://other:6380/1", "rediss://other:6380/1", False),
        ("amqp://recon:pw@mq:5672/recon", "amqp://recon:pw@mq:5672/recon", True),
        ("AMQPS://mq//", "AMQPS://mq//", True),
    ],
)
def test_the_broker_is_redis_unless_recon_broker_url_names_another(
    broker_url: str | None, broker: str, rabbitmq: bool
) -> None:
    settings = Settings(redis_url="redis://cache:6379/0", broker_url=broker_url)  # type: ignore[arg-type]

    assert (settings.broker, settings.broker_is_rabbitmq) == (broker, rabbitmq)


USE = "redis://, rediss://, amqp:// or amqps://"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://user:PW7890@mq/", "not a message broker URL (scheme 'http')"),
        ("sqs://user:PW7890@", "not a message broker URL (scheme 'sqs')"),
        ("mq.example:PW7890", "not a message broker URL (no scheme)"),
    ],
)
def test_a_broker_url_of_another_kind_is_refused_in_one_line_without_its_password(url: str, says: str) -> None:
    with pytest.raises(FixConfiguration) as refused:
        load_settings(broker_url=url)

    assert str(refused.value) == f"invalid setting RECON_BROKER_URL: {says}: use {USE}"
    with pytest.raises(ValidationError) as raw:
        Settings(broker_url=url)  # type: ignore[arg-type]
    assert "PW7890" not in str(raw.value), "nor does the raw validation error echo it"
