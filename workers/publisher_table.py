"""The ``publisher`` table of the fleet file: a bot's own Redis layout, written after every committed run.

    [bots.lxalgo.publisher]                      # or [bots.lxalgo.accounts.live.publisher] (replaces the bot's)
    closed = "flat"                              # "delete" (default) or "flat": size 0, the flat side, price 0
    db = 1                                       # the bot's Redis database (default: RECON_REDIS_URL's)
    sides = { long = "Buy", short = "Sell", flat = "None" }
    [bots.lxalgo.publisher.keys.size]            # one table per key pattern, named as you like
    key = "position:lxalgo_001:{symbol}"
    type = "string"
    value = "size"
    [bots.lxalgo.publisher.keys.details]
    key = "position:lxalgo_001:{symbol}:details"
    type = "hash"
    fields = { size = "size", side = "side", avg_price = "avg_price", last_update = "updated_at" }

The shape is checked by pydantic with the rest of the fleet file; ``layout_of`` checks what the shape cannot say
(placeholders, which keys go with which type) and raises ``LayoutProblem`` naming the table and the key.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from reconciliation.names import NAME_PATTERN
from workers.redis_layout import (
    INSTRUMENT_PLACEHOLDERS,
    PLACEHOLDERS,
    KeySpec,
    Layout,
    Sides,
    ValueName,
    placeholders,
)

OUR_PREFIX = "recon:"  # this service's own keys (locks, triggers, its positions cache) live under it
_KNOWN = ", ".join(f"{{{name}}}" for name in sorted(PLACEHOLDERS))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SidesTable(_Strict):
    long: str = Field(default="long", min_length=1)
    short: str = Field(default="short", min_length=1)
    flat: str = Field(default="flat", min_length=1)


class KeyTable(_Strict):
    key: str = Field(min_length=1, max_length=512)
    type: Literal["string", "hash"]
    field: str | None = Field(default=None, min_length=1, max_length=512)
    value: ValueName | None = None
    json_: dict[str, ValueName] | None = Field(default=None, alias="json", min_length=1)
    fields: dict[str, ValueName] | None = Field(default=None, min_length=1)


class PublisherTable(_Strict):
    """``[bots.B.publisher]`` or ``[bots.B.accounts.A.publisher]``."""

    keys: dict[Annotated[str, Field(pattern=NAME_PATTERN)], KeyTable] = Field(min_length=1)
    closed: Literal["delete", "flat"] = "delete"
    sides: SidesTable = Field(default_factory=SidesTable)
    db: StrictInt | None = Field(default=None, ge=0, le=1023)  # the bot's Redis database (seed 004: redis_db=1)


class LayoutProblem(ValueError):
    """What is wrong in a publisher table: ``table`` is relative to it ("" or ".keys.NAME"), ``key`` the key."""

    def __init__(self, table: str, key: str, message: str) -> None:
        super().__init__(f"{table}: key {key!r}: {message}")
        self.table, self.key, self.message = table, key, message


def layout_of(table: PublisherTable) -> Layout:
    """The layout a valid table describes; ``LayoutProblem`` for the first thing wrong with it."""
    sides = table.sides
    if len({sides.long, sides.short, sides.flat}) < 3:
        raise LayoutProblem(".sides", "flat", "long, short and flat need three different words")
    specs = tuple(_spec(f".keys.{name}", key) for name, key in table.keys.items())
    seen: dict[str, str] = {}
    for name, spec in zip(table.keys, specs, strict=True):
        if spec.key in seen:
            raise LayoutProblem(f".keys.{name}", "key", f"the same pattern as [keys.{seen[spec.key]}]")
        seen[spec.key] = name
    return Layout(specs, closed=table.closed, sides=Sides(sides.long, sides.short, sides.flat), db=table.db)


def _spec(where: str, table: KeyTable) -> KeySpec:
    names = _checked(where, "key", table.key, PLACEHOLDERS)
    if table.key.startswith(OUR_PREFIX):
        raise LayoutProblem(where, "key", f"keys starting {OUR_PREFIX!r} are this service's own: choose another prefix")
    given = {"value": table.value, "json": table.json_, "fields": table.fields}
    per_instrument = bool(INSTRUMENT_PLACEHOLDERS.intersection(names))
    if per_instrument:
        if "symbol" not in names:
            raise LayoutProblem(where, "key", "a key per instrument needs {symbol}")
        if table.field is not None:
            raise LayoutProblem(where, "field", "only a hash for the whole account (a key without {symbol}) has one")
        allowed = ("fields",) if table.type == "hash" else ("value", "json")
    else:
        if table.type != "hash" or table.field is None:
            raise LayoutProblem(where, "field" if table.type == "hash" else "type",
                                "a key without {symbol} holds every instrument: make it a hash with a 'field' "
                                "pattern naming {symbol}")  # fmt: skip
        if "symbol" not in _checked(where, "field", table.field, PLACEHOLDERS):
            raise LayoutProblem(where, "field", "the field pattern needs {symbol}")
        allowed = ("value", "json")
    present = [name for name, value in given.items() if value is not None]
    wrong = [name for name in present if name not in allowed]
    if wrong or len(present) != 1:
        what = f"a {'key per instrument' if per_instrument else 'hash for the whole account'} of type {table.type}"
        raise LayoutProblem(where, (wrong or present or [allowed[0]])[0],
                            f"{what} takes exactly one of {' or '.join(map(repr, allowed))}")  # fmt: skip
    return KeySpec(
        key=table.key,
        type=table.type,
        field=table.field,
        value=table.value,
        json=tuple(table.json_.items()) if table.json_ else None,
        fields=tuple(table.fields.items()) if table.fields else None,
    )


def _checked(where: str, key: str, pattern: str, known: frozenset[str]) -> tuple[str, ...]:
    try:
        names = placeholders(pattern)
    except ValueError as error:
        raise LayoutProblem(where, key, f"not a pattern: {error}") from None
    for name in names:
        if name not in known:
            raise LayoutProblem(where, key, f"unknown placeholder {{{name}}} (known: {_KNOWN})")
    return names


def key_patterns(layout: Layout, bot: str, account: str) -> tuple[str, ...]:
    """The layout's key patterns with the bot and account filled in (two accounts must not share one)."""
    return tuple(spec.key.format_map(_Keep(bot=bot, account=account)) for spec in layout.keys)


class _Keep(dict[str, str]):
    """Fills the account's placeholders and leaves the instrument's as they are."""

    def __missing__(self, name: str) -> str:
        return f"{{{name}}}"


__all__ = ["KeyTable", "LayoutProblem", "PublisherTable", "key_patterns", "layout_of"]
