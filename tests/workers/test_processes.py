"""The runtime's processes as operators start them: beat drives runs on schedule, Flower demands a login,
and ``recon reconcile --queue`` waits for the workers' report."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from redis import Redis
from sqlalchemy import select

import tasks.reconcile  # noqa: F401 - registers the tasks on the test app
from cli.app import main
from cli.demo import seed_books
from models import Run
from models.database import Database
from tests.conftest import free_port, stop_process_groups
from workers.books import BooksClient
from workers.celery import create_app
from workers.fleet import load_fleet
from workers.schedule import QUEUES
from workers.settings import Settings

REDIS_URL = os.environ.get("RECON_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fleet_every_second(example_fleet: Path, postgres_url: str) -> Iterator[Path]:
    """The example fleet with lxalgo/paper reconciled every second, its books written; Redis emptied."""
    text = example_fleet.read_text().replace(
        'state_file = "venues/lxalgo_paper.json"\n', 'state_file = "venues/lxalgo_paper.json"\ninterval_seconds = 1\n'
    )
    example_fleet.write_text(text)
    database = Database(postgres_url)
    fleet = load_fleet(example_fleet)
    config = fleet.account("lxalgo", "paper")
    seed_books(BooksClient(database, fleet=fleet), config, example_fleet.parent / "books" / "lxalgo_paper.json")
    database.dispose()
    Redis.from_url(REDIS_URL).flushdb()
    yield example_fleet
    Redis.from_url(REDIS_URL).flushdb()


def launch(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers", *args], env={**os.environ, **env},
                            cwd=cwd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip


def test_beat_sends_each_accounts_reconciliation_on_schedule(
    fleet_every_second: Path, postgres_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=postgres_url, fleet=str(fleet_every_second), redis_url=REDIS_URL)
    env = {"RECON_DATABASE_URL": postgres_url, "RECON_FLEET": str(fleet_every_second),
           "RECON_REDIS_URL": REDIS_URL, "PYTHONPATH": str(ROOT)}  # fmt: skip
    beat = launch(["beat", f"--schedule={tmp_path / 'beat-schedule'}", "--loglevel=WARNING"], env, ROOT)
    try:
        with start_worker(create_app(settings), pool="threads", concurrency=1, perform_ping_check=False,
                          queues=list(QUEUES), loglevel="CRITICAL", shutdown_timeout=30):  # fmt: skip
            database = Database(postgres_url)
            deadline = time.monotonic() + 60
            reasons: list[str] = []
            while time.monotonic() < deadline and reasons.count("schedule") < 2:
                with database.sessions() as session:
                    reasons = [r.reason for r in session.scalars(select(Run).where(Run.status != "running"))]
                time.sleep(0.3)
            database.dispose()
    finally:
        stop_process_groups(beat)

    assert reasons.count("schedule") >= 2


def get(url: str, login: str | None = None) -> int:
    request = urllib.request.Request(url)
    if login:
        request.add_header("Authorization", "Basic " + base64.b64encode(login.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def procfile_line(process: str) -> str:
    """The command the Procfile gives ``process``, as honcho runs it (through the shell)."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{process}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {process} in the Procfile")


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.123", 9))  # no packet is sent: this only picks the outgoing interface
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


def test_flower_as_the_procfile_starts_it_asks_for_the_login_listens_on_loopback_and_keeps_its_files_private(
    fleet_every_second: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, "RECON_FLEET": str(fleet_every_second), "RECON_REDIS_URL": REDIS_URL,
           "PYTHONPATH": str(ROOT), "FLOWER_BASIC_AUTH": "ops:s3cret", "FLOWER_PORT": str(port),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip
    flower = subprocess.Popen(["sh", "-c", procfile_line("flower")], env=env, cwd=tmp_path, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline:
            try:
                status = get(f"http://127.0.0.1:{port}/")
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        assert status == 401
        assert get(f"http://127.0.0.1:{port}/", "ops:wrong") == 401
        assert get(f"http://127.0.0.1:{port}/", "ops:s3cret") == 200
        outside = non_loopback_address()
        if outside is not None:
            with pytest.raises((urllib.error.URLError, ConnectionError)):
                get(f"http://{outside}:{port}/")
        files = list(tmp_path.glob("flower.db*"))
        assert files, "Flower keeps its state in ./flower.db*"
        assert {oct(path.stat().st_mode & 0o777) for path in files} == {"0o600"}
    finally:
        stop_process_groups(flower)


def test_reconcile_queue_sends_the_run_to_the_workers_and_prints_its_report(
    fleet_every_second: Path, postgres_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECON_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("RECON_DATABASE_URL", postgres_url)
    monkeypatch.setenv("RECON_FLEET", str(fleet_every_second))
    settings = Settings(database_url=postgres_url, fleet=str(fleet_every_second), redis_url=REDIS_URL)
    with (
        start_worker(create_app(settings), pool="threads", concurrency=1, perform_ping_check=False,
                     queues=list(QUEUES), loglevel="CRITICAL", shutdown_timeout=30),
        pytest.raises(SystemExit) as done,
    ):  # fmt: skip
        main(["--config", str(fleet_every_second), "--db", postgres_url, "reconcile", "lxalgo", "paper",
                  "--queue", "--wait", "60", "--json"])  # fmt: skip

    report = json.loads(capsys.readouterr().out)
    assert (done.value.code, report["status"], report["bot"], report["account"]) == (1, "resolved", "lxalgo", "paper")
