"""One naming rule for bots and accounts: what it takes, what it refuses, and how it says so."""

from __future__ import annotations

import pytest

from reconciliation.errors import FixConfiguration
from reconciliation.names import check_name, is_name


@pytest.mark.parametrize("name", ["lxalgo", "paper", "bot-2", "a_b", "0", "x" * 64])
def test_names_following_the_rule_are_taken(name: str) -> None:
    assert is_name(name) and check_name(name, "bot") == name


@pytest.mark.parametrize(
    "name", ["", "LXAlgo", "-lead", "_lead", "evil'); DROP TABLE runs;--", "a b", "x" * 65, "é", None, 7, ["x"]]
)
def test_names_breaking_the_rule_are_refused_with_a_short_message(name: object) -> None:
    assert not is_name(name)
    with pytest.raises(FixConfiguration) as refused:
        check_name(name, "bot")
    assert str(refused.value).startswith("invalid bot name") and len(str(refused.value)) < 200


def test_a_huge_name_is_shortened_in_the_message() -> None:
    with pytest.raises(FixConfiguration) as refused:
        check_name("x" * 1_000_000, "account")
    assert "(1000002 characters)" in str(refused.value) and len(str(refused.value)) < 200
