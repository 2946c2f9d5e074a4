"""Bybit's errors in our tree: what pybit raises becomes the ``ReconError`` the caller must act on.

pybit raises ``InvalidRequestError`` for a non-zero ``retCode`` (its ``status_code`` is the retCode) and
``FailedRequestError`` for an HTTP status other than 200 (its ``status_code`` is the HTTP status):

    retCode 10006, 10018; HTTP 403, 429        RateLimited (wait: X-Bapi-Limit-Reset-Timestamp, else Retry-After)
    retCode 10003 10004 10005 10007 10009 10010 33004; HTTP 401
                                               AuthenticationFailed (Bybit's message is not repeated: it may
                                               echo the signed string, which holds the key)
    retCode 10000, 10002, 10016, 10019         VenueUnavailable
    retCode 110072 (derivatives), 170141 and 12141 (spot)
                                               DuplicateClientOrderId: the orderLinkId sent is already taken
    any other retCode                          RequestRejected
    a retCode that is not an integer           InvalidResponse
    HTTP 409 (pybit: a body not JSON)          InvalidResponse
    any other HTTP status                      VenueUnavailable

A venue's message is repeated masked (``Redactor``) and cut to ``MAX_MESSAGE`` characters; the pybit error is
kept as the cause, emptied of the request it holds (``stripped``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pybit.exceptions import FailedRequestError, InvalidRequestError

from reconciliation.errors import (
    AuthenticationFailed,
    DuplicateClientOrderId,
    InvalidResponse,
    RateLimited,
    ReconError,
    RequestRejected,
    VenueUnavailable,
)
from venues import http, parsing
from venues.redaction import Redactor

MAX_MESSAGE = 300  # characters of a venue's error message repeated in ours
AUTH_CODES = {10003, 10004, 10005, 10007, 10009, 10010, 33004}
RATE_CODES = {10006, 10018}
TRANSIENT_CODES = {10000, 10002, 10016, 10019}
#: "OrderLinkedID is duplicate" (linear, inverse, option) and "Duplicate clientOrderId" (spot, two generations).
#: Not 110030 "Duplicate orderId" (an id Bybit assigns, never one we send) nor 10014 (a repeated request).
DUPLICATE_LINK_ID_CODES = {110072, 170141, 12141}


def from_ret_code(error: InvalidRequestError, redactor: Redactor, clock: Callable[[], float]) -> ReconError:
    """The error for a non-zero retCode."""
    code = error.status_code
    if isinstance(code, bool) or not isinstance(code, int):
        return InvalidResponse(f"bybit retCode: {parsing.shown(code)} is not an error code")
    message = f"bybit retCode {code}: {redactor.text(error.message)[:MAX_MESSAGE]}"
    if code in RATE_CODES:
        return RateLimited(message, retry_after=retry_after(error.resp_headers, clock))
    if code in AUTH_CODES:  # Bybit's message may echo the signed string, which holds the key: not repeated
        return AuthenticationFailed(f"bybit refused the credentials (retCode {code})")
    if code in TRANSIENT_CODES:
        return VenueUnavailable(message)
    if code in DUPLICATE_LINK_ID_CODES:
        return DuplicateClientOrderId(message)
    return RequestRejected(message)


def from_http(error: FailedRequestError, clock: Callable[[], float]) -> ReconError:
    """The error for an HTTP status other than 200."""
    status = error.status_code
    if status in (403, 429):
        return RateLimited(f"bybit HTTP {status}: rate limited", retry_after=retry_after(error.resp_headers, clock))
    if status == 401:
        return AuthenticationFailed("bybit HTTP 401: not authorised")
    if status == 409:  # pybit's code for a body that is not JSON
        return InvalidResponse("bybit answered with a body that is not JSON")
    return VenueUnavailable(f"bybit HTTP {status}")


def stripped(error: BaseException, redactor: Redactor) -> BaseException:
    """``error`` without the request pybit and requests keep in it (only the method and path stay)."""
    if isinstance(error, FailedRequestError | InvalidRequestError):
        error.request = str(error.request).split(":", 1)[0]
        return redactor.stripped(error, f"{error.message} (ErrCode: {error.status_code})")
    return redactor.stripped(error)


def retry_after(headers: Any, clock: Callable[[], float]) -> float | None:
    """Seconds until Bybit's X-Bapi-Limit-Reset-Timestamp, else an HTTP Retry-After, else unknown; clamped."""
    if not hasattr(headers, "get"):
        return None
    reset = headers.get("X-Bapi-Limit-Reset-Timestamp")
    if reset is not None:
        return http.wait_until(reset, clock())
    return http.retry_after(headers.get("Retry-After"))
