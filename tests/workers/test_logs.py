"""Worker logs are one JSON object per line with the bot, account, run and task they concern."""

from __future__ import annotations

import json
import logging

from workers.logs import JsonFormatter, TaskContext


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
