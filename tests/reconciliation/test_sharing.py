"""One venue account traded by two bots: each run compares its own books with its share, and acts only on its part."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from reconciliation.effects import BookFill
from reconciliation.plan import Plan, Resolution, RunStatus, compare, plan
from reconciliation.policy import Rules, Strategy
from reconciliation.sharing import Owner, SharedAccount, attribute, own_share
from reconciliation.values import Books, InstrumentKey, Snapshot
from tests.reconciliation.recon_builders import (
    BTC,
    ETH,
    LATER,
    SYNC_ALL,
    book_fills,
    books_from,
    buy,
    by_instrument,
    d,
    held,
    order,
    rules_all,
    snapshot,
    usd,
)

SOL = InstrumentKey("linear", "SOLUSDT")
HALT_ALL = rules_all(Strategy.HALT_AND_ALERT)


def shared_with_momentum(positions: Mapping[InstrumentKey, str] | None = None, **rest: Any) -> SharedAccount:
    """lxalgo/paper's view of venue account 'main', which momentum/paper also trades, holding ``positions``."""
    held_by_momentum = {key: {"momentum/paper": d(qty)} for key, qty in (positions or {}).items()}
    return SharedAccount("main", "lxalgo/paper", ("momentum/paper",), held_by_momentum, **rest)


def run(books: Books, venue: Snapshot, shared: SharedAccount, rules: Rules = SYNC_ALL) -> Plan:
    """Plan lxalgo's run as the pipeline does: on its share of the venue."""
    share = own_share(venue, shared)
    return plan(books, share, rules, LATER, compare(books, share, rules), shared)


def test_two_bots_on_one_venue_account_are_each_in_sync_with_their_share() -> None:
    lxalgo = books_from(buy("l1", "1", "60000"))
    venue = snapshot(held("1", "60000"), held("10", "3000", key=ETH))

    result = run(lxalgo, venue, shared_with_momentum({ETH: "10"}), HALT_ALL)

    assert result.status is RunStatus.IN_SYNC
    assert result.matched == (BTC,)


def test_without_sharing_the_same_venue_would_halt_the_bot() -> None:
    lxalgo = books_from(buy("l1", "1", "60000"))
    venue = snapshot(held("1", "60000"), held("10", "3000", key=ETH))

    assert plan(lxalgo, venue, HALT_ALL, LATER).status is RunStatus.HALTED


def test_a_difference_only_this_bots_books_hold_is_its_own_and_its_policy_applies() -> None:
    lxalgo = books_from(buy("l1", "2", "60000"))
    venue = snapshot(held("1", "60000", mark="61000"), held("10", "3000", key=ETH))

    decision = by_instrument(run(lxalgo, venue, shared_with_momentum({ETH: "10"})))[BTC]

    assert decision.outcome is Resolution.RESOLVED
    assert [(f.fill.side, f.fill.qty) for f in decision.effects if isinstance(f, BookFill)] == [("sell", d(1))]


def test_a_difference_only_another_bots_books_hold_is_left_to_that_bots_run() -> None:
    lxalgo = books_from(buy("l1", "1", "60000"))
    venue = snapshot(held("1", "60000"), held("4", "3000", key=ETH))  # momentum's 10 ETH were partly closed

    result = run(lxalgo, venue, shared_with_momentum({ETH: "10"}), HALT_ALL)

    assert result.status is RunStatus.IN_SYNC
    assert result.decisions == ()


def test_a_position_no_bots_books_hold_is_reported_unattributed_and_not_adopted() -> None:
    lxalgo = books_from(buy("l1", "1", "60000"))
    venue = snapshot(held("1", "60000"), held("5", "150", key=SOL))

    result = run(lxalgo, venue, shared_with_momentum({}))

    decision = by_instrument(result)[SOL]
    assert decision.outcome is Resolution.WARNED
    assert decision.action == (
        "unattributed in shared venue account 'main': held by none of its bots' books (lxalgo/paper, momentum/paper)"
    )
    assert book_fills(result) == []


def test_a_difference_on_an_instrument_both_bots_hold_is_unattributed_even_under_a_halting_policy() -> None:
    lxalgo = books_from(buy("l1", "1", "60000"))
    venue = snapshot(held("1.5", "60000"))  # lxalgo 1 + momentum 1 = 2 in the books

    result = run(lxalgo, venue, shared_with_momentum({BTC: "1"}), HALT_ALL)

    decision = by_instrument(result)[BTC]
    assert (decision.outcome, result.halt_reason) == (Resolution.WARNED, None)
    assert "held by several bots' books (lxalgo/paper, momentum/paper)" in decision.action


def test_the_share_is_the_venue_less_the_other_bots_books_orders_fills_and_cash() -> None:
    theirs = order("momentum-1", "v-9", key=ETH)
    venue = snapshot(
        held("3", "60000"),
        held("10", "3000", key=ETH),
        open_orders=[theirs, order("lxalgo-1", "v-1")],
        fills=[buy("their-fill", "10", "3000", key=ETH), buy("own-fill", "3", "60000")],
        cash=usd("10000"),
    )
    shared = shared_with_momentum(
        {BTC: "2", ETH: "10", SOL: "-4"},
        order_names=frozenset({"momentum-1"}),
        fill_ids=frozenset({"their-fill"}),
        expected_cash=usd("6000"),
    )

    share = own_share(venue, shared)

    assert {p.key: p.qty for p in share.positions} == {BTC: d(1), ETH: d(0), SOL: d(4)}
    assert [o.client_order_id for o in share.open_orders] == ["lxalgo-1"]
    assert [f.fill_id for f in share.fills] == ["own-fill"]
    assert share.cash == usd("4000")


def test_cash_and_unknown_orders_in_a_shared_account_are_reported_never_acted_on() -> None:
    lxalgo = books_from(buy("l1", "1", "60000"), expected_cash=usd("1000"))
    venue = snapshot(held("1", "60000"), cash=usd("9000"), open_orders=[order(None, "v-stranger")])

    result = run(lxalgo, venue, shared_with_momentum(expected_cash=usd("5000")), SYNC_ALL)

    assert [(d.finding.kind, d.outcome) for d in result.decisions] == [
        ("cash_mismatch", Resolution.WARNED),
        ("order_unknown_to_ledger", Resolution.WARNED),
    ]
    assert result.effects() == ()
    assert all("unattributed in shared venue account 'main'" in d.action for d in result.decisions)


def test_attribution_names_the_one_holder_or_nobody() -> None:
    shared = shared_with_momentum({ETH: "10", BTC: "1"})

    assert attribute(BTC, Decimal(0), shared).owner is Owner.OTHER
    assert attribute(ETH, Decimal(2), shared).owner is Owner.UNATTRIBUTED
    assert attribute(SOL, Decimal(2), shared).owner is Owner.OWN
    assert attribute(SOL, Decimal(0), shared).holders == ()
