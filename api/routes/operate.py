"""Asking for a run, halting and resuming: each recorded with who, when and why."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse

from api import operate
from api.deps import Caller, Context, Operator
from api.routes.fleet import NOT_FOUND, AccountName, BotName
from api.schemas import ErrorAnswer, HaltAnswer, HaltRequest, Report, TriggerAnswer, TriggerRequest

router = APIRouter(responses={401: {"model": ErrorAnswer}, 403: {"model": ErrorAnswer}, 422: {"model": ErrorAnswer},
                              503: {"model": ErrorAnswer}, **NOT_FOUND})  # fmt: skip


@router.post(
    "/accounts/{bot}/{account}/reconcile",
    status_code=202,
    response_model=TriggerAnswer,
    responses={200: {"model": Report, "description": "the run that served the request, when it ended in time"}},
)
def reconcile(
    context: Context,
    caller: Caller,
    bot: BotName,
    account: AccountName,
    request: Annotated[TriggerRequest | None, Body()] = None,
    wait: Annotated[float, Query(ge=0, le=operate.MAX_TRIGGER_WAIT, description="seconds to wait for the run")] = 0,
) -> Any:
    """Ask for a run after a large fill (or for another reason), coalesced exactly like ``recon trigger``:
    202 with whether this request queued a run or joined one already queued or running. With ``?wait=S``, 200
    and the run's report when a run serving this request ends within S seconds; else 202."""
    reason = (request or TriggerRequest()).reason
    done = operate.trigger(context, caller, bot, account, reason, wait)
    if done.report is not None:
        return JSONResponse(done.report, status_code=200)
    return TriggerAnswer(queued=done.queued, joined=not done.queued, run_id=done.run_id)


@router.post("/accounts/{bot}/{account}/halt", response_model=HaltAnswer)
def halt(context: Context, operator: Operator, bot: BotName, account: AccountName, request: HaltRequest) -> HaltAnswer:
    """Halt the account: its bot must not open new risk, and reconciliation sends it no order, until resumed."""
    changed = operate.set_halt(context, operator, bot, account, True, request.reason.strip() or None)
    return HaltAnswer(bot=bot, account=account, halted=True, changed=changed)


@router.post("/accounts/{bot}/{account}/resume", response_model=HaltAnswer)
def resume(context: Context, operator: Operator, bot: BotName, account: AccountName) -> HaltAnswer:
    """Lift a halt."""
    changed = operate.set_halt(context, operator, bot, account, False, None)
    return HaltAnswer(bot=bot, account=account, halted=False, changed=changed)
