"""Request dependencies: the app's context and the caller, authenticated by bearer token or the page's cookie."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import CSRF_HEADER, OPERATE, SESSION_COOKIE, Principal, authenticate, bearer_of, csrf_matches
from api.context import ApiContext
from api.errors import ApiError, forbidden

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def context_of(request: Request) -> ApiContext:
    """The app's context."""
    context: ApiContext = request.app.state.context
    return context


LOCAL = Principal("local", OPERATE)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


BEARER = HTTPBearer(auto_error=False, description="a token of RECON_API_TOKENS (name:role:token)")


def principal_of(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None
) -> Principal:
    """The caller, from ``Authorization: Bearer`` or else the page's session cookie; 401 when neither holds a
    configured token. A state-changing request made with the cookie must carry the page's CSRF token in
    ``X-CSRF-Token`` (403 otherwise): a cookie is sent by the browser on its own, a header is not.

    With no token configured (only allowed on loopback, ``api.serve``) every caller on this machine is the
    operator ``local``; requests naming another host (DNS rebinding) or coming from another site's page are
    refused."""
    context = context_of(request)
    if not context.tokens:
        return _local_caller(request)
    token = credentials.credentials if credentials else bearer_of(request.headers.get("authorization"))
    from_cookie = token is None
    if from_cookie:
        token = request.cookies.get(SESSION_COOKIE)
    principal = authenticate(context.tokens, token)
    if principal is None:
        raise ApiError(401, "unauthorized", "a valid token is needed: send `Authorization: Bearer <token>`")
    if from_cookie and request.method not in SAFE_METHODS:
        assert token is not None
        if not csrf_matches(token, request.headers.get(CSRF_HEADER)):
            raise forbidden("the page's CSRF token is missing or wrong: reload the page and try again")
    return principal


def _local_caller(request: Request) -> Principal:
    host = _host_name(request.headers.get("host") or "")
    if host not in LOOPBACK_HOSTS:
        raise forbidden("without RECON_API_TOKENS only requests to 127.0.0.1 or localhost are answered")
    if request.method not in SAFE_METHODS and not _same_origin(request):
        raise forbidden("a request from another site's page was refused")
    return LOCAL


def _host_name(host_header: str) -> str:
    """The host of a ``Host`` header, without its port (``[::1]:8000`` -> ``[::1]``)."""
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0]


def _same_origin(request: Request) -> bool:
    """False when a browser says the request comes from another site (browsers send ``Origin`` on every
    cross-origin POST; programs such as curl send none)."""
    origin = request.headers.get("origin")
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    return origin is None or origin.split("://", 1)[-1] == request.headers.get("host")


def operator_of(principal: Annotated[Principal, Depends(principal_of)]) -> Principal:
    """The caller, when its token has the operate role (403 otherwise)."""
    if not principal.may_operate:
        raise forbidden("this needs a token with the operate role")
    return principal


Context = Annotated[ApiContext, Depends(context_of)]
Caller = Annotated[Principal, Depends(principal_of)]
Operator = Annotated[Principal, Depends(operator_of)]
