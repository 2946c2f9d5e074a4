"""Venues behind one interface: each turns what a venue reports into a complete ``Snapshot`` or raises.

``sim`` reads a JSON state file. Real venues (Bybit through pybit, Alpaca through alpaca-py) live beside it;
this is the only package that imports venue SDKs.
"""

from venues.base import Venue

__all__ = ["Venue"]
