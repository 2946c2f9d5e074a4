"""The fleet and each account's trading gate, runs, breaks and books: what bots and operators read."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Response

from api.deps import Caller, Context
from api.schemas import AccountRow, Books, Breaks, ErrorAnswer, Fleet, Report, Runs
from api.views import account_status, books_of, breaks_list, fleet_rows, run_report, runs_page
from reconciliation.names import NAME_PATTERN

BotName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=64, description="the bot's name")]
AccountName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=64, description="the account's name")]
BotFilter = Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=64)]
RUN_STATUSES = "^(running|in_sync|resolved|warned|halted|failed)$"
MAX_PAGE = 500
MAX_RUN_ID = 2**31 - 1  # runs.id is a 32-bit INTEGER on Postgres

router = APIRouter(responses={401: {"model": ErrorAnswer}, 403: {"model": ErrorAnswer}, 422: {"model": ErrorAnswer},
                              503: {"model": ErrorAnswer}})  # fmt: skip
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorAnswer}}


@router.get("/fleet", response_model=Fleet)
def fleet(context: Context, caller: Caller) -> Response:
    """Every account of the fleet file, also those never run, with its last run, open breaks, halt flag and
    trading gate; a bot's token sees its own bot's accounts."""
    # Answered as built, encoded by orjson: validating and encoding thousands of rows the generic way costs more
    # than reading them (the schema is still the model's, and the property-based test checks answers against it).
    body = orjson.dumps({"accounts": fleet_rows(context, caller, context.clock())})
    return Response(body, media_type="application/json")


@router.get("/accounts/{bot}/{account}", response_model=AccountRow, responses=NOT_FOUND)
def account(context: Context, caller: Caller, bot: BotName, account: AccountName) -> dict[str, Any]:
    """The trading gate: ``trading_allowed`` and every reason against it (halted, last_run_failed, stale,
    open_critical_breaks), with the account's fleet row. Ask before each trading cycle."""
    return account_status(context, caller, bot, account, context.clock())


@router.get("/accounts/{bot}/{account}/books", response_model=Books, responses=NOT_FOUND)
def books(context: Context, caller: Caller, bot: BotName, account: AccountName) -> dict[str, Any]:
    """Positions with their lots, completed trades with P&L, position groups: as ``recon ledger show --json``."""
    return books_of(context, caller, bot, account)


@router.get("/runs", response_model=Runs)
def runs(
    context: Context,
    caller: Caller,
    bot: BotFilter = None,
    account: BotFilter = None,
    status: Annotated[str | None, Query(pattern=RUN_STATUSES)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    before: Annotated[int | None, Query(ge=1, le=MAX_RUN_ID, description="a run id: runs older than it")] = None,
) -> dict[str, Any]:
    """Runs, newest first, a page at a time: pass ``next_before`` as ``before`` for the next page."""
    return runs_page(context, caller, bot, account, status, limit, before)


@router.get("/runs/{run_id}", response_model=Report, responses=NOT_FOUND)
def run(context: Context, caller: Caller, run_id: Annotated[int, Path(ge=1, le=MAX_RUN_ID)]) -> dict[str, Any]:
    """One run's report: the contract of ``recon report --json`` (docs/reports.md)."""
    return run_report(context, caller, run_id)


@router.get("/breaks", response_model=Breaks)
def breaks(
    context: Context,
    caller: Caller,
    bot: BotFilter = None,
    account: BotFilter = None,
    open_only: Annotated[bool, Query(alias="open", description="open breaks only (false: also resolved)")] = True,
) -> dict[str, Any]:
    """Breaks (the same discrepancy across runs) with first and last seen, occurrences and severity."""
    return {"breaks": breaks_list(context, caller, bot, account, open_only)}
