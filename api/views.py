"""What the API and the page show, read from the books: the fleet with each account's trading gate, one
account's status, runs, breaks and books. JSON-ready dicts in the shapes of ``api.schemas``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.auth import Principal
from api.context import ApiContext
from api.errors import forbidden, not_found
from api.gate import trading_gate
from models.history import BreakLine, RunLine, list_breaks, list_runs, run_record
from models.overview import AccountOverview, fleet_overview
from workers.fleet import AccountConfig
from workers.reports import iso, run_json, runs_json


def fleet_rows(context: ApiContext, principal: Principal, now: datetime) -> list[dict[str, Any]]:
    """Every account of the fleet file (also those never run) and any other the books hold, by bot and account;
    a bot's token sees its own bot's accounts only. Two SQL statements whatever the fleet's size."""
    with context.database.reading() as session:
        known = {(o.bot, o.account): o for o in fleet_overview(session, bot=principal.bot)}
    fleet = context.fleet()
    configs = {(c.bot, c.account): c for c in (fleet.accounts if fleet else ()) if principal.may_read(c.bot)}
    names = sorted(set(known) | set(configs))
    return [account_row(context, known.get(name), configs.get(name), name, now) for name in names]


def account_status(context: ApiContext, principal: Principal, bot: str, account: str, now: datetime) -> dict[str, Any]:
    """One account's row with its trading gate; 404 when neither the fleet file nor the books know it."""
    require_readable(principal, bot)
    with context.database.reading() as session:
        found = fleet_overview(session, bot=bot, account=account)
    fleet = context.fleet()
    config = next((c for c in (fleet.accounts if fleet else ()) if (c.bot, c.account) == (bot, account)), None)
    if not found and config is None:
        raise not_found(f"no account {bot}/{account}")
    return account_row(context, found[0] if found else None, config, (bot, account), now)


def account_row(
    context: ApiContext,
    overview: AccountOverview | None,
    config: AccountConfig | None,
    name: tuple[str, str],
    now: datetime,
) -> dict[str, Any]:
    """The fleet row of one account: its last runs, open breaks, halt flag and trading gate."""
    interval = config.interval_seconds if config else None
    gate = trading_gate(overview, interval, context.settings.stale_after_intervals, now)
    last_success = overview.last_success_at if overview else None
    return {
        "bot": name[0],
        "account": name[1],
        "venue": config.venue if config else overview.venue if overview else "",
        "interval_seconds": interval,
        "last_run": _last_run(overview),
        "last_success_at": iso(last_success),
        "last_success_age_seconds": round((now - last_success).total_seconds(), 3) if last_success else None,
        "open_breaks": dict(overview.open_breaks) if overview else {},
        "halted": overview.halted if overview else False,
        "halted_reason": overview.halted_reason if overview else None,
        "stale": gate.stale,
        "trading_allowed": gate.trading_allowed,
        "reasons": list(gate.reasons),
    }


def _last_run(overview: AccountOverview | None) -> dict[str, Any] | None:
    last = overview.last_run if overview else None
    if last is None:
        return None
    return {"run_id": last.run_id, "status": last.status, "reason": last.reason, "finished_at": iso(last.finished_at)}


def runs_page(
    context: ApiContext,
    principal: Principal,
    bot: str | None,
    account: str | None,
    status: str | None,
    limit: int,
    before: int | None,
) -> dict[str, Any]:
    """Runs, newest first, one page of ``limit``; a bot's token sees its own bot's runs only."""
    if bot is not None:
        require_readable(principal, bot)
    with context.database.reading() as session:
        lines: list[RunLine] = list_runs(
            session, bot or principal.bot, account, limit + 1, status=status, before=before
        )
    page = lines[:limit]
    return {"runs": runs_json(page), "next_before": page[-1].run_id if len(lines) > limit else None}


def run_report(context: ApiContext, principal: Principal, run_id: int) -> dict[str, Any]:
    """One run's report (the contract of ``recon report --json``); 404 for an unknown run or another bot's."""
    from reconciliation.errors import FixConfiguration  # noqa: PLC0415

    with context.database.reading() as session:
        try:
            record = run_record(session, run_id)
        except FixConfiguration:
            raise not_found(f"no run with id {run_id}") from None
    if not principal.may_read(record.bot):
        raise not_found(f"no run with id {run_id}")  # a bot's token learns nothing of other bots' runs
    return run_json(record)


def breaks_list(
    context: ApiContext, principal: Principal, bot: str | None, account: str | None, open_only: bool
) -> list[dict[str, Any]]:
    """Breaks with first and last seen, occurrences and severity; a bot's token sees its own bot's only."""
    if bot is not None:
        require_readable(principal, bot)
    with context.database.reading() as session:
        lines: list[BreakLine] = list_breaks(session, bot or principal.bot, account, open_only)
    return [
        {
            "id": line.item.id,
            "bot": line.bot,
            "account": line.account,
            "subject": line.item.subject,
            "kind": line.item.kind,
            "severity": line.item.severity,
            "first_seen_at": iso(line.item.first_seen_at),
            "last_seen_at": iso(line.item.last_seen_at),
            "occurrences": line.item.occurrences,
            "resolved_at": iso(line.item.resolved_at),
        }
        for line in lines
    ]


def books_of(context: ApiContext, principal: Principal, bot: str, account: str) -> dict[str, Any]:
    """The account's books (the contract of ``recon ledger show --json``); 404 when the books never saw it."""
    from models.accounts import find_account  # noqa: PLC0415
    from models.reading import completed_trades, groups, positions  # noqa: PLC0415
    from reconciliation.errors import FixConfiguration  # noqa: PLC0415
    from workers.reports import books_json  # noqa: PLC0415

    require_readable(principal, bot)
    with context.database.reading() as session:
        try:
            account_id = find_account(session, bot, account).id
        except FixConfiguration:
            raise not_found(f"no books for {bot}/{account}") from None
        return books_json(positions(session, account_id), completed_trades(session, account_id),
                          groups(session, account_id))  # fmt: skip


def require_readable(principal: Principal, bot: str) -> None:
    """403 unless ``principal`` may read ``bot``'s accounts."""
    if not principal.may_read(bot):
        raise forbidden(f"this token may read bot {principal.bot}'s accounts only")
