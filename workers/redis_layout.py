"""How an account's positions become Redis writes in a bot's own layout. Pure: no I/O (``workers.publish`` writes).

A layout is a set of key specs. A spec whose key pattern names an instrument (``{symbol}``, ``{category}``,
``{leg}``) makes one key per instrument: a string holding one value or a JSON object, or a hash with a field per
value. A spec whose key names no instrument is one hash per account with a field per instrument. Values are ours,
by name (``VALUES``), always as strings: decimals without exponent, never floats.

An instrument published by an earlier run and no longer held is *closed*: its per-instrument keys are deleted, or
(``closed = "flat"``, the way seed 004's bots mark a flat position) written once more with size 0, the flat side
word and price 0. Which instruments were published is remembered per account (``Published.index``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from string import Formatter
from typing import Literal, get_args

from reconciliation.values import InstrumentKey, Position, plain

#: Our values a layout can publish, by name.
ValueName = Literal[
    "symbol", "category", "leg", "instrument", "size", "qty", "side", "avg_price", "updated_at", "run_id"
]
VALUES: tuple[str, ...] = get_args(ValueName)
ACCOUNT_PLACEHOLDERS = frozenset({"bot", "account"})
INSTRUMENT_PLACEHOLDERS = frozenset({"symbol", "category", "leg"})
PLACEHOLDERS = ACCOUNT_PLACEHOLDERS | INSTRUMENT_PLACEHOLDERS
Pairs = tuple[tuple[str, ValueName], ...]


@lru_cache(maxsize=1024)  # the same few patterns, filled in for every position of every run
def placeholders(pattern: str) -> tuple[str, ...]:
    """The placeholders of a pattern, in order; ValueError for a malformed one (a stray brace, ``{symbol!r}``,
    ``{leg:03}``): patterns are only ever filled in, never formatted."""
    names = []
    for _, name, spec, conversion in Formatter().parse(pattern):
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} takes no format or conversion")
        names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class KeySpec:
    """One key pattern and what is written under it (exactly one of ``value``, ``json``, ``fields`` is set)."""

    key: str
    type: Literal["string", "hash"]
    field: str | None = None  # the field pattern of a per-account hash
    value: ValueName | None = None
    json: Pairs | None = None
    fields: Pairs | None = None

    @property
    def per_instrument(self) -> bool:
        """True when the key pattern makes one key per instrument."""
        return bool(INSTRUMENT_PLACEHOLDERS.intersection(placeholders(self.key)))


@dataclass(frozen=True)
class Sides:
    """The bot's words for a long, a short and a flat position."""

    long: str = "long"
    short: str = "short"
    flat: str = "flat"


@dataclass(frozen=True)
class Layout:
    """A bot's Redis layout: its key specs, how a closed instrument is written, and its side words."""

    keys: tuple[KeySpec, ...]
    closed: Literal["delete", "flat"] = "delete"
    sides: Sides = field(default_factory=Sides)
    db: int | None = None  # the Redis database the bot reads; None: the one of RECON_REDIS_URL

    @property
    def tracks(self) -> bool:
        """True when writing needs the instruments published before (to delete or flatten the closed ones)."""
        return self.closed == "flat" or any(spec.per_instrument for spec in self.keys)


#: The project's own layout (``BotClient.last_positions`` reads it): one hash per account, a JSON object per
#: instrument, rebuilt whole after every committed run.
OWN_LAYOUT = Layout(
    (
        KeySpec(
            "recon:{bot}:{account}:positions",
            "hash",
            field="{category}:{symbol}:{leg}",
            json=(("qty", "qty"), ("avg_entry", "avg_price")),
        ),
    )
)


@dataclass(frozen=True)
class Delete:
    key: str


@dataclass(frozen=True)
class SetString:
    key: str
    value: str


@dataclass(frozen=True)
class SetHash:
    key: str
    mapping: tuple[tuple[str, str], ...]


Write = Delete | SetString | SetHash


@dataclass(frozen=True)
class Published:
    """The writes, in order, and the instruments to remember as published (None: the layout keeps no record)."""

    writes: tuple[Write, ...]
    index: frozenset[InstrumentKey] | None


class LayoutClash(ValueError):
    """Two instruments would be written to the same key or field (a pattern without ``{leg}`` or ``{category}``
    for an account holding both legs, or one symbol in two categories)."""


