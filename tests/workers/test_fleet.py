"""The fleet file loader: the shipped example, how defaults and account overrides resolve, and error messages
that name the file, the table and the key."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

import cli
from reconciliation.errors import FixConfiguration
from reconciliation.findings import Kind, Thresholds
from reconciliation.policy import Policy, Rules, Strategy
from workers.fleet import AccountConfig, Fleet, load_fleet

SHIPPED_FLEET = Path(cli.__file__).resolve().parent / "examples" / "fleet.toml"
BOTS = ("lxalgo", "momentum", "shortseller")

PAPER = """
[bots.lxalgo.accounts.paper]
venue = "sim"
state_file = "venues/lxalgo_paper.json"
"""

WriteFleet = Callable[[str], Path]


@pytest.fixture
def write_fleet(tmp_path: Path) -> WriteFleet:
    """Writes TOML text as ``fleet.toml`` in a temporary folder and returns its path."""

    def write(text: str) -> Path:
        path = tmp_path / "fleet.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="module")
def shipped_fleet() -> Fleet:
    """The example fleet shipped in cli/examples, loaded in place."""
    return load_fleet(SHIPPED_FLEET)


def load_one(write_fleet: WriteFleet, text: str) -> AccountConfig:
    """Load a fleet file that must hold exactly one account, and return it."""
    fleet = load_fleet(write_fleet(text))
    assert len(fleet.accounts) == 1
    return fleet.accounts[0]


def load_error(write_fleet: WriteFleet, text: str) -> tuple[Path, str]:
    """Load a fleet file that must be refused; returns its path and the error message."""
    path = write_fleet(text)
    with pytest.raises(FixConfiguration) as caught:
        load_fleet(path)
    return path, str(caught.value)


# --- the shipped example ---------------------------------------------------------------------------------------


def test_shipped_example_has_paper_and_live_for_each_of_the_three_bots(shipped_fleet: Fleet) -> None:
    assert [a.label for a in shipped_fleet.accounts] == [
        "lxalgo/paper",
        "lxalgo/live",
        "momentum/paper",
        "momentum/live",
        "shortseller/paper",
        "shortseller/live",
    ]
    assert {a.venue for a in shipped_fleet.accounts} == {"sim"}
    assert shipped_fleet.path == SHIPPED_FLEET


def test_shipped_example_state_files_resolve_next_to_the_fleet_file_and_exist(shipped_fleet: Fleet) -> None:
    for account in shipped_fleet.accounts:
        assert account.state_file == SHIPPED_FLEET.parent / "venues" / f"{account.bot}_{account.account}.json"
        assert account.state_file.is_absolute()
        assert account.state_file.is_file(), f"{account.label}: {account.state_file} does not exist"


@pytest.mark.parametrize("bot", BOTS)
def test_shipped_paper_accounts_sync_to_broker_at_every_severity_and_adopt_positions_missing_in_ledger(
    shipped_fleet: Fleet, bot: str
) -> None:
    policy = shipped_fleet.account(bot, "paper").rules.policy

    assert (policy.minor, policy.moderate, policy.critical) == (Strategy.SYNC_TO_BROKER,) * 3
    assert policy.by_kind == {
        Kind.MISSING_AT_VENUE: Strategy.SYNC_TO_BROKER,
        Kind.MISSING_IN_LEDGER: Strategy.SYNC_TO_BROKER,
    }


@pytest.mark.parametrize("bot", BOTS)
def test_shipped_live_accounts_keep_the_cautious_defaults(shipped_fleet: Fleet, bot: str) -> None:
    policy = shipped_fleet.account(bot, "live").rules.policy

    assert policy.minor == Strategy.WARN_ONLY
    assert policy.moderate == Strategy.SYNC_TO_BROKER
    assert policy.critical == Strategy.HALT_AND_ALERT
    assert policy.by_kind == {
        Kind.MISSING_AT_VENUE: Strategy.SYNC_TO_BROKER,
        Kind.MISSING_IN_LEDGER: Strategy.WARN_ONLY,
    }


def test_shipped_example_tunables_come_from_defaults_except_momentum_live_interval(shipped_fleet: Fleet) -> None:
    for account in shipped_fleet.accounts:
        assert account.rules.thresholds == Thresholds(minor_below=Decimal(1), critical_above=Decimal(5))
        assert account.rules.cash_tolerance_pct == Decimal(1)
        assert account.rules.grace_seconds == 30
        expected_interval = 120 if account.label == "momentum/live" else 300
        assert account.interval_seconds == expected_interval, account.label


def test_account_lookup_of_an_unknown_account_lists_the_known_ones(shipped_fleet: Fleet) -> None:
    with pytest.raises(FixConfiguration) as caught:
        shipped_fleet.account("lxalgo", "staging")

    message = str(caught.value)
    assert str(SHIPPED_FLEET) in message
    assert "lxalgo/staging" in message
    assert "lxalgo/paper, lxalgo/live, momentum/paper, momentum/live, shortseller/paper, shortseller/live" in message


def test_account_lookup_of_an_unknown_bot_lists_the_known_accounts(shipped_fleet: Fleet) -> None:
    with pytest.raises(FixConfiguration, match=r"no account ghost/paper \(known: lxalgo/paper, .*shortseller/live\)"):
        shipped_fleet.account("ghost", "paper")


# --- resolution of defaults and overrides ------------------------------------------------------------------------


def test_an_account_without_any_settings_gets_the_built_in_cautious_rules(
    write_fleet: WriteFleet, tmp_path: Path
) -> None:
    account = load_one(write_fleet, PAPER)

    assert account.rules == Rules()
    assert account.rules.policy == Policy(
        minor=Strategy.WARN_ONLY, moderate=Strategy.WARN_ONLY, critical=Strategy.HALT_AND_ALERT, by_kind={}
    )
    assert account.interval_seconds == 300
    assert account.rules.grace_seconds == 30
    assert account.rules.cash_tolerance_pct == Decimal(1)
    assert account.state_file == (tmp_path / "venues" / "lxalgo_paper.json").resolve()


def test_defaults_apply_to_accounts_that_do_not_override_them(write_fleet: WriteFleet) -> None:
    account = load_one(
        write_fleet,
        """
        [defaults]
        interval_seconds = 60
        grace_seconds = 5
        cash_tolerance_pct = 2
        [defaults.thresholds]
        minor_below = 2
        critical_above = 10
        [defaults.policy]
        moderate = "sync_to_broker"
        """
        + PAPER,
    )

    assert account.interval_seconds == 60
    assert account.rules.grace_seconds == 5
    assert account.rules.cash_tolerance_pct == Decimal(2)
    assert account.rules.thresholds == Thresholds(minor_below=Decimal(2), critical_above=Decimal(10))
    assert account.rules.policy.minor == Strategy.WARN_ONLY  # built-in, neither defaults nor account set it
    assert account.rules.policy.moderate == Strategy.SYNC_TO_BROKER


def test_account_settings_win_over_defaults(write_fleet: WriteFleet) -> None:
    account = load_one(
        write_fleet,
        """
        [defaults]
        interval_seconds = 60
        grace_seconds = 5
        cash_tolerance_pct = 2
        [defaults.policy]
        critical = "halt_and_alert"
        """
        + PAPER
        + """
        interval_seconds = 15
        grace_seconds = 0
        cash_tolerance_pct = 0
        [bots.lxalgo.accounts.paper.policy]
        critical = "sync_to_local"
        """,
    )

    assert account.interval_seconds == 15
    assert account.rules.grace_seconds == 0  # zero is a setting, not "unset"
    assert account.rules.cash_tolerance_pct == Decimal(0)
    assert account.rules.policy.critical == Strategy.SYNC_TO_LOCAL


def test_by_kind_merges_defaults_and_account_with_the_account_winning_per_kind(write_fleet: WriteFleet) -> None:
    account = load_one(
        write_fleet,
        """
        [defaults.policy.by_kind]
        missing_at_venue = "sync_to_broker"
        missing_in_ledger = "warn_only"
        """
        + PAPER
        + """
        [bots.lxalgo.accounts.paper.policy.by_kind]
        missing_in_ledger = "sync_to_broker"
        cash_mismatch = "halt_and_alert"
        """,
    )

    assert account.rules.policy.by_kind == {
        Kind.MISSING_AT_VENUE: Strategy.SYNC_TO_BROKER,
        Kind.MISSING_IN_LEDGER: Strategy.SYNC_TO_BROKER,
        Kind.CASH_MISMATCH: Strategy.HALT_AND_ALERT,
    }


def test_thresholds_resolve_key_by_key_from_account_then_defaults_then_built_in(write_fleet: WriteFleet) -> None:
    fleet = load_fleet(
        write_fleet(
            """
            [defaults.thresholds]
            critical_above = 20
            [bots.a.accounts.own_minor]
            venue = "sim"
            state_file = "a.json"
            [bots.a.accounts.own_minor.thresholds]
            minor_below = 3
            [bots.a.accounts.own_critical]
            venue = "sim"
            state_file = "b.json"
            [bots.a.accounts.own_critical.thresholds]
            critical_above = 8
            """
        )
    )

    assert fleet.account("a", "own_minor").rules.thresholds == Thresholds(Decimal(3), Decimal(20))
    assert fleet.account("a", "own_critical").rules.thresholds == Thresholds(Decimal(1), Decimal(8))


def test_equal_minor_and_critical_thresholds_are_allowed(write_fleet: WriteFleet) -> None:
    account = load_one(write_fleet, "[defaults.thresholds]\nminor_below = 5\ncritical_above = 5\n" + PAPER)

    assert account.rules.thresholds == Thresholds(Decimal(5), Decimal(5))


def test_toml_floats_become_exact_decimals(write_fleet: WriteFleet) -> None:
    account = load_one(
        write_fleet,
        PAPER
        + """
        cash_tolerance_pct = 0.1
        [bots.lxalgo.accounts.paper.thresholds]
        minor_below = 0.3
        critical_above = 2.675
        """,
    )

    assert account.rules.cash_tolerance_pct == Decimal("0.1")
    assert str(account.rules.cash_tolerance_pct) == "0.1"
    assert account.rules.thresholds == Thresholds(Decimal("0.3"), Decimal("2.675"))
    assert isinstance(account.rules.thresholds.minor_below, Decimal)


def test_accounts_keep_file_order_across_bots(write_fleet: WriteFleet) -> None:
    fleet = load_fleet(
        write_fleet(
            """
            [bots.zeta.accounts.live]
            venue = "sim"
            state_file = "z.json"
            [bots.alpha.accounts.paper]
            venue = "sim"
            state_file = "a.json"
            [bots.zeta.accounts.paper]
            venue = "sim"
            state_file = "zp.json"
            """
        )
    )

    assert [a.label for a in fleet.accounts] == ["zeta/live", "zeta/paper", "alpha/paper"]


# --- errors name the file, the table and the key -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "table", "key"),
    [
        pytest.param('colour = "red"\n' + PAPER, "top level", "colour", id="top-level"),
        pytest.param("[defaults]\nintervl_seconds = 60\n" + PAPER, "defaults", "intervl_seconds", id="defaults"),
        pytest.param(
            "[defaults.thresholds]\nminor = 1\n" + PAPER, "defaults.thresholds", "minor", id="defaults-thresholds"
        ),
        pytest.param(
            '[defaults.policy]\nmajor = "warn_only"\n' + PAPER, "defaults.policy", "major", id="defaults-policy"
        ),
        pytest.param(PAPER + "intervl = 60\n", "bots.lxalgo.accounts.paper", "intervl", id="account"),
        pytest.param(
            PAPER + '[bots.lxalgo.accounts.paper.policy]\nmajor = "warn_only"\n',
            "bots.lxalgo.accounts.paper.policy",
            "major",
            id="account-policy",
        ),
        pytest.param('[bots.lxalgo]\nowner = "me"\n' + PAPER, "bots.lxalgo", "owner", id="bot"),
    ],
)
def test_an_unknown_key_is_refused_naming_file_table_and_key(
    write_fleet: WriteFleet, text: str, table: str, key: str
) -> None:
    path, message = load_error(write_fleet, text)

    assert message == f"fleet file {path}: table [{table}]: unknown key {key!r}"


def test_an_unknown_key_is_reported_before_other_problems(write_fleet: WriteFleet) -> None:
    _, message = load_error(
        write_fleet, PAPER + "interval_seconds = -1\n[bots.lxalgo.accounts.paper.policy]\nmajor = 1\n"
    )

    assert "table [bots.lxalgo.accounts.paper.policy]: unknown key 'major'" in message


def test_an_unknown_venue_is_refused_naming_file_table_and_venue(write_fleet: WriteFleet) -> None:
    path, message = load_error(write_fleet, PAPER.replace('venue = "sim"', 'venue = "kraken"'))

    expected = "table [bots.lxalgo.accounts.paper]: unknown venue 'kraken' (known: alpaca, bybit, ibkr, sim)"
    assert message == f"fleet file {path}: {expected}"


@pytest.mark.parametrize(
    ("text", "table", "key"),
    [
        pytest.param(
            '[defaults.policy]\ncritical = "panic"\n' + PAPER, "defaults.policy", "critical", id="defaults-severity"
        ),
        pytest.param(
            PAPER + '[bots.lxalgo.accounts.paper.policy]\nminor = "sync"\n',
            "bots.lxalgo.accounts.paper.policy",
            "minor",
            id="account-severity",
        ),
        pytest.param(
            PAPER + '[bots.lxalgo.accounts.paper.policy.by_kind]\nmissing_at_venue = "close_all"\n',
            "bots.lxalgo.accounts.paper.policy.by_kind",
            "missing_at_venue",
            id="account-kind",
        ),
    ],
)
def test_an_unknown_strategy_is_refused_naming_file_table_key_and_the_strategies(
    write_fleet: WriteFleet, text: str, table: str, key: str
) -> None:
    path, message = load_error(write_fleet, text)

    assert message.startswith(f"fleet file {path}: table [{table}]: key {key!r}: ")
    assert all(strategy.value in message for strategy in Strategy)


@pytest.mark.parametrize(
    ("text", "table"),
    [
        pytest.param(
            '[defaults.policy.by_kind]\nghost = "warn_only"\n' + PAPER, "defaults.policy.by_kind", id="defaults"
        ),
        pytest.param(
            PAPER + '[bots.lxalgo.accounts.paper.policy.by_kind]\nghost = "warn_only"\n',
            "bots.lxalgo.accounts.paper.policy.by_kind",
            id="account",
        ),
    ],
)
def test_an_unknown_discrepancy_kind_is_refused_naming_file_table_kind_and_the_kinds(
    write_fleet: WriteFleet, text: str, table: str
) -> None:
    path, message = load_error(write_fleet, text)

    assert message.startswith(f"fleet file {path}: table [{table}]: unknown discrepancy kind 'ghost' (known: ")
    assert all(kind.value in message for kind in Kind)


def test_a_multiplier_key_that_is_neither_a_category_nor_category_and_symbol_is_refused(
    write_fleet: WriteFleet,
) -> None:
    path, message = load_error(write_fleet, PAPER + '[bots.lxalgo.accounts.paper.multipliers]\n"Future:ES" = 50\n')

    assert message == (
        f"fleet file {path}: table [bots.lxalgo.accounts.paper.multipliers]: invalid key 'Future:ES': "
        'a lowercase category (option) or "category:SYMBOL"'
    )


def test_a_missing_state_file_key_is_refused_naming_file_table_and_key(write_fleet: WriteFleet) -> None:
    path, message = load_error(write_fleet, '[bots.lxalgo.accounts.paper]\nvenue = "sim"\n')

    assert message == f"fleet file {path}: table [bots.lxalgo.accounts.paper]: missing key 'state_file'"


def test_a_fleet_without_bots_is_refused(write_fleet: WriteFleet) -> None:
    path, message = load_error(write_fleet, "[defaults]\ninterval_seconds = 60\n")

    assert message == f"fleet file {path}: table [top level]: missing key 'bots'"


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        pytest.param("interval_seconds = 0", "interval_seconds", id="zero-interval"),
        pytest.param("interval_seconds = 1.5", "interval_seconds", id="fractional-interval"),
        pytest.param("grace_seconds = -1", "grace_seconds", id="negative-grace"),
        pytest.param("cash_tolerance_pct = -0.5", "cash_tolerance_pct", id="negative-tolerance"),
        pytest.param("cash_tolerance_pct = nan", "cash_tolerance_pct", id="nan-tolerance"),
    ],
)
def test_an_out_of_range_value_is_refused_naming_file_table_and_key(
    write_fleet: WriteFleet, setting: str, key: str
) -> None:
    path, message = load_error(write_fleet, PAPER + setting + "\n")

    assert message.startswith(f"fleet file {path}: table [bots.lxalgo.accounts.paper]: key {key!r}: ")


def test_bad_toml_is_refused_naming_the_file_and_the_line(write_fleet: WriteFleet) -> None:
    path, message = load_error(write_fleet, PAPER + "interval_seconds = \n")

    assert message.startswith(f"fleet file {path}: not valid TOML: ")
    assert "line 5" in message


def test_a_missing_fleet_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "fleet.toml"

    with pytest.raises(FixConfiguration) as caught:
        load_fleet(path)

    assert str(caught.value) == f"fleet file {path}: No such file or directory"
    assert isinstance(caught.value.__cause__, FileNotFoundError)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(PAPER + "[bots.lxalgo.accounts.paper.thresholds]\nminor_below = 6\n", id="account"),
        pytest.param("[defaults.thresholds]\nminor_below = 6\n" + PAPER, id="defaults-with-built-in-critical"),
    ],
)
def test_minor_below_above_critical_above_is_refused_naming_the_account_and_both_keys(
    write_fleet: WriteFleet, text: str
) -> None:
    _, message = load_error(write_fleet, text)

    assert "table [bots.lxalgo.accounts.paper]" in message
    assert "minor_below" in message
    assert "critical_above" in message


def test_minor_below_above_critical_above_names_the_fleet_file(write_fleet: WriteFleet) -> None:
    path, message = load_error(write_fleet, PAPER + "[bots.lxalgo.accounts.paper.thresholds]\nminor_below = 6\n")

    assert message.startswith(f"fleet file {path}: ")


# --- once bugs, now guarded -----------------------------------------------------------


def test_an_invalid_bot_name_is_not_reported_as_a_discrepancy_kind(write_fleet: WriteFleet) -> None:
    _, message = load_error(write_fleet, PAPER.replace("lxalgo", "LXAlgo"))

    assert "discrepancy kind" not in message
    assert "'LXAlgo'" in message


def test_a_bot_named_sim_keeps_its_name_in_the_table(write_fleet: WriteFleet) -> None:
    _, message = load_error(write_fleet, PAPER.replace("lxalgo", "sim") + "colour = 1\n")

    assert "table [bots.sim.accounts.paper]: unknown key 'colour'" in message


def test_a_missing_venue_is_refused_naming_the_account_table_and_the_key(write_fleet: WriteFleet) -> None:
    path, message = load_error(write_fleet, PAPER.replace('venue = "sim"', ""))

    assert message == f"fleet file {path}: table [bots.lxalgo.accounts.paper]: missing key 'venue'"


def test_a_fleet_file_that_is_not_utf8_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_bytes(b"\xff\xfe" + PAPER.encode("utf-16-le"))

    with pytest.raises(FixConfiguration, match=str(path)):
        load_fleet(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(PAPER + "interval_seconds = true\n", "key 'interval_seconds'", id="interval-bool"),
        pytest.param(PAPER + 'interval_seconds = "60"\n', "key 'interval_seconds'", id="interval-text"),
        pytest.param(
            PAPER.replace('state_file = "venues/lxalgo_paper.json"', 'state_file = ""'),
            "key 'state_file'",
            id="empty-state-file",
        ),
        pytest.param("[defaults]\ninterval_seconds = 60\n[bots]\n", "table [top level]: key 'bots'", id="no-bots"),
    ],
)
def test_values_that_would_quietly_misconfigure_an_account_are_refused(
    write_fleet: WriteFleet, text: str, expected: str
) -> None:
    path, message = load_error(write_fleet, text)

    assert message.startswith(f"fleet file {path}: ")
    assert expected in message
