"""Delivering alerts: to the log always, and as one Slack-compatible JSON POST when a webhook is configured.

An alert is marked delivered only after every channel took it; a webhook that fails raises ``RetryLater``
so the task retries, and nothing is lost or sent as delivered.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import datetime, timedelta

from models import alerts
from models.accounts import get_or_create_account
from models.database import Database
from reconciliation.errors import RetryLater
from workers.fleet import Fleet
from workers.settings import Settings

log = logging.getLogger("recon.alerts")
WEBHOOK_TIMEOUT_SECONDS = 5
STALE_AFTER_INTERVALS = 3


def deliver(database: Database, settings: Settings, now: datetime, run_id: int | None = None) -> int:
    """Send undelivered alerts (of one run, or all) and mark them delivered."""
    with database.reading() as session:
        pending = alerts.undelivered(session, run_id)
    if not pending:
        return 0
    for item in pending:
        log.warning(
            "%s: %s", item.alert.kind, item.alert.message,
            extra={"bot": item.bot, "account": item.account, "run_id": item.alert.run_id},
        )  # fmt: skip
    if settings.alert_webhook_url:
        _post(settings.alert_webhook_url.get_secret_value(), [_line(item) for item in pending], pending)
    with database.transaction() as session:
        alerts.mark_delivered(session, [item.alert.id for item in pending], now)
    return len(pending)


def summary_command(bot: str, account: str) -> str:
    """The command that shows the account's last day (``recon summary``), which every alert carries."""
    return f"recon summary --bot {bot} --account {account} --since 24h"


def _line(item: alerts.Delivery) -> str:
    return (
        f"[{item.alert.severity}] {item.bot}/{item.account} {item.alert.kind}: {item.alert.message}"
        f" (the day: `{summary_command(item.bot, item.account)}`)"
    )


def _post(url: str, lines: list[str], pending: list[alerts.Delivery]) -> None:
    body = {
        "text": "recon alerts:\n" + "\n".join(lines),
        "alerts": [
            {"bot": p.bot, "account": p.account, "run_id": p.alert.run_id, "kind": p.alert.kind,
             "subject": p.alert.subject, "severity": p.alert.severity, "message": p.alert.message,
             "summary_command": summary_command(p.bot, p.account)}
            for p in pending
        ],
    }  # fmt: skip
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            if response.status >= 300:
                raise RetryLater(f"alert webhook answered HTTP {response.status}")
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise RetryLater(f"alert webhook unreachable: {error}") from error


def raise_staleness_alerts(database: Database, fleet: Fleet, now: datetime) -> int:
    """An alert for each account with no successful run for 3 of its intervals (once per stale spell)."""
    raised = 0
    with database.transaction() as session:
        for config in fleet.accounts:
            account_id = get_or_create_account(session, config.bot, config.account, now, config.venue).id
            window = timedelta(seconds=config.interval_seconds * STALE_AFTER_INTERVALS)
            since = alerts.stale_since(session, account_id, window, now)
            if since is not None:
                alerts.record_alert(session, account_id, "stale", "critical",
                                    f"no successful run since {since.isoformat()}", now)  # fmt: skip
                raised += 1
    return raised
