"""Alpaca's errors in our tree: an ``APIError`` (any HTTP status but 2xx) becomes the ``ReconError`` to act on.

    HTTP 401, 403                                        AuthenticationFailed
    HTTP 429                                             RateLimited (wait: Retry-After)
    HTTP 5xx, or no status at all                        VenueUnavailable
    HTTP 422 (or 409) saying client_order_id must be unique
                                                         DuplicateClientOrderId: an earlier attempt got through
    any other status                                     RequestRejected

Alpaca answers a client order id it already holds with HTTP 422 ``{"code": 40010001, "message":
"client_order_id must be unique"}``. 40010001 is its code for every validation failure, so the message decides.
The venue's message is repeated masked (``Redactor``) and cut to ``MAX_MESSAGE`` characters.
"""

from __future__ import annotations

import json
import re

from alpaca.common.exceptions import APIError

from reconciliation.errors import (
    AuthenticationFailed,
    DuplicateClientOrderId,
    RateLimited,
    ReconError,
    RequestRejected,
    VenueUnavailable,
)
from venues import http
from venues.redaction import Redactor

MAX_MESSAGE = 300  # characters of a venue's error message repeated in ours
DUPLICATE_STATUSES = (409, 422)
DUPLICATE_MESSAGE = re.compile(r"\bclient[ _]?order[ _]?id must be unique\b", re.IGNORECASE)


def from_api_error(error: APIError, redactor: Redactor) -> ReconError:
    """The error for an answer Alpaca gave with a status other than 2xx."""
    status = error.status_code
    text = message(error)
    shown = f"alpaca HTTP {status}: {redactor.text(text)[:MAX_MESSAGE]}"
    if status in (401, 403):
        return AuthenticationFailed(shown)
    if status == 429:
        return RateLimited(shown, retry_after=retry_after(error))
    if status is None or status >= 500:
        return VenueUnavailable(shown)
    if status in DUPLICATE_STATUSES and DUPLICATE_MESSAGE.search(text):
        return DuplicateClientOrderId(shown)
    return RequestRejected(shown)


def message(error: APIError) -> str:
    """The error's message from its JSON body; the SDK's own accessor raises on a body that is not JSON."""
    body = str(error)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return body[:200].strip() or "no message"
    return str(document.get("message", body[:200])) if isinstance(document, dict) else body[:200]


def retry_after(error: APIError) -> float | None:
    """Seconds from the answer's Retry-After, clamped; None when absent or unreadable."""
    response = error.response
    return http.retry_after(response.headers.get("Retry-After")) if response is not None else None
