"""Logging: one JSON object per line in workers (``RECON_LOG_FORMAT=json``), readable text otherwise.

Every line carries the bot, account, run id and task id it concerns when the code logging it knows them
(``extra={"bot": ..., "account": ..., "run_id": ...}``; the task id is added inside Celery tasks): as fields in
JSON, as a trailing ``[bot=… account=… run_id=… task_id=…]`` in text.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from workers.settings import Settings

CONTEXT_FIELDS = ("bot", "account", "run_id", "task_id", "status")
ACCOUNT_TASKS = frozenset({"recon.reconcile", "recon.recheck"})  # called with (bot, account, ...)
RUN_TASKS = frozenset({"recon.send_orders", "recon.alerts", "recon.backfill"})  # called with (run_id,)


class TaskContext(logging.Filter):
    """Adds the Celery task being executed, if any, to every record: its id, and the bot and account (or run id)
    its arguments name, so Celery's own lines about a run's task name the account too."""

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "task_id"):
            return True
        from celery import current_task  # noqa: PLC0415 - only worker processes have tasks

        request = getattr(current_task, "request", None)
        task_id = getattr(request, "id", None)
        if not task_id:
            return True
        record.task_id = task_id
        args = list(getattr(request, "args", None) or ())
        name = getattr(current_task, "name", "")
        if name in ACCOUNT_TASKS and len(args) >= 2 and not hasattr(record, "bot"):
            record.bot, record.account = args[0], args[1]
        elif name in RUN_TASKS and args and not hasattr(record, "run_id"):
            record.run_id = args[0]
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, context fields, error."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update({name: getattr(record, name) for name in CONTEXT_FIELDS if hasattr(record, name)})
        if record.exc_info:
            document["error"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


class TextFormatter(logging.Formatter):
    """A readable line: time, level, logger, message, then the context it concerns (``[bot=… account=… run_id=…
    task_id=…]``), so a text log names the account of every line about a run, as the JSON log does."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name))
        if not context:
            return line
        first, newline, rest = line.partition("\n")  # a traceback stays below the line it explains
        return f"{first} [{context}]{newline}{rest}"


def configure_logging(settings: Settings, level: int = logging.INFO) -> None:
    """Send every log record to stderr, as JSON or as text per ``settings.log_format``."""
    handler = logging.StreamHandler()
    handler.addFilter(TaskContext())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
