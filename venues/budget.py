"""The request budget an adapter takes from before every request it sends to a venue.

A venue limits requests per account (Bybit per UID and second, Alpaca per account and minute), whichever worker
sends them. So the budget is shared by everyone using the same credentials: ``workers.rate_budget`` keeps it in
Redis and ``workers.connect`` hands it to the adapter it opens. This module only says what an adapter may ask of
it, so that venues import no Redis; an adapter opened without one (a test, the embedded default) is unlimited.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from venues.credentials import Credentials


class RequestBudget(Protocol):
    """Permission to send requests to a venue."""

    def take(self, count: int = 1) -> None:
        """Return when ``count`` requests (messages) may go out, all taken at once (at once, or after a bounded wait).

        Raises ``RateLimited`` (with ``retry_after``) when the wait would be longer than the budget allows, and
        ``CoordinationUnavailable`` when the shared budget cannot be asked: no request is sent without a token.
        """
        ...


class Unlimited:
    """A budget that never waits: for an adapter not given a shared one."""

    def take(self, count: int = 1) -> None:
        """Return at once."""


UNLIMITED = Unlimited()


def key_identity(venue: str, credentials: Credentials) -> str:
    """A stable name for one venue key that reveals neither the key nor the secret: SHA-256 of the venue and the
    API key (API keys are long random strings, so the digest cannot be turned back into one)."""
    material = f"{venue}\0{credentials.key.reveal()}".encode()
    return hashlib.sha256(material).hexdigest()[:32]
