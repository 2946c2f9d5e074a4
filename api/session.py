"""The page's login: a token typed once into ``/login``, kept in an HttpOnly, SameSite=Strict cookie, and the CSRF
token the page sends with its POSTs. Nothing here ever echoes or logs a token."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.responses import Response

from api.auth import SESSION_COOKIE, Principal, csrf_token
from api.deps import context_of, principal_of
from api.errors import ApiError

LOGIN_PATH = "/login"


def page_principal(request: Request) -> Principal:
    """The caller of a page, authenticated like the API (cookie, bearer, or the local operator when no token is
    configured); without a valid token the browser is sent to ``/login`` (303)."""
    try:
        return principal_of(request)
    except ApiError as error:
        if error.status != 401:
            raise
    # The app's HTTP error handler keeps the Location header: a browser follows it whatever the body says.
    raise HTTPException(status_code=303, detail="log in first", headers={"Location": LOGIN_PATH})


def page_csrf(request: Request) -> str:
    """The CSRF token the page embeds for its session ("" when no token is configured: then the API refuses
    cross-site POSTs by their Origin instead)."""
    session = request.cookies.get(SESSION_COOKIE)
    return csrf_token(session) if context_of(request).tokens and session else ""


def start_session(response: Response, request: Request, token: str) -> None:
    """Keep the token in the session cookie: HttpOnly (scripts cannot read it), SameSite=Strict (other sites'
    pages cannot send it), Secure when the page was served over https."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/",
        secure=request.url.scheme == "https",
    )


def end_session(response: Response, request: Request) -> None:
    """Forget the session cookie."""
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def same_site(request: Request) -> bool:
    """False when the browser says a form was posted from another site's page (login CSRF: a page elsewhere
    logging this browser in with the attacker's token)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = request.headers.get("origin")
    return origin is None or origin.split("://", 1)[-1] == request.headers.get("host")
