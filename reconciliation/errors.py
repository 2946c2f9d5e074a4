"""The error tree, named for what the caller must do.

    ReconError                      base of every error this project raises on purpose
    ├── RetryLater                  transient: the same call may succeed later (venue down, lock held, DB busy)
    │   ├── VenueUnavailable        the venue did not answer, timed out or failed (5xx)
    │   └── RateLimited             the venue asked us to wait; ``retry_after`` seconds when it said so
    ├── FixConfiguration            a person must change configuration or input before retrying
    │   └── AuthenticationFailed    credentials missing, wrong or revoked
    ├── RequestRejected             the venue refused this request; sent again unchanged it fails again
    ├── InvalidResponse             the venue answered with something we cannot trust (names the field)
    └── Stop                        continuing would be unsafe: the account is halted or our run was fenced off
        └── StaleRun                another run took over the account (fencing epoch moved); nothing was written

Every translation from a lower-level error keeps it as ``__cause__``.
"""

from __future__ import annotations


class ReconError(Exception):
    """Base of every error this project raises on purpose."""


class RetryLater(ReconError):
    """A transient failure: the same call may succeed later."""


class VenueUnavailable(RetryLater):
    """The venue did not answer in time, refused the connection or failed on its side."""


class RateLimited(RetryLater):
    """The venue asked us to slow down."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        if retry_after is not None:
            message = f"{message} (retry after {retry_after:.1f} s)"
        super().__init__(message)
        self.retry_after = retry_after


class FixConfiguration(ReconError):
    """Configuration or input is wrong; retrying without a change will fail the same way."""


class AuthenticationFailed(FixConfiguration):
    """Credentials are missing, wrong or revoked."""


class RequestRejected(ReconError):
    """The venue refused the request itself (bad parameters, an order it will not take)."""


class InvalidResponse(ReconError):
    """The venue's answer is malformed or incomplete; the snapshot cannot be trusted."""


class Stop(ReconError):
    """Continuing would be unsafe."""


class StaleRun(Stop):
    """Another run took over the account after this one began; this run must not write."""
