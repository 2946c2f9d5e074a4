"""The trading gate: closed while halted, after a failed run, when stale, or while a critical break is open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.gate import trading_gate
from models.overview import AccountOverview, LastRun

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
INTERVAL = 300


def overview(
    *,
    halted: bool = False,
    status: str = "in_sync",
    success_ago: float | None = 60,
    breaks: dict[str, int] | None = None,
) -> AccountOverview:
    success = NOW - timedelta(seconds=success_ago) if success_ago is not None else None
    last = LastRun(7, status, "schedule", NOW - timedelta(seconds=29))
    return AccountOverview("lxalgo", "live", "bybit", halted, "by hand" if halted else None, last, success,
                           breaks or {})  # fmt: skip


def test_a_fresh_in_sync_account_may_trade() -> None:
    gate = trading_gate(overview(), INTERVAL, 2.0, NOW)

    assert gate.trading_allowed and gate.reasons == () and not gate.stale


@pytest.mark.parametrize(
    ("account", "reasons"),
    [
        (overview(halted=True), ("halted",)),
        (overview(status="failed"), ("last_run_failed",)),
        (overview(success_ago=601), ("stale",)),
        (overview(success_ago=None), ("stale",)),
        (overview(breaks={"critical": 1, "minor": 3}), ("open_critical_breaks",)),
        (overview(breaks={"minor": 3, "moderate": 1}), ()),
        (overview(halted=True, status="failed", success_ago=900, breaks={"critical": 2}),
         ("halted", "last_run_failed", "stale", "open_critical_breaks")),
    ],
)  # fmt: skip
def test_every_reason_against_trading_is_named(account: AccountOverview, reasons: tuple[str, ...]) -> None:
    gate = trading_gate(account, INTERVAL, 2.0, NOW)

    assert gate.reasons == reasons
    assert gate.trading_allowed is (reasons == ())


def test_staleness_is_measured_in_intervals_and_configurable() -> None:
    at_the_edge = overview(success_ago=600)

    assert not trading_gate(at_the_edge, INTERVAL, 2.0, NOW).stale
    assert trading_gate(at_the_edge, INTERVAL, 1.5, NOW).stale


def test_an_account_never_run_is_stale_and_one_without_a_schedule_never_is() -> None:
    assert trading_gate(None, INTERVAL, 2.0, NOW).reasons == ("stale",)
    assert trading_gate(None, None, 2.0, NOW).trading_allowed
    assert not trading_gate(overview(success_ago=None), None, 2.0, NOW).stale
