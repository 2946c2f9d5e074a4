"""The error tree, named for what the caller must do.

    ReconError                      base of every error this project raises on purpose
    ├── RetryLater                  transient: the same call may succeed later (venue down, lock held, DB busy)
    │   ├── VenueUnavailable        the venue did not answer, timed out or failed (5xx)
    │   ├── RateLimited             the venue asked us to wait; ``retry_after`` seconds when it said so
    │   ├── DatabaseUnavailable     the database could not be reached, or dropped the connection
    │   ├── CoordinationUnavailable Redis (locks, triggers, the bots' cache, the message broker) could not be reached
    │   ├── NoWorker                no worker consumes the queue a request would go to: start one (nothing was sent)
    │   └── WaitExpired             the workers did not finish a run in the time its caller waited (request withdrawn)
    ├── FixConfiguration            a person must change configuration or input before retrying
    │   ├── AuthenticationFailed    credentials missing, wrong or revoked
    │   └── ConflictingFill         a fill id already recorded with other contents (names what differs)
    ├── RequestRejected             the venue refused this request; sent again unchanged it fails again
    │   └── DuplicateClientOrderId  the venue already has an order with this client order id (an earlier attempt)
    ├── InvalidResponse             the venue answered with something we cannot trust (names the field)
    ├── DatabaseRefused             the database refused a statement (a value, a constraint, a corrupt file)
    └── Stop                        continuing would be unsafe: the account is halted or our run was fenced off
        └── StaleRun                another run took over the account (fencing epoch moved); nothing was written

Every translation from a lower-level error keeps it as ``__cause__``.
"""

from __future__ import annotations


class ReconError(Exception):
    """Base of every error this project raises on purpose.

    ``run_id`` names the run recorded as failed because of this error, when one was (a transient failure is
    recorded, then raised so that the caller retries).
    """

    run_id: int | None = None


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


class DatabaseUnavailable(RetryLater):
    """The database could not be reached, or dropped the connection; nothing was committed."""


class CoordinationUnavailable(RetryLater):
    """Redis could not be reached: no lock, trigger, cache write or task message went through."""


class NoWorker(RetryLater):
    """No worker consumes the queue a request would be sent to; nothing was sent."""


class WaitExpired(RetryLater):
    """The caller stopped waiting for the workers; the request was withdrawn (a run already started finishes)."""


class FixConfiguration(ReconError):
    """Configuration or input is wrong; retrying without a change will fail the same way."""


class AuthenticationFailed(FixConfiguration):
    """Credentials are missing, wrong or revoked."""


class ConflictingFill(FixConfiguration):
    """A fill id is already in the books with different contents; nothing was recorded."""


class RequestRejected(ReconError):
    """The venue refused the request itself (bad parameters, an order it will not take)."""


class DuplicateClientOrderId(RequestRejected):
    """The venue already holds an order with the client order id sent: an earlier attempt got through."""


class InvalidResponse(ReconError):
    """The venue's answer is malformed or incomplete; the snapshot cannot be trusted."""


class DatabaseRefused(ReconError):
    """The database refused a statement (a value out of range, a broken constraint, a file that is not a
    database); nothing was committed."""


class Stop(ReconError):
    """Continuing would be unsafe."""


class StaleRun(Stop):
    """Another run took over the account after this one began; this run must not write."""
