"""What a Bybit position is valued in, for a run's value at mark: the settle coin it was listed under."""

from __future__ import annotations

from venues.bybit import settle_currency


def test_linear_contracts_are_valued_in_their_settle_coin_options_in_usdc_inverse_in_none() -> None:
    assert settle_currency("linear", {"settleCoin": "USDT"}) == "USDT"
    assert settle_currency("linear", {"settleCoin": "USDC"}) == "USDC"
    assert settle_currency("option", {}) == "USDC"
    assert settle_currency("inverse", {"settleCoin": "BTC"}) is None  # a USD amount settled in coin: not qty × mark
