"""Which endpoint an adapter calls, and whether it moves real money: decided from the URL, never from a label.

A fleet file names an ``environment`` (Bybit mainnet/testnet/demo, Alpaca live/paper) and may set ``base_url``.
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
