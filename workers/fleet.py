"""The fleet file: which bots and accounts exist, where they live, and how each is reconciled.

    [defaults]
    interval_seconds = 300          # how often beat reconciles each account
    grace_seconds = 30              # fills newer than this make a discrepancy "in flight"
    cash_tolerance_pct = 1
    [defaults.thresholds]           # diff % below minor_below is minor, above critical_above critical
    minor_below = 1
    critical_above = 5
    [defaults.policy]               # strategy per severity ...
    minor = "warn_only"
    moderate = "sync_to_broker"
    critical = "halt_and_alert"
    [defaults.policy.by_kind]       # ... overridden per discrepancy kind
    missing_at_venue = "sync_to_broker"

    [bots.lxalgo.accounts.paper]
    venue = "sim"
    state_file = "venues/lxalgo_paper.json"   # relative to the fleet file
    [bots.lxalgo.accounts.paper.policy]       # any default can be overridden per account
    critical = "sync_to_broker"

Unknown keys, venues, strategies and kinds are errors that name the file, the table and the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from reconciliation.errors import FixConfiguration
from reconciliation.findings import Kind, Thresholds
from reconciliation.names import NAME_PATTERN
from reconciliation.policy import Policy, Rules, Strategy
from venues.endpoints import Endpoint, alpaca_endpoint, bybit_endpoint
from workers.settings import Settings

Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThresholdsTable(_Strict):
    minor_below: Decimal | None = Field(default=None, ge=0)
    critical_above: Decimal | None = Field(default=None, ge=0)


class PolicyTable(_Strict):
    minor: Strategy | None = None
    moderate: Strategy | None = None
    critical: Strategy | None = None
    by_kind: dict[Kind, Strategy] = Field(default_factory=dict)


class _Tunables(_Strict):
    interval_seconds: StrictInt | None = Field(default=None, gt=0)
    grace_seconds: StrictInt | None = Field(default=None, ge=0)
    cash_tolerance_pct: Decimal | None = Field(default=None, ge=0)
    thresholds: ThresholdsTable = Field(default_factory=ThresholdsTable)
    policy: PolicyTable = Field(default_factory=PolicyTable)


class DefaultsTable(_Tunables):
    """``[defaults]``: the tunables every account inherits unless its own table overrides them."""


class _AccountTable(_Tunables):
    allow_live_orders: bool = False
    max_order_notional: Decimal | None = Field(default=None, gt=0)


class SimAccountTable(_AccountTable):
    venue: Literal["sim"]
    state_file: str = Field(min_length=1)


class _RealVenueTable(_AccountTable):
    base_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    api_key_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    api_secret_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_seconds: Decimal = Field(default=Decimal(10), gt=0, le=120)
    fill_lookback_days: StrictInt = Field(default=7, ge=1, le=730)


class BybitAccountTable(_RealVenueTable):
    venue: Literal["bybit"]
    environment: Literal["mainnet", "testnet", "demo"] = "mainnet"
    categories: list[Literal["linear", "inverse", "option"]] = Field(default=["linear"], min_length=1)
    settle_coins: list[str] = Field(default=["USDT", "USDC"], min_length=1)
    cash_coin: str = "USDT"


class AlpacaAccountTable(_RealVenueTable):
    venue: Literal["alpaca"]
    environment: Literal["paper", "live"] = "paper"


VenueTable = SimAccountTable | BybitAccountTable | AlpacaAccountTable
AccountTable = Annotated[VenueTable, Field(discriminator="venue")]


class BotTable(_Strict):
    accounts: dict[Name, AccountTable] = Field(min_length=1)


class FleetDocument(_Strict):
    defaults: DefaultsTable = Field(default_factory=DefaultsTable)
    bots: dict[Name, BotTable] = Field(min_length=1)


VENUES = frozenset({"sim", "bybit", "alpaca"})


@dataclass(frozen=True)
class AccountConfig:
    """One account's resolved configuration: defaults with its own overrides applied."""

    bot: str
    account: str
    venue: str
    rules: Rules
    interval_seconds: int
    state_file: Path | None = None
    venue_table: VenueTable | None = None

    @property
    def label(self) -> str:
        """``bot/account``."""
        return f"{self.bot}/{self.account}"

    @property
    def endpoint(self) -> Endpoint | None:
        """The URL a real venue's adapter calls, and whether it is live; None for the sim venue."""
        return endpoint_of(self.venue_table)

    @property
    def is_live(self) -> bool:
        """True when orders would move real money: decided from the endpoint the adapter calls (an unknown
        host counts as live), never from the ``environment`` label alone."""
        endpoint = self.endpoint
        return endpoint is not None and endpoint.live


def endpoint_of(table: VenueTable | None) -> Endpoint | None:
    """The endpoint of a real venue's table (a label disagreeing with its URL is refused); None for sim."""
    if isinstance(table, BybitAccountTable):
        return bybit_endpoint(table.environment, table.base_url)
    if isinstance(table, AlpacaAccountTable):
        return alpaca_endpoint(table.environment, table.base_url)
    return None


@dataclass(frozen=True)
class Fleet:
    """Every account of the fleet file, in file order, and where the file is."""

    path: Path
    accounts: tuple[AccountConfig, ...]

    @classmethod
    def of(cls, *accounts: AccountConfig) -> Fleet:
        """A fleet of the given accounts, read from no file (a bot or a test that builds its configuration)."""
        return cls(Path("(given accounts)"), accounts)

    def account(self, bot: str, account: str) -> AccountConfig:
        """The account ``bot/account``; an unknown one is a configuration error listing what exists."""
        for config in self.accounts:
            if (config.bot, config.account) == (bot, account):
                return config
        known = ", ".join(a.label for a in self.accounts)
        raise FixConfiguration(f"{self.path}: no account {bot}/{account} (known: {known})")


