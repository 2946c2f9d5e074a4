"""What one contract of an instrument stands for: its multiplier, and for an option its series (underlying and
expiry), which is how legs adopted together are recognised as one multi-leg structure.

A price is quoted per unit of the underlying; one contract moves by ``multiplier`` × price (a US equity or
index option: 100). P&L, group credits and position values all use the multiplier.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from reconciliation.values import InstrumentKey

ONE = Decimal(1)

#: Multipliers by category where the category alone says it on every venue using it: Alpaca's ``us_option``
#: (OCC options on US equities and indexes).
DEFAULT_MULTIPLIERS: Mapping[str, Decimal] = {"us_option": Decimal(100)}


@dataclass(frozen=True)
class Multipliers:
    """Contract multiplier per instrument, first found of: the fleet file's ``by_symbol`` (category, symbol), its
    ``by_category``, what the venue reports, the venue kind's defaults by category; else 1."""

    by_symbol: Mapping[tuple[str, str], Decimal] = field(default_factory=dict)
    by_category: Mapping[str, Decimal] = field(default_factory=dict)
    defaults: Mapping[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_MULTIPLIERS))

    def of(self, key: InstrumentKey, venue_reported: Decimal | None = None) -> Decimal:
        """The multiplier of ``key``, given what the venue reports for it (None: it does not say)."""
        configured = self.by_symbol.get((key.category, key.symbol), self.by_category.get(key.category))
        if configured is not None:
            return configured
        if venue_reported is not None and venue_reported > 0:
            return venue_reported
        return self.defaults.get(key.category, ONE)


@dataclass(frozen=True, order=True)
class OptionSeries:
    """The underlying and expiry an option belongs to: legs of one series form spreads, straddles, condors."""

    underlying: str
    expiry: date

    def __str__(self) -> str:
        return f"{self.underlying} {self.expiry.isoformat()}"


# OCC: root (1-6), yymmdd, C/P, strike × 1000 in 8 digits; IBKR pads the root with spaces.
_OCC = re.compile(r"^(?P<root>[A-Z0-9.]{1,6})\s*(?P<expiry>\d{6})[CP]\d{8}$")
# Bybit: BTC-27DEC26-100000-C, optionally with a settle coin suffix (-USDT).
_BYBIT = re.compile(r"^(?P<root>[A-Z0-9]+)-(?P<expiry>\d{1,2}[A-Z]{3}\d{2})-\d+(\.\d+)?-[CP](-[A-Z]+)?$")


def option_series(symbol: str) -> OptionSeries | None:
    """The series of an option symbol (OCC, as Alpaca and IBKR name them, or Bybit's); None for anything else."""
    if match := _OCC.match(symbol):
        expiry = datetime.strptime(match["expiry"], "%y%m%d").date()
        return OptionSeries(match["root"], expiry)
    if match := _BYBIT.match(symbol):
        expiry = datetime.strptime(match["expiry"].zfill(7), "%d%b%y").date()
        return OptionSeries(match["root"], expiry)
    return None


def recovered_groups(keys: Iterable[InstrumentKey]) -> dict[InstrumentKey, str]:
    """Option legs adopted together that share a series, named as one position group each (two legs or more);
    the name is fixed by the series and the legs, so adopting the same legs again names the same group."""
    by_series: dict[OptionSeries, list[InstrumentKey]] = {}
    for key in keys:
        series = option_series(key.symbol)
        if series is not None:
            by_series.setdefault(series, []).append(key)
    groups: dict[InstrumentKey, str] = {}
    for series, legs in sorted(by_series.items()):
        if len(legs) < 2:
            continue
        legs_id = hashlib.sha256("|".join(sorted(map(str, legs))).encode()).hexdigest()[:8]
        name = f"recovered {series} {legs_id}"
        groups.update(dict.fromkeys(legs, name))
    return groups
