"""Logging: one JSON object per line in workers (``RECON_LOG_FORMAT=json``), readable text otherwise.

Every line carries the bot, account, run id and task id it concerns when the code logging it knows them
(``extra={"bot": ..., "account": ..., "run_id": ...}``; the task id is added inside Celery tasks).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from workers.settings import Settings

CONTEXT_FIELDS = ("bot", "account", "run_id", "task_id", "status")


class TaskContext(logging.Filter):
    """Adds the id of the Celery task being executed, if any, to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "task_id"):
            from celery import current_task  # noqa: PLC0415 - only worker processes have tasks

            request = getattr(current_task, "request", None)
            task_id = getattr(request, "id", None)
            if task_id:
                record.task_id = task_id
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


def configure_logging(settings: Settings, level: int = logging.INFO) -> None:
    """Send every log record to stderr, as JSON or as text per ``settings.log_format``."""
    handler = logging.StreamHandler()
    handler.addFilter(TaskContext())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
