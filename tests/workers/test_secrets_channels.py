"""No secret leaves the process: every channel an operator, a log shipper or an attacker can read is searched.

The fleet runs on real processes (a prefork worker with JSON logs, Flower as the Procfile starts it, ``celery
inspect conf``, the ``recon`` command) against the loopback exchange driven by the real SDKs, which echoes the
API key in its error messages as the venues do. Distinctive values stand in for the venue keys and secrets,
the database password (Postgres here trusts loopback, so any password connects) and the alert webhook's
token. Afterwards stdout, stderr, the JSON logs, every Postgres row, every Redis key and value (the broker,
the result backend, the bots' caches), Flower's API and the inspected configuration hold none of them.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url

from models.database import Database
from tests.conftest import REDIS_URL, free_port, stop_process_groups
from tests.venues.fake_exchange import FakeExchange
from workers.celery import create_app
from workers.schedule import RECONCILE_TASK
from workers.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BYBIT_KEY, BYBIT_SECRET = "BYBITKEYq7w1e5r9", "BYBITSECRETz3x8c6v2"
ALPACA_KEY, ALPACA_SECRET = "PKALPACAm4n7b2v5", "ALPACASECRETk9j3h6g1"
DB_PASSWORD = "DBPASSWORDp0o9i8u7"
WEBHOOK_TOKEN = "HOOKTOKENy6t5r4e3"
SECRETS = (BYBIT_KEY, BYBIT_SECRET, ALPACA_KEY, ALPACA_SECRET, DB_PASSWORD, WEBHOOK_TOKEN)
TIMEOUT = 60


class Webhook(ThreadingHTTPServer):
    """A Slack-compatible webhook on loopback; the token is in its path, as in a real webhook URL."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/{WEBHOOK_TOKEN}"


@pytest.fixture
def exchange() -> Iterator[FakeExchange]:
    """The loopback exchange knowing the distinctive keys (and a revoked pair), echoing keys in its errors."""
    with FakeExchange(bybit_keys={BYBIT_KEY: BYBIT_SECRET}, alpaca_keys={ALPACA_KEY: ALPACA_SECRET}) as fake:
        fake.echo_credentials = True
        fake.add_bybit_position("linear", "BTCUSDT", "Buy", "1", "60000", "61000")
        fake.add_alpaca_position("AAPL", "10", "190", "191")
        fake.add_alpaca_fill("AAPL", "10", "190", "buy", transaction_time=datetime.now(UTC) - timedelta(hours=1))
        yield fake


def fleet_file(folder: Path, exchange: FakeExchange) -> Path:
    """A Bybit and an Alpaca account with good keys, and one of each whose keys the venue refuses."""
    tables = []
    for account, venue, prefix in (("bybit", "bybit", "GOOD"), ("alpaca", "alpaca", "GOOD"),
                                   ("bybitbad", "bybit", "BAD"), ("alpacabad", "alpaca", "BAD")):  # fmt: skip
        settle = 'settle_coins = ["USDT"]\n' if venue == "bybit" else ""
        tables.append(f"""
[bots.lxalgo.accounts.{account}]
venue = "{venue}"
environment = "{"testnet" if venue == "bybit" else "paper"}"
base_url = "{exchange.url}"
api_key_env = "{prefix}_{venue.upper()}_KEY"
api_secret_env = "{prefix}_{venue.upper()}_SECRET"
timeout_seconds = 2
grace_seconds = 0
{settle}[bots.lxalgo.accounts.{account}.policy]
minor = "sync_to_broker"
moderate = "sync_to_broker"
critical = "sync_to_broker"
[bots.lxalgo.accounts.{account}.policy.by_kind]
missing_in_ledger = "sync_to_broker"
""")
    path = folder / "fleet.toml"
    path.write_text("".join(tables))
    return path


def environment(fleet: Path, database_url: str, webhook: Webhook) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "RECON_DATABASE_URL": database_url,
        "RECON_REDIS_URL": REDIS_URL,
        "RECON_FLEET": str(fleet),
        "RECON_LOG_FORMAT": "json",
        "RECON_ALERT_WEBHOOK_URL": webhook.url,
        "RECON_RETRY_MAX": "0",
        "FLOWER_BASIC_AUTH": "ops:flowerpass",
        "GOOD_BYBIT_KEY": BYBIT_KEY,
        "GOOD_BYBIT_SECRET": BYBIT_SECRET,
        "GOOD_ALPACA_KEY": ALPACA_KEY,
        "GOOD_ALPACA_SECRET": ALPACA_SECRET,
        "BAD_BYBIT_KEY": BYBIT_KEY + "x",
        "BAD_BYBIT_SECRET": BYBIT_SECRET,
        "BAD_ALPACA_KEY": ALPACA_KEY + "x",
        "BAD_ALPACA_SECRET": ALPACA_SECRET,
    }


def procfile_flower(port: int) -> str:
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("flower:"))
    return f"export FLOWER_PORT={port}; " + line.split(":", 1)[1].strip()


def flower_get(port: int, path: str) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    request.add_header("Authorization", "Basic " + base64.b64encode(b"ops:flowerpass").decode())
    with urllib.request.urlopen(request, timeout=15) as response:
        return str(response.read().decode())


