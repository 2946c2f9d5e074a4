"""Which endpoint an adapter calls, and whether it moves real money: decided from the URL, never from a label.

A fleet file names an ``environment`` (Bybit mainnet/testnet/demo, Alpaca live/paper, IBKR paper/live) and may set
``base_url`` (IBKR: ``host`` and ``port``, whose port decides).
The URL is what the adapter calls, so it decides: a known host says which environment it is, and a label that
disagrees with it is a configuration error. A host we do not know (a proxy, a regional mirror, a loopback fake)
counts as live, so every live-account guard applies to it. This module imports no SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from reconciliation.errors import FixConfiguration

BYBIT_URLS = {
    "mainnet": "https://api.bybit.com",
    "testnet": "https://api-testnet.bybit.com",
    "demo": "https://api-demo.bybit.com",
}
ALPACA_URLS = {"live": "https://api.alpaca.markets", "paper": "https://paper-api.alpaca.markets"}

#: Hosts whose environment we know, per venue. Every other host is unknown and counts as live.
BYBIT_HOSTS = {
    "api.bybit.com": "mainnet",
    "api.bytick.com": "mainnet",
    "api-testnet.bybit.com": "testnet",
    "api-demo.bybit.com": "demo",
}
ALPACA_HOSTS = {"api.alpaca.markets": "live", "paper-api.alpaca.markets": "paper"}
#: IBKR has no URL: TWS or IB Gateway runs beside the bot, and its API port is the convention that says which login
#: it holds (TWS 7496 live / 7497 paper, IB Gateway 4001 live / 4002 paper). Every other port counts as live.
IBKR_PORTS = {7496: "live", 7497: "paper", 4001: "live", 4002: "paper"}
IBKR_ENVIRONMENTS = ("paper", "live")
LIVE_ENVIRONMENTS = frozenset({"mainnet", "live"})


@dataclass(frozen=True)
class Endpoint:
    """The URL an adapter calls, the environment its host is known as (None: unknown), and whether it is live."""

    url: str
    known_as: str | None

    @property
    def live(self) -> bool:
        """True unless the host is known to be a test, demo or paper environment."""
        return self.known_as is None or self.known_as in LIVE_ENVIRONMENTS


def bybit_endpoint(environment: str, base_url: str | None) -> Endpoint:
    """Where a Bybit account with this label and optional URL is reached; a disagreeing label is refused."""
    return _endpoint("bybit", environment, base_url, BYBIT_URLS, BYBIT_HOSTS)


def alpaca_endpoint(environment: str, base_url: str | None) -> Endpoint:
    """Where an Alpaca account with this label and optional URL is reached; a disagreeing label is refused."""
    return _endpoint("alpaca", environment, base_url, ALPACA_URLS, ALPACA_HOSTS)


def ibkr_endpoint(environment: str, host: str, port: int) -> Endpoint:
    """Where an IBKR account is reached (``ibkr://host:port``), its environment known from the port; a label that
    disagrees with a known port is refused. The port is a convention a user can change in TWS, which is why an
    unknown one counts as live."""
    if environment not in IBKR_ENVIRONMENTS:
        raise FixConfiguration(f"ibkr: unknown environment {environment!r} (known: {', '.join(IBKR_ENVIRONMENTS)})")
    known_as = IBKR_PORTS.get(port)
    if known_as is not None and known_as != environment:
        raise FixConfiguration(
            f"ibkr: environment = {environment!r} but port {port} is the {known_as} port by IBKR's convention "
            "(TWS 7496 live / 7497 paper, IB Gateway 4001 live / 4002 paper); make them agree"
        )
    return Endpoint(url=f"ibkr://{host}:{port}", known_as=known_as)


def _endpoint(
    venue: str, environment: str, base_url: str | None, urls: dict[str, str], hosts: dict[str, str]
) -> Endpoint:
    if environment not in urls:
        raise FixConfiguration(f"{venue}: unknown environment {environment!r} (known: {', '.join(urls)})")
    url = (base_url or urls[environment]).rstrip("/")
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    known_as = hosts.get(host)
    if known_as is not None and known_as != environment:
        raise FixConfiguration(
            f"{venue}: environment = {environment!r} but base_url {url} is the {known_as} endpoint; "
            "make them agree (the URL decides whether orders move real money)"
        )
    return Endpoint(url=url, known_as=known_as)
