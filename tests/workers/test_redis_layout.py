"""The pure mapping from an account's positions to Redis writes in a bot's own layout (``workers.redis_layout``)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from reconciliation.values import InstrumentKey, Position
from workers.redis_layout import (
    OWN_LAYOUT,
    Delete,
    KeySpec,
    Layout,
    LayoutClash,
    SetHash,
    SetString,
    Sides,
    Write,
    plan_writes,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BTC = InstrumentKey("linear", "BTCUSDT")
ETH = InstrumentKey("linear", "ETHUSDT")
#: seed 004's bots: a string with the size per symbol, and a details hash beside it; flat is size 0, side None
SEED = Layout(
    (
        KeySpec("position:lxalgo_001:{symbol}", "string", value="size"),
        KeySpec(
            "position:lxalgo_001:{symbol}:details",
            "hash",
            fields=(("size", "size"), ("side", "side"), ("avg_price", "avg_price"), ("last_update", "updated_at")),
        ),
    ),
    closed="flat",
    sides=Sides("Buy", "Sell", "None"),
)


def position(key: InstrumentKey, qty: str, avg: str | None) -> Position:
    return Position(key, Decimal(qty), Decimal(avg) if avg is not None else None)


def writes(layout: Layout, *positions: Position, published: tuple[InstrumentKey, ...] = ()) -> tuple[Write, ...]:
    return plan_writes(layout, bot="lxalgo", account="paper", positions=positions, published=published, now=NOW,
                       run_id=7).writes  # fmt: skip


def details(size: str, side: str, avg: str | None) -> tuple[tuple[str, str], ...]:
    fields = {"size": size, "side": side, "avg_price": avg, "last_update": NOW.isoformat()}
    return tuple((name, value) for name, value in fields.items() if value is not None)


@pytest.mark.parametrize(
    ("positions", "expected"),
    [
        pytest.param((), (Delete("recon:lxalgo:paper:positions"),), id="flat-account"),
        pytest.param(
            (position(BTC, "30", "51000"), position(InstrumentKey("inverse", "ETHUSD", 2), "-1.50", None)),
            (
                Delete("recon:lxalgo:paper:positions"),
                SetHash(
                    "recon:lxalgo:paper:positions",
                    (
                        ("linear:BTCUSDT:0", '{"qty": "30", "avg_entry": "51000"}'),
                        ("inverse:ETHUSD:2", '{"qty": "-1.5", "avg_entry": null}'),
                    ),
                ),
            ),
            id="long-and-short-without-entry",
        ),
    ],
)
def test_our_own_layout_is_the_hash_per_account_published_before_publishers_existed(
    positions: tuple[Position, ...], expected: tuple[Write, ...]
) -> None:
    assert writes(OWN_LAYOUT, *positions) == expected
    assert plan_writes(OWN_LAYOUT, bot="b", account="a", positions=positions, now=NOW, run_id=1).index is None


@pytest.mark.parametrize(
    ("positions", "published", "expected"),
    [
        pytest.param(
            (position(BTC, "0.50", "50333.3333"),),
            (),
            (
                SetString("position:lxalgo_001:BTCUSDT", "0.5"),
                Delete("position:lxalgo_001:BTCUSDT:details"),
                SetHash("position:lxalgo_001:BTCUSDT:details", details("0.5", "Buy", "50333.3333")),
            ),
            id="long",
        ),
        pytest.param(
            (position(ETH, "-40", "3100"),),
            (),
            (
                SetString("position:lxalgo_001:ETHUSDT", "40"),
                Delete("position:lxalgo_001:ETHUSDT:details"),
                SetHash("position:lxalgo_001:ETHUSDT:details", details("40", "Sell", "3100")),
            ),
            id="short-is-an-unsigned-size-and-sell",
        ),
        pytest.param(
            (position(BTC, "1", None),),
            (),
            (
                SetString("position:lxalgo_001:BTCUSDT", "1"),
                Delete("position:lxalgo_001:BTCUSDT:details"),
                SetHash("position:lxalgo_001:BTCUSDT:details", details("1", "Buy", None)),
            ),
            id="unknown-entry-price-is-left-out-of-the-hash",
        ),
        pytest.param(
            (position(BTC, "1", "100"),),
            (BTC, ETH),
            (
                SetString("position:lxalgo_001:BTCUSDT", "1"),
                SetString("position:lxalgo_001:ETHUSDT", "0"),
                Delete("position:lxalgo_001:BTCUSDT:details"),
                SetHash("position:lxalgo_001:BTCUSDT:details", details("1", "Buy", "100")),
                Delete("position:lxalgo_001:ETHUSDT:details"),
                SetHash("position:lxalgo_001:ETHUSDT:details", details("0", "None", "0")),
            ),
            id="closed-since-the-last-run-is-written-flat-as-the-seed-does",
        ),
        pytest.param(
            (position(BTC, "0", "100"),),
            (BTC,),
            (
                SetString("position:lxalgo_001:BTCUSDT", "0"),
                Delete("position:lxalgo_001:BTCUSDT:details"),
                SetHash("position:lxalgo_001:BTCUSDT:details", details("0", "None", "0")),
            ),
            id="a-zero-quantity-is-flat",
        ),
    ],
)
def test_the_seed_layout(
    positions: tuple[Position, ...], published: tuple[InstrumentKey, ...], expected: tuple[Write, ...]
) -> None:
    assert writes(SEED, *positions, published=published) == expected


def test_the_index_remembers_only_what_is_held_now() -> None:
    planned = plan_writes(SEED, bot="lxalgo", account="paper", positions=[position(BTC, "1", "100")],
                          published=[ETH], now=NOW, run_id=7)  # fmt: skip

    assert planned.index == frozenset({BTC})


def test_closed_delete_removes_the_keys_of_instruments_no_longer_held() -> None:
    layout = Layout((KeySpec("pos:{bot}:{account}:{category}:{symbol}:{leg}", "string", json=(("qty", "qty"),)),))

    assert writes(layout, position(BTC, "2", "10"), published=(BTC, ETH)) == (
        SetString("pos:lxalgo:paper:linear:BTCUSDT:0", '{"qty": "2"}'),
        Delete("pos:lxalgo:paper:linear:ETHUSDT:0"),
    )


def test_a_hash_per_account_with_closed_flat_keeps_a_flat_field_for_a_closed_instrument() -> None:
    layout = Layout(
        (KeySpec("book:{bot}", "hash", field="{symbol}", json=(("side", "side"), ("size", "size"))),),
        closed="flat",
    )

    assert writes(layout, position(BTC, "-2", "10"), published=(ETH,)) == (
        SetHash("book:lxalgo", (("BTCUSDT", '{"side": "short", "size": "2"}'),
                                ("ETHUSDT", '{"side": "flat", "size": "0"}'))),
    )  # fmt: skip


def test_a_closed_leg_sharing_a_key_with_a_held_one_does_not_overwrite_it() -> None:
    legs = (InstrumentKey("linear", "BTCUSDT", 1), InstrumentKey("linear", "BTCUSDT", 2))
    layout = Layout((KeySpec("pos:{symbol}", "string", value="qty"),))

    assert writes(layout, position(legs[1], "-3", "10"), published=legs) == (SetString("pos:BTCUSDT", "-3"),)


def test_two_held_instruments_on_one_key_are_a_clash_naming_both() -> None:
    legs = (position(InstrumentKey("linear", "BTCUSDT", 1), "1", "10"),
            position(InstrumentKey("linear", "BTCUSDT", 2), "-1", "10"))  # fmt: skip

    with pytest.raises(LayoutClash, match=r"linear:BTCUSDT:1 and linear:BTCUSDT:2 .*'position:lxalgo_001:BTCUSDT'"):
        writes(SEED, *legs)


def test_every_value_is_a_string_and_decimals_are_never_floats() -> None:
    every = tuple((name, name) for name in ("symbol", "category", "leg", "instrument", "size", "qty", "side",
                                            "avg_price", "updated_at", "run_id"))  # fmt: skip
    layout = Layout((KeySpec("v:{symbol}", "hash", fields=every),))  # type: ignore[arg-type]

    [_, written] = writes(layout, position(InstrumentKey("inverse", "BTCUSD", 2), "-1E-8", "1E+5"))

    assert isinstance(written, SetHash)
    assert dict(written.mapping) == {
        "symbol": "BTCUSD", "category": "inverse", "leg": "2", "instrument": "inverse:BTCUSD:2", "size": "0.00000001",
        "qty": "-0.00000001", "side": "short", "avg_price": "100000", "updated_at": "2026-11-20T12:00:00+00:00",
        "run_id": "7",
    }  # fmt: skip
