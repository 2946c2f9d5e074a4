"""Interactive Brokers' error codes in our tree: what the gateway said becomes the ``ReconError`` to act on.

TWS and IB Gateway report problems as ``error`` messages (``reqId``, ``code``, text), not as failed calls:

    connection refused, no answer in time, connection dropped          VenueUnavailable
    502 cannot connect, 504 not connected, 1100 IB connectivity lost,
    1300 socket port reset, 2110 TWS-server connectivity broken        VenueUnavailable
    326 client id already in use                                       VenueUnavailable (another connection holds
                                                                       the id; give each process its own if lasting)
    100 message rate exceeded, 162/420 "pacing violation"              RateLimited
    321 "Read-Only mode" (placing or cancelling an order)              FixConfiguration: untick Read-Only API
    201 order rejected, 200 no security definition, 10147/10148 order
    not found or not cancellable, any other error naming an order      RequestRejected

Codes 1101/1102 (connectivity restored), 399 and 404 (an order held or queued, still working) and 2100-2199 (farm
status notices) other than 2110 are information.
Every error names the code and repeats IB's text, cut to ``MAX_MESSAGE`` characters (IB puts no secrets in it:
authentication is the gateway's login, not ours).
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciliation.errors import FixConfiguration, RateLimited, ReconError, RequestRejected, VenueUnavailable

MAX_MESSAGE = 300

UNREACHABLE = frozenset({502, 504, 1100, 1300, 2110})
CLIENT_ID_IN_USE = 326
RATE_LIMITED = frozenset({100})
PACING = frozenset({162, 420})
READ_ONLY = 321
#: Notices that change nothing for us: connectivity restored, data farm status, delayed data offered, an order
#: message (399: "will not be placed until the market opens"), a short sale held while shares are located (404).
NOTICES = frozenset({1101, 1102, 399, 404, 10167, *(code for code in range(2100, 2200) if code != 2110)})


@dataclass(frozen=True)
class IbError:
    """One ``error`` message from the gateway."""

    req_id: int
    code: int
    text: str

    def __str__(self) -> str:
        return f"IB error {self.code}: {self.text[:MAX_MESSAGE]}"


def is_pacing(error: IbError) -> bool:
    """True for IB telling us to slow down: code 100, or 162/420 saying "pacing violation"."""
    return error.code in RATE_LIMITED or (error.code in PACING and "pacing violation" in error.text.lower())


def is_read_only(error: IbError) -> bool:
    """True for the gateway refusing an order because its API is set to Read-Only."""
    return error.code == READ_ONLY and "read-only" in error.text.lower()


def ends_session(error: IbError) -> bool:
    """True when no request of this connection can be trusted to finish: stop waiting and fail the call."""
    return error.code in UNREACHABLE or error.code == CLIENT_ID_IN_USE or is_pacing(error) or is_read_only(error)


def is_notice(error: IbError) -> bool:
    """True for information that fails nothing (connectivity restored, farm status)."""
    return error.code in NOTICES


def translated(error: IbError, where: str) -> ReconError:
    """Our error for ``error``, received while doing ``where`` (``ibkr positions``, ``ibkr order place``...)."""
    shown = f"{where}: {error}"
    if is_pacing(error):
        return RateLimited(f"{shown} (IB's pacing limits: retry later)")
    if is_read_only(error):
        return FixConfiguration(
            f"{shown}: the gateway's API is Read-Only; untick Configure > API > Settings > Read-Only API in TWS or "
            "IB Gateway to let sync_to_local send orders"
        )
    if error.code == CLIENT_ID_IN_USE:
        return VenueUnavailable(
            f"{shown} (another connection uses this client_id; if it lasts, give this account its own client_id)"
        )
    if error.code in UNREACHABLE:
        return VenueUnavailable(f"{shown} (the gateway is up but not connected to IB: logged out or reconnecting)")
    return RequestRejected(shown)