def wait_for_flower(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            flower_get(port, "/healthcheck")
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("Flower did not start")


def postgres_rows(database_url: str) -> list[str]:
    """Every row of every table of the schema, as JSON text."""
    database = Database(database_url)
    with database.engine.connect() as connection:
        tables = connection.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        ).scalars()
        rows = [
            row
            for table in list(tables)
            for row in connection.execute(text(f'SELECT row_to_json(t)::text FROM "{table}" t')).scalars()
        ]
    database.dispose()
    return rows


def redis_contents(redis: Redis) -> list[str]:
    """Every key of the test database with its value, whatever its type."""
    shown: list[str] = []
    for key in redis.keys("*"):
        kind = redis.type(key).decode()
        if kind == "string":
            value: Any = redis.get(key)
        elif kind == "hash":
            value = redis.hgetall(key)
        elif kind == "list":
            value = redis.lrange(key, 0, -1)
        elif kind == "set":
            value = redis.smembers(key)
        elif kind == "zset":
            value = redis.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = redis.xrange(key)
        else:
            value = kind
        shown.append(f"{key!r} {value!r}")
    return shown


def test_no_key_password_or_token_reaches_any_channel(
    exchange: FakeExchange, postgres_url: str, redis: Redis, tmp_path: Path
) -> None:
    database_url = make_url(postgres_url).set(password=DB_PASSWORD).render_as_string(hide_password=False)
    fleet = fleet_file(tmp_path, exchange)
    webhook = Webhook()
    env = environment(fleet, database_url, webhook)
    logs = tmp_path / "worker.log"
    port = free_port()
    command = [sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool=prefork", "--concurrency=1",
               "--queues=recon.default,recon.bybit,recon.alpaca", "--without-gossip", "--without-mingle",
               "--loglevel=DEBUG", "-n", "secrets@%h"]  # fmt: skip
    with logs.open("wb") as log:
        worker = subprocess.Popen(command, env=env, cwd=tmp_path, start_new_session=True, stdout=log, stderr=log)
        flower = subprocess.Popen(
            ["sh", "-c", procfile_flower(port)], env=env, cwd=tmp_path, start_new_session=True, stdout=log, stderr=log
        )
        try:
            app = create_app(Settings(database_url=database_url, fleet=str(fleet), redis_url=REDIS_URL))
            results = [
                app.send_task(RECONCILE_TASK, args=["lxalgo", account, "manual"], queue=f"recon.{venue}")
                for account, venue in (
                    ("bybit", "bybit"),
                    ("alpaca", "alpaca"),
                    ("bybitbad", "bybit"),
                    ("alpacabad", "alpaca"),
                )
            ]
            outcomes = [result.get(timeout=TIMEOUT, propagate=False) for result in results]
            deadline = time.monotonic() + TIMEOUT
            while not webhook.bodies and time.monotonic() < deadline:  # the alerts follow-up posts
                time.sleep(0.2)
            wait_for_flower(port)
            flower_answers = [flower_get(port, path) for path in ("/api/workers?refresh=1", "/api/tasks", "/metrics")]
            inspected = subprocess.run(
                [sys.executable, "-m", "celery", "-A", "workers", "inspect", "conf", "--json", "--timeout=10"],
                check=False,
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
            cli = [
                subprocess.run(
                    [sys.executable, "-m", "cli", *args],
                    check=False,
                    env=env,
                    cwd=tmp_path,
                    capture_output=True,
                    text=True,
                    timeout=TIMEOUT,
                )
                for args in (
                    ["runs", "--json"],
                    ["report", "1", "--json"],
                    ["venue", "check", "lxalgo", "bybitbad"],
                    ["venue", "check", "lxalgo", "alpacabad"],
                    ["fleet", "--json"],
                )
            ]
        finally:
            stop_process_groups(flower)
            stop_process_groups(worker)

    finished = sorted(run["status"] for outcome in outcomes if isinstance(outcome, dict) for run in outcome["runs"])
    refused = [str(outcome) for outcome in outcomes if isinstance(outcome, Exception)]
    assert finished == ["resolved", "resolved"], outcomes
    assert len(refused) == 2 and all("refused the credentials" in r or "401" in r for r in refused), refused
    assert sorted(
        json.loads(row)["status"] for row in postgres_rows(database_url) if '"epoch"' in row and '"reason"' in row
    ) == ["failed", "failed", "resolved", "resolved"]  # the bad keys' runs, recorded
    assert webhook.bodies, "the alerts reached the webhook"
    assert inspected.returncode == 0 and "broker_url" in inspected.stdout, inspected.stderr
    worker_log = logs.read_text(errors="replace")
    assert '"level": "WARNING"' in worker_log, "the worker logs JSON"
    channels = {
        "worker stdout/stderr (JSON logs)": [worker_log],
        "Postgres rows": postgres_rows(database_url),
        "Redis keys and values (broker, results, caches)": redis_contents(redis),
        "Flower's API": flower_answers,
        "celery inspect conf": [inspected.stdout, inspected.stderr],
        "recon stdout/stderr": [part for run in cli for part in (run.stdout, run.stderr)],
        "the webhook's bodies": [body.decode() for body in webhook.bodies],
    }
    found = {
        (channel, secret)
        for channel, texts in channels.items()
        for item in texts
        for secret in SECRETS
        if secret in item
    }
    assert found == set()
    assert any("refused the credentials" in run.stdout + run.stderr or "401" in run.stdout + run.stderr for run in cli)