def plan_writes(
    layout: Layout,
    *,
    bot: str,
    account: str,
    positions: Iterable[Position],
    published: Iterable[InstrumentKey] = (),
    now: datetime,
    run_id: int,
) -> Published:
    """The writes that make ``layout`` show ``positions`` (the account's positions after a committed run), closing
    the instruments in ``published`` that are no longer held. Raises ``LayoutClash`` before anything is decided."""
    held = {p.key: p for p in positions if p.qty != 0}
    closed = sorted(set(published) - held.keys()) if layout.tracks else []
    common = {"bot": bot, "account": account}
    stamp = {"updated_at": now.isoformat(), "run_id": str(run_id)}
    held_values = {key: {**_instrument(key), **_held(p, layout.sides), **stamp} for key, p in held.items()}
    flat = {"size": "0", "qty": "0", "side": layout.sides.flat, "avg_price": "0", **stamp}
    closed_values = {key: {**_instrument(key), **flat} for key in closed}
    writes: list[Write] = []
    for spec in layout.keys:
        if spec.per_instrument:
            writes += _per_instrument(spec, common, held_values, closed_values, layout.closed)
        else:
            writes += _per_account(spec, common, held_values, closed_values, layout.closed)
    return Published(tuple(writes), frozenset(held) if layout.tracks else None)


def _instrument(key: InstrumentKey) -> dict[str, str | None]:
    return {"symbol": key.symbol, "category": key.category, "leg": str(key.leg), "instrument": str(key)}


def _held(position: Position, sides: Sides) -> dict[str, str | None]:
    return {
        "size": plain(abs(position.qty)),
        "qty": plain(position.qty),
        "side": sides.long if position.qty > 0 else sides.short,
        # no known entry price (or 0): JSON null, an absent hash field, an empty string
        "avg_price": plain(position.avg_entry) if position.avg_entry else None,
    }


Values = Mapping[InstrumentKey, Mapping[str, str | None]]


def _per_instrument(spec: KeySpec, common: Mapping[str, str], held: Values, closed: Values, how: str) -> list[Write]:
    held_keys = _rendered(spec.key, common, held)
    taken = set(held_keys.values())
    writes: list[Write] = []
    for instrument, key in held_keys.items():
        writes += _one_key(spec, key, held[instrument])
    for values in closed.values():
        key = _fill(spec.key, {**common, **values})
        if key in taken:
            continue  # the same key shows a held instrument (say, the other leg): it is written above
        writes += [Delete(key)] if how == "delete" else _one_key(spec, key, values)
    return writes


def _one_key(spec: KeySpec, key: str, values: Mapping[str, str | None]) -> list[Write]:
    if spec.type == "string":
        return [SetString(key, _encoded(spec, values))]
    mapping = tuple((name, text) for name, value in spec.fields or () if (text := values[value]) is not None)
    # replaced whole, so that a value no longer known (an entry price) does not linger from an earlier run
    return [Delete(key), SetHash(key, mapping)] if mapping else [Delete(key)]


def _per_account(spec: KeySpec, common: Mapping[str, str], held: Values, closed: Values, how: str) -> list[Write]:
    assert spec.field is not None
    key = _fill(spec.key, common)
    fields = _rendered(spec.field, common, held)
    mapping = {fields[instrument]: _encoded(spec, held[instrument]) for instrument in held}
    if how == "delete":
        # rebuilt whole: a field of an instrument no longer held goes with the rest
        return [Delete(key), SetHash(key, tuple(mapping.items()))] if mapping else [Delete(key)]
    for values in closed.values():
        name = _fill(spec.field, {**common, **values})
        mapping.setdefault(name, _encoded(spec, values))
    return [SetHash(key, tuple(mapping.items()))] if mapping else []


def _rendered(pattern: str, common: Mapping[str, str], values: Values) -> dict[InstrumentKey, str]:
    """The pattern filled in per instrument; two instruments filling it the same way are a ``LayoutClash``."""
    seen: dict[str, InstrumentKey] = {}
    out = {}
    for instrument, own in values.items():
        text = _fill(pattern, {**common, **own})
        if text in seen:
            raise LayoutClash(
                f"{seen[text]} and {instrument} would both be written to {text!r} ({pattern!r}): "
                "add {category} and {leg} to the pattern"
            )
        seen[text] = instrument
        out[instrument] = text
    return out


def _fill(pattern: str, values: Mapping[str, str | None]) -> str:
    return pattern.format_map({name: values[name] for name in placeholders(pattern)})


def _encoded(spec: KeySpec, values: Mapping[str, str | None]) -> str:
    if spec.json is not None:
        return json.dumps({name: values[value] for name, value in spec.json})
    assert spec.value is not None
    return values[spec.value] or ""


__all__ = [
    "OWN_LAYOUT",
    "VALUES",
    "Delete",
    "KeySpec",
    "Layout",
    "LayoutClash",
    "Published",
    "SetHash",
    "SetString",
    "Sides",
    "Write",
    "plan_writes",
]
