"""Settings: the time limits must nest (checked whenever a process starts), and URLs never print."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from workers.settings import Settings

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
        alert_webhook_url="https://hooks.example/services/TOKEN9012",  # type: ignore[arg-type]
    )

    shown = f"{settings!r} {settings} {settings.model_dump()}"

    assert all(secret not in shown for secret in ("DBPW1234", "REDISPW5678", "TOKEN9012"))
    assert settings.database_url.get_secret_value() == "postgresql://recon:DBPW1234@db/recon"
