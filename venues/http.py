"""What both adapters do the same way at the HTTP level: refuse redirects, and read the venue's retry hints.

Credentials travel in request headers, so a request must reach the configured URL and nowhere else: a
``requests`` response hook refuses every 3xx answer before ``requests`` would resolve it (pybit follows
redirects; alpaca-py does not, but then reads the redirect's own body as if it were the answer).
"""

from __future__ import annotations

import math
import re
from functools import partial
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from reconciliation.errors import FixConfiguration

#: The longest wait a venue's hint can ask for, in seconds; a larger or unreadable hint is clamped or ignored.
MAX_RETRY_AFTER = 3600.0
_SECONDS = re.compile(r"\s*[+-]?[0-9]{1,12}(\.[0-9]{1,9})?\s*")
_MILLIS = re.compile(r"\s*[0-9]{1,30}\s*")


def refuse_redirects(session: requests.Session, venue: str) -> None:
    """Make ``session`` raise ``FixConfiguration`` on any redirect, before anything is sent to where it points."""
    session.max_redirects = 0
    session.hooks["response"].append(partial(_refuse_redirect, venue))


def _refuse_redirect(venue: str, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
    if not 300 <= response.status_code < 400:
        return response
    location = response.headers.get("Location")
    response.close()
    target = f"redirected to {_origin(response.url, location)}" if location else "answered with a redirect"
    raise FixConfiguration(
        f"{venue} {target} (HTTP {response.status_code}); the request was not repeated there and nothing was "
        "sent to it: set base_url to the venue's own URL"
    )


def _origin(url: str, location: str) -> str:
    """Scheme, host and port of where ``location`` points, without any user, path or query."""
    try:
        parts = urlsplit(urljoin(url, location))
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "an unreadable location"
    host = (parts.hostname or "")[:100]
    return f"{parts.scheme[:10]}://{host}{port}" if host else "an unreadable location"


def clamped_wait(seconds: float) -> float | None:
    """``seconds`` within [0, ``MAX_RETRY_AFTER``]; None when it is not a number at all (NaN)."""
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def retry_after(header: object) -> float | None:
    """Seconds from an HTTP ``Retry-After`` given in seconds, clamped; None when absent or unreadable."""
    if not isinstance(header, str) or not _SECONDS.fullmatch(header):
        return None
    return clamped_wait(float(header))


def wait_until(reset_millis: object, now: float) -> float | None:
    """Seconds from ``now`` until a reset time in epoch milliseconds (Bybit's), clamped; None when unreadable."""
    if not isinstance(reset_millis, str) or not _MILLIS.fullmatch(reset_millis):
        return None
    limit_ms = int(MAX_RETRY_AFTER * 1000)
    wait_ms = min(max(int(reset_millis) - int(now * 1000), 0), limit_ms)  # in integers: 10**23 ms is no overflow
    return wait_ms / 1000
