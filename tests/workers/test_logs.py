"""Worker logs name the bot, account, run and task of every line about a run: as JSON fields, or at the end of a
text line."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from redis import Redis

from tests.workers.test_worker_kill import wait_for
from workers.celery import create_app
from workers.logs import JsonFormatter, TaskContext
from workers.schedule import RECONCILE_TASK
from workers.settings import Settings

REDIS_URL = os.environ.get("RECON_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[2]


def test_a_record_with_context_is_one_json_line_with_those_fields() -> None:
    record = logging.LogRecord("workers.orchestrator", logging.INFO, __file__, 1, "run %s", ("finished",), None)
    record.bot, record.account, record.run_id, record.task_id = "lxalgo", "live", 42, "t-1"

    line = JsonFormatter().format(record)

    assert "\n" not in line
    document = json.loads(line)
    assert {k: document[k] for k in ("level", "message", "bot", "account", "run_id", "task_id")} == {
        "level": "INFO",
        "message": "run finished",
        "bot": "lxalgo",
        "account": "live",
        "run_id": 42,
        "task_id": "t-1",
    }
    assert document["time"].endswith("Z")


def test_outside_a_task_no_task_id_is_invented() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)

    assert TaskContext().filter(record)
    assert "task_id" not in json.loads(JsonFormatter().format(record))


# --- a real worker's log, as operators read it ----------------------------------------------------------------------


RECONCILE, FOLLOW_UPS = "reconcile", ("alerts", "send_orders", "backfill")


def is_task_line(logger: str, text: str, *tasks: str) -> bool:
    """True when ``text`` is what a task of ``tasks`` logs about itself (Celery's ``celery.app.trace`` line ``Task
    recon.<task>[<id>] succeeded ...``, written in the pool process while the task is current)."""
    return logger == "celery.app.trace" and any(f"Task recon.{task}[" in text for task in tasks)


def of_the_run(logger: str, text: str) -> bool:
    """True for a line the run itself writes: the pipeline's, and Celery's about the reconcile task."""
    return logger == "workers.pipeline" or is_task_line(logger, text, RECONCILE)


def text_logger(line: str) -> str:
    """The logger of a text log line (``<date> <time> <LEVEL> <logger>: <message>``)."""
    fields = line.split(" ", 4)
    return fields[3].rstrip(":") if len(fields) > 3 else ""


def worker_log(fleet: Path, database_url: str, log_format: str, log_file: Path) -> list[str]:
    """The lines a prefork worker writes to stderr while serving one triggered run of lxalgo/paper."""
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    env = {**os.environ, "RECON_DATABASE_URL": database_url, "RECON_FLEET": str(fleet), "RECON_REDIS_URL": REDIS_URL,
           "RECON_LOG_FORMAT": log_format, "PYTHONPATH": str(ROOT)}  # fmt: skip
    with log_file.open("wb") as sink:
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool=prefork",
                                   "--concurrency=1", "--queues=recon.sim,recon.default", "--without-gossip",
                                   "--without-mingle", "-n", f"logs-{log_format}@%h", "--loglevel=INFO"],
                                  env=env, cwd=ROOT, start_new_session=True, stdout=sink, stderr=sink)  # fmt: skip
        try:
            app = create_app(Settings(database_url=database_url, fleet=str(fleet), redis_url=REDIS_URL))
            wait_for(lambda: app.control.inspect(timeout=1).active_queues(), 60)
            outcome = app.send_task(RECONCILE_TASK, args=["lxalgo", "paper", "large_fill"], queue="recon.sim")
            outcome.get(timeout=60)
            # the pool process logs the task's success after storing its result: let it, before the whole group stops
            wait_for(lambda: f"{outcome.id}] succeeded in" in log_file.read_text(errors="replace"), 60)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
            redis.flushdb()
    return log_file.read_text().splitlines()


def test_every_json_line_about_a_run_names_bot_account_run_and_task(
    settings: Settings, tmp_path: Path, postgres_url: str
) -> None:
    lines = worker_log(Path(str(settings.fleet)), postgres_url, "json", tmp_path / "worker.log")

    records = [json.loads(line) for line in lines if line.startswith("{")]
    about_the_run = [r for r in records if of_the_run(r["logger"], r["message"])]
    assert [r["message"].split(":")[0] for r in about_the_run][:2] == ["run started", "run finished"]
    for record in about_the_run:
        assert (record["bot"], record["account"]) == ("lxalgo", "paper"), record
        assert record["task_id"], record
    run_ids = {r["run_id"] for r in about_the_run if r["logger"] == "workers.pipeline"}
    assert len(run_ids) == 1
    # A follow-up task (alerts, orders, backfill) is called with the run's id, and its lines name that run instead;
    # whether one logs before the worker stops depends on timing, so each that did is checked.
    for record in (r for r in records if is_task_line(r["logger"], r["message"], *FOLLOW_UPS)):
        assert record["run_id"] in run_ids and record["task_id"], record


def test_every_text_line_about_a_run_ends_with_its_context(
    settings: Settings, tmp_path: Path, postgres_url: str
) -> None:
    lines = worker_log(Path(str(settings.fleet)), postgres_url, "text", tmp_path / "worker.log")

    about_the_run = [line for line in lines if of_the_run(text_logger(line), line)]
    assert len(about_the_run) >= 3
    for line in about_the_run:
        context = re.search(r" \[(bot=\S+ account=\S+ .*task_id=\S+.*)\]$", line)
        assert context is not None, line
        assert "bot=lxalgo account=paper" in context.group(1)
    assert all("run_id=" in line for line in about_the_run if " workers.pipeline: " in line)
    for line in (line for line in lines if is_task_line(text_logger(line), line, *FOLLOW_UPS)):  # named by their run
        assert re.search(r" \[run_id=\d+ task_id=\S+\]$", line), line
