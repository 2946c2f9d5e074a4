"""Operate actions from the API and the page: trigger a run, halt, resume. Each is recorded in the account's
audit (``models.audit``) with the caller's token name, the time and the reason."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from api.auth import Principal
from api.context import ApiContext
from api.errors import forbidden
from api.views import run_report
from models.accounts import get_or_create_account
from models.audit import record_action, record_trigger_action
from models.history import list_runs, set_halted
from workers.fleet import AccountConfig

MAX_TRIGGER_WAIT = 60.0
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Triggered:
    """What a trigger did: queued a run or joined one; ``report`` when the caller waited and a run served it."""

    queued: bool
    run_id: int | None = None
    report: dict[str, Any] | None = None


def trigger(context: ApiContext, principal: Principal, bot: str, account: str, reason: str, wait: float) -> Triggered:
    """Ask for a run of the account, coalesced exactly like ``recon trigger``; with ``wait`` > 0, wait up to that
    many seconds for a run that serves this request and return its report. On the embedded default the run is
    made here, one at a time."""
    config = context.account_config(bot, account)
    if not principal.may_trigger(bot):
        raise forbidden(f"this token may trigger bot {principal.bot}'s accounts only" if principal.bot
                        else "this needs a token with the operate role or the bot's own token")  # fmt: skip
    if not context.coordinated:
        return _run_here(context, principal, config, reason, wait)
    from workers.coalescing import served_count  # noqa: PLC0415
    from workers.triggers import trigger_run  # noqa: PLC0415

    redis = context.redis
    assert redis is not None
    ticket = trigger_run(redis, context.celery, config, reason, context.settings)
    _audit_trigger(context, principal, config, reason, "queued" if ticket.queued else "joined")
    deadline = time.monotonic() + min(wait, MAX_TRIGGER_WAIT)
    while wait > 0 and time.monotonic() < deadline:
        if served_count(redis, config) >= ticket.ticket:
            report = _latest_report(context, principal, config)
            return Triggered(ticket.queued, report["run_id"] if report else None, report)
        time.sleep(POLL_SECONDS)
    return Triggered(ticket.queued)


def _run_here(context: ApiContext, principal: Principal, config: AccountConfig, reason: str, wait: float) -> Triggered:
    from workers.service import Service  # noqa: PLC0415

    with context.in_process_runs:
        served = Service(context.database, context.settings, clock=context.clock).reconcile(config, reason)
    _audit_trigger(context, principal, config, reason, "ran here")
    run_id = served.results[-1].run_id if served.results else None
    report = run_report(context, principal, run_id) if wait > 0 and run_id is not None else None
    return Triggered(True, run_id, report)


def _latest_report(context: ApiContext, principal: Principal, config: AccountConfig) -> dict[str, Any] | None:
    with context.database.reading() as session:
        newest = list_runs(session, config.bot, config.account, 1)
    return run_report(context, principal, newest[0].run_id) if newest else None


def set_halt(
    context: ApiContext, principal: Principal, bot: str, account: str, halted: bool, reason: str | None
) -> bool:
    """Halt (with ``reason``) or resume the account, recording who and why in the same transaction; True when
    the flag changed."""
    config = context.account_config(bot, account)
    now = context.clock()
    with context.database.transaction() as session:
        row = get_or_create_account(session, config.bot, config.account, now, config.venue)
        unchanged = set_halted(session, row.id, halted, reason, now)
        outcome = "unchanged" if unchanged else ("halted" if halted else "resumed")
        record_action(session, row.id, "halt" if halted else "resume", principal.name, reason, outcome, now)
    return not unchanged


def _audit_trigger(context: ApiContext, principal: Principal, config: AccountConfig, reason: str, outcome: str) -> None:
    with context.database.transaction() as session:
        record_trigger_action(session, config.bot, config.account, config.venue, principal.name, reason, outcome,
                              context.clock())  # fmt: skip
