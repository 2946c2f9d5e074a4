"""The page: ``/`` the fleet, ``/accounts/{bot}/{account}`` one account, ``/runs/{id}`` one run's report, and the
login. Server-rendered from the same views as the API (``api.views``); its buttons call the JSON API with the
session's CSRF token. Fragments under ``/fragments`` are the parts ``page.js`` swaps in when a run commits."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from api import events
from api.auth import CSRF_FIELD, SESSION_COOKIE, Principal, authenticate, csrf_matches
from api.context import ApiContext
from api.deps import Context
from api.errors import ApiError, forbidden, not_found
from api.render import render
from api.routes.fleet import AccountName, BotName
from api.session import end_session, page_csrf, page_principal, same_site, start_session
from api.views import account_status, books_of, breaks_list, fleet_rows, run_report, runs_page
from models.accounts import find_account
from models.audit import audit_of
from reconciliation.errors import FixConfiguration
from workers.reports import iso

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"page.css": "text/css", "page.js": "text/javascript"}
RECENT_RUNS = 20
MAX_RUN_ID = 2**31 - 1

router = APIRouter(include_in_schema=False)
router.include_router(events.router)
PageCaller = Annotated[Principal, Depends(page_principal)]
Params = ParamSpec("Params")


def html_errors(page: Callable[Params, Response]) -> Callable[Params, Response]:
    """A page whose refusals (404, 403, ...) are shown as a page rather than as the API's JSON."""

    @functools.wraps(page)
    def shown(*args: Params.args, **kwargs: Params.kwargs) -> Response:
        try:
            return page(*args, **kwargs)
        except ApiError as error:
            request = kwargs["request"]
            assert isinstance(request, Request)
            return render(request, "error.html", error.status, error=error, principal=None, csrf="")

    return shown


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    """The page's own CSS and JS (two named files; nothing else under the folder is served)."""
    if name not in STATIC_FILES:
        raise not_found("no such file")
    return FileResponse(STATIC / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"})


# --- login --------------------------------------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, context: Context) -> Response:
    """The login form (with no token configured there is nothing to log in to: to the fleet)."""
    if not context.tokens:
        return RedirectResponse("/", status_code=303)
    return render(request, "login.html", principal=None, csrf="", problem=None)


@router.post("/login")
def login(request: Request, context: Context, token: Annotated[str, Form(max_length=4096)] = "") -> Response:
    """Check the typed token; when it is one of ours keep it in the session cookie and go to the fleet. A wrong
    token is answered 401 with the form again, never with the value typed."""
    if not same_site(request):
        raise forbidden("a login posted from another site's page was refused")
    if not context.tokens:
        return RedirectResponse("/", status_code=303)
    if authenticate(context.tokens, token.strip()) is None:
        problem = "That token is not valid. Paste the whole token given to you (RECON_API_TOKENS)."
        return render(request, "login.html", 401, principal=None, csrf="", problem=problem)
    response = RedirectResponse("/", status_code=303)
    start_session(response, request, token.strip())
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(alias=CSRF_FIELD)] = "") -> Response:
    """Forget the session cookie (the form carries the page's CSRF token) and show the login form."""
    session = request.cookies.get(SESSION_COOKIE)
    if session and not csrf_matches(session, csrf):
        raise forbidden("the page's CSRF token is missing or wrong: reload the page and try again")
    response = RedirectResponse("/login", status_code=303)
    end_session(response, request)
    return response


# --- the fleet ----------------------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
@html_errors
def fleet_page(request: Request, context: Context, caller: PageCaller) -> Response:
    """Every account: status, last run and its age, open breaks, halted badge, a trigger button."""
    rows = fleet_rows(context, caller, context.clock())
    return render(request, "fleet.html", principal=caller, csrf=page_csrf(request), rows=rows)


@router.get("/fragments/fleet/{bot}/{account}", response_class=HTMLResponse)
@html_errors
def fleet_row(request: Request, context: Context, caller: PageCaller, bot: BotName, account: AccountName) -> Response:
    """One account's fleet row, for ``page.js`` to swap in after a run."""
    row = account_status(context, caller, bot, account, context.clock())
    return render(request, "fleet_row.html", principal=caller, row=row)


# --- one account --------------------------------------------------------------------------------------------------


@router.get("/accounts/{bot}/{account}", response_class=HTMLResponse)
@html_errors
def account_page(
    request: Request, context: Context, caller: PageCaller, bot: BotName, account: AccountName
) -> Response:
    """One account: status with halt and resume, positions with lots, open breaks with age, recent runs, audit."""
    values = account_values(context, caller, bot, account)
    return render(request, "account.html", principal=caller, csrf=page_csrf(request), **values)


@router.get("/fragments/accounts/{bot}/{account}", response_class=HTMLResponse)
@html_errors
def account_live(
    request: Request, context: Context, caller: PageCaller, bot: BotName, account: AccountName
) -> Response:
    """The changing part of the account page, for ``page.js`` to swap in after a run or an operate action."""
    values = account_values(context, caller, bot, account)
    return render(request, "account_live.html", principal=caller, **values)


def account_values(context: ApiContext, caller: Principal, bot: str, account: str) -> dict[str, Any]:
    """What the account page shows, from the API's views and the audit."""
    row = account_status(context, caller, bot, account, context.clock())
    try:
        books = books_of(context, caller, bot, account)
    except ApiError as error:
        if error.status != 404:
            raise
        books = {"positions": []}  # never recorded nor reconciled: no books yet
    return {
        "row": row,
        "positions": books["positions"],
        "breaks": breaks_list(context, caller, bot, account, open_only=True),
        "runs": runs_page(context, caller, bot, account, None, RECENT_RUNS, None)["runs"],
        "audit": audit_rows(context, bot, account),
    }


def audit_rows(context: ApiContext, bot: str, account: str) -> list[dict[str, Any]]:
    """The account's operate actions, newest first (none when the books never saw the account)."""
    with context.database.reading() as session:
        try:
            account_id = find_account(session, bot, account).id
        except FixConfiguration:
            return []
        entries = audit_of(session, account_id)
    return [
        {"at": iso(e.at), "actor": e.actor, "action": e.action, "reason": e.reason, "outcome": e.outcome}
        for e in entries
    ]


# --- one run ------------------------------------------------------------------------------------------------------


@router.get("/runs/{run_id}", response_class=HTMLResponse)
@html_errors
def run_page(request: Request, context: Context, caller: PageCaller, run_id: int) -> Response:
    """One run's report: summary, discrepancies, cash, orders and actions with before and after."""
    if not 1 <= run_id <= MAX_RUN_ID:
        raise not_found(f"no run with id {run_id}")
    report = run_report(context, caller, run_id)
    return render(request, "run.html", principal=caller, csrf=page_csrf(request), report=report)
