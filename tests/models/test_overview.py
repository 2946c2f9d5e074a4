"""The fleet at a glance: each account's newest run and newest success (dry runs aside), open breaks by severity,
in a number of statements that does not grow with the fleet or its history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, insert

from models import Account, Bot, Break, Run
from models.database import Database
from models.overview import fleet_overview

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def add_fleet(database: Database, accounts: int, runs_each: int = 3) -> None:
    """``accounts`` accounts over 5 bots, each with ``runs_each`` in-sync runs a minute apart."""
    with database.transaction() as session:
        session.execute(insert(Bot), [{"id": b + 1, "name": f"bot{b}", "created_at": T0} for b in range(5)])
        session.execute(insert(Account), [
            {"id": n + 1, "bot_id": n % 5 + 1, "name": f"acct{n:04d}", "venue": "sim", "epoch": 0, "halted": False,
             "created_at": T0} for n in range(accounts)
        ])  # fmt: skip
        runs = [run(n + 1, "in_sync", T0 + timedelta(minutes=r)) for n in range(accounts) for r in range(runs_each)]
        if runs:
            session.execute(insert(Run), runs)


def run(account_id: int, status: str, started: datetime, *, dry: bool = False) -> dict[str, Any]:
    return {"account_id": account_id, "reason": "schedule", "status": status, "dry_run": dry, "epoch": 0,
            "started_at": started, "finished_at": started + timedelta(seconds=2), "matched": 0}  # fmt: skip


def statements_of(database: Database, accounts: int) -> int:
    seen: list[str] = []
    listener = lambda *args: seen.append(args[2])  # noqa: E731
    event.listen(database.engine, "before_cursor_execute", listener)
    with database.reading() as session:
        assert len(fleet_overview(session)) == accounts
    event.remove(database.engine, "before_cursor_execute", listener)
    return len([s for s in seen if s.lstrip().upper().startswith("SELECT")])


def test_the_newest_run_and_the_newest_success_leave_dry_runs_aside(database: Database) -> None:
    add_fleet(database, 1, runs_each=1)
    with database.transaction() as session:
        session.execute(insert(Run), [run(1, "failed", T0 + timedelta(minutes=5)),
                                      run(1, "in_sync", T0 + timedelta(minutes=9), dry=True)])  # fmt: skip
        session.execute(insert(Break), [
            {"account_id": 1, "subject": f"position:linear:X{n}:0", "kind": "quantity_mismatch", "severity": severity,
             "first_seen_run_id": 1, "last_seen_run_id": 1, "first_seen_at": T0, "last_seen_at": T0,
             "occurrences": 1, "resolved_at": T0 if n == 3 else None}
            for n, severity in enumerate(["critical", "minor", "minor", "critical"])
        ])  # fmt: skip

    with database.reading() as session:
        (only,) = fleet_overview(session)

    assert only.last_run is not None and only.last_run.status == "failed"
    assert only.last_success_at == T0 + timedelta(seconds=2)
    assert only.open_breaks == {"critical": 1, "minor": 2}


def test_an_account_never_run_has_no_last_run(database: Database) -> None:
    add_fleet(database, 2, runs_each=0)

    with database.reading() as session:
        accounts = fleet_overview(session, bot="bot1")

    assert [(a.bot, a.account, a.last_run, a.last_success_at) for a in accounts] == [("bot1", "acct0001", None, None)]


def test_the_statements_do_not_grow_with_the_fleet_or_its_history(database: Database) -> None:
    add_fleet(database, 10)
    few = statements_of(database, 10)
    add_more = 300
    with database.transaction() as session:
        session.execute(insert(Account), [
            {"id": n + 1, "bot_id": n % 5 + 1, "name": f"acct{n:04d}", "venue": "sim", "epoch": 0, "halted": False,
             "created_at": T0} for n in range(10, 10 + add_more)
        ])  # fmt: skip
        session.execute(insert(Run), [run(n % 310 + 1, "in_sync", T0 + timedelta(minutes=n)) for n in range(3000)])

    assert statements_of(database, 10 + add_more) == few <= 2
