"""The service in-process, as `recon reconcile` uses it without Redis: the run, then its follow-ups here."""

from __future__ import annotations

from pydantic import SecretStr
from sqlalchemy import select

from models import Alert
from models.database import Database
from reconciliation.policy import Policy, Rules, Strategy
from tests.conftest import Clock, SimState, books_for
from workers.fleet import AccountConfig
from workers.service import Service
from workers.settings import Settings

SYNC = Policy(minor=Strategy.SYNC_TO_BROKER, moderate=Strategy.SYNC_TO_BROKER, critical=Strategy.SYNC_TO_BROKER)


def test_a_follow_up_that_fails_in_process_is_an_alert_and_leaves_the_committed_run_as_it_is(
    database: Database, venue: SimState, clock: Clock
) -> None:
    books_for(database, clock).record_fill("lxalgo", "paper", symbol="BTCUSDT", side="buy", qty="2", price="100",
                                             fill_id="b1", time="2026-11-01T00:00:00Z")  # fmt: skip
    venue.set([{"symbol": "BTCUSDT", "side": "long", "qty": "1", "avg_price": "100", "mark_price": "100"}])
    config = AccountConfig("lxalgo", "paper", "sim", Rules(policy=SYNC, grace_seconds=0), 300, venue.path)
    unreachable = Settings(alert_webhook_url=SecretStr("http://127.0.0.1:9/hooks/nowhere"))  # type: ignore[call-arg]

    served = Service(database, unreachable, clock=clock).reconcile(config, "manual")

    [result] = served.results
    assert result.status == "resolved" and result.alerts > 0
    with database.reading() as session:
        kinds = sorted(session.scalars(select(Alert.kind)))
    assert "follow_up_failed" in kinds and "break_opened" in kinds