def load_fleet(path: Path) -> Fleet:
    """Read and validate a fleet file."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except OSError as error:
        raise FixConfiguration(f"fleet file {path}: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise FixConfiguration(f"fleet file {path}: not UTF-8 text ({error.reason})") from error
    except tomllib.TOMLDecodeError as error:
        raise FixConfiguration(f"fleet file {path}: not valid TOML: {error}") from error
    try:
        fleet = FleetDocument.model_validate(document)
    except ValidationError as error:
        raise FixConfiguration(f"fleet file {path}: {_describe(error)}") from None
    accounts = tuple(
        _resolve(bot, name, table, fleet.defaults, path)
        for bot, bot_table in fleet.bots.items()
        for name, table in bot_table.accounts.items()
    )
    return Fleet(path=path, accounts=accounts)


def _describe(error: ValidationError) -> str:
    """The most telling problem as 'table [a.b.c]: key k: what is wrong' (an unknown key before all else)."""
    problem = sorted(error.errors(), key=lambda p: p["type"] != "extra_forbidden")[0]
    location = _table_path(problem["loc"])
    if problem["type"] == "union_tag_not_found":
        return f"table [{'.'.join(location)}]: missing key 'venue'"
    if problem["type"] == "union_tag_invalid":
        return f"table [{'.'.join(location)}]: unknown venue {_given(problem)} (known: {', '.join(sorted(VENUES))})"
    if location[-1:] == ["[key]"]:
        table, name = ".".join(location[:-2]), location[-2]
        if location[-3:-2] == ["by_kind"]:
            return f"table [{table}]: unknown discrepancy kind {name!r} (known: {', '.join(Kind)})"
        return f"table [{table}]: invalid name {name!r}: use lowercase letters, digits, '_' and '-'"
    key = location[-1] if location else "?"
    table = ".".join(location[:-1]) or "top level"
    if problem["type"] == "extra_forbidden":
        return f"table [{table}]: unknown key {key!r}"
    if problem["type"] == "missing":
        return f"table [{table}]: missing key {key!r}"
    return f"table [{table}]: key {key!r}: {problem['msg']}"


def _table_path(loc: tuple[int | str, ...]) -> list[str]:
    """pydantic's location without the venue tag it inserts after an account name (bots.B.accounts.A.<venue>)."""
    parts = [str(part) for part in loc]
    if len(parts) > 4 and parts[0] == "bots" and parts[2] == "accounts" and parts[4] in VENUES:
        del parts[4]
    return parts


def _given(problem: Any) -> str:
    value = problem.get("input")
    if isinstance(value, dict):
        value = value.get("venue")
    return repr(value)


def _resolve(bot: str, name: str, table: VenueTable, defaults: DefaultsTable, path: Path) -> AccountConfig:
    def pick(field: str, fallback: Any) -> Any:
        own, default = getattr(table, field), getattr(defaults, field)
        return own if own is not None else default if default is not None else fallback

    base_thresholds = Thresholds()
    thresholds = Thresholds(
        minor_below=_first(table.thresholds.minor_below, defaults.thresholds.minor_below, base_thresholds.minor_below),
        critical_above=_first(
            table.thresholds.critical_above, defaults.thresholds.critical_above, base_thresholds.critical_above
        ),
    )
    if thresholds.minor_below > thresholds.critical_above:
        raise FixConfiguration(
            f"fleet file {path}: table [bots.{bot}.accounts.{name}]: thresholds minor_below "
            f"({thresholds.minor_below}) must not exceed critical_above ({thresholds.critical_above})"
        )
    try:
        endpoint_of(table)
    except FixConfiguration as error:
        raise FixConfiguration(f"fleet file {path}: table [bots.{bot}.accounts.{name}]: {error}") from None
    base_policy = Policy()
    policy = Policy(
        minor=_first(table.policy.minor, defaults.policy.minor, base_policy.minor),
        moderate=_first(table.policy.moderate, defaults.policy.moderate, base_policy.moderate),
        critical=_first(table.policy.critical, defaults.policy.critical, base_policy.critical),
        by_kind={**defaults.policy.by_kind, **table.policy.by_kind},
    )
    rules = Rules(
        policy=policy,
        thresholds=thresholds,
        cash_tolerance_pct=pick("cash_tolerance_pct", Rules().cash_tolerance_pct),
        grace_seconds=pick("grace_seconds", Rules().grace_seconds),
    )
    return AccountConfig(
        bot=bot,
        account=name,
        venue=table.venue,
        rules=rules,
        interval_seconds=pick("interval_seconds", 300),
        state_file=(path.parent / table.state_file).resolve() if isinstance(table, SimAccountTable) else None,
        venue_table=table,
    )


def _first(*values: Any) -> Any:
    return next(v for v in values if v is not None)


def fleet_of(settings: Settings) -> Fleet | None:
    """The fleet file the settings name (else ./fleet.toml), or None when there is none.

    Parsed once per process and version of the file (path, modification time, size): every task needs it,
    and parsing a large fleet costs more than a whole in-sync run.
    """
    path = Path(settings.fleet) if settings.fleet else Path("fleet.toml")
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return _parsed_fleet(str(path.resolve()), status.st_mtime_ns, status.st_size)


@lru_cache(maxsize=8)
def _parsed_fleet(path: str, modified_ns: int, size: int) -> Fleet:
    return load_fleet(Path(path))
