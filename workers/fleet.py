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
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from reconciliation.contracts import DEFAULT_MULTIPLIERS, Multipliers
from reconciliation.errors import FixConfiguration
from reconciliation.findings import Kind, Thresholds
from reconciliation.names import NAME_PATTERN
from reconciliation.policy import Policy, Rules, Strategy
from venues.endpoints import Endpoint, alpaca_endpoint, bybit_endpoint, ibkr_endpoint
from workers.publisher_table import LayoutProblem, PublisherTable, key_patterns, layout_of
from workers.redis_layout import OWN_LAYOUT, Layout
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
    publisher: PublisherTable | None = None  # replaces the bot's [bots.B.publisher] for this account
    allow_live_orders: bool = False
    max_order_notional: Decimal | None = Field(default=None, gt=0)
    venue_account: Name | None = None
    # contract multiplier by "category" or "category:symbol" (e.g. option = 100, "future:ESZ6" = 50)
    multipliers: dict[Annotated[str, Field(pattern=r"^[a-z_]{1,32}(:\S{1,64})?$")], Annotated[Decimal, Field(gt=0)]] = (
        Field(default_factory=dict)
    )


class SimAccountTable(_AccountTable):
    venue: Literal["sim"]
    state_file: str = Field(min_length=1)


class _RealVenueTable(_AccountTable):
    base_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    api_key_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    api_secret_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_seconds: Decimal = Field(default=Decimal(10), gt=0, le=120)
    fill_lookback_days: StrictInt = Field(default=7, ge=1, le=730)
    # the API key's request budget, shared by every worker (workers.rate_budget); None: the venue's default
    requests_per_second: Decimal | None = Field(default=None, gt=0, le=1000)
    burst: StrictInt | None = Field(default=None, ge=1, le=10000)


class BybitAccountTable(_RealVenueTable):
    venue: Literal["bybit"]
    environment: Literal["mainnet", "testnet", "demo"] = "mainnet"
    categories: list[Literal["linear", "inverse", "option"]] = Field(default=["linear"], min_length=1)
    settle_coins: list[str] = Field(default=["USDT", "USDC"], min_length=1)
    cash_coin: str = "USDT"


class AlpacaAccountTable(_RealVenueTable):
    venue: Literal["alpaca"]
    environment: Literal["paper", "live"] = "paper"


class IbkrAccountTable(_AccountTable):
    """``venue = "ibkr"``: the API socket of TWS or IB Gateway. No keys: the gateway's own login authenticates."""

    venue: Literal["ibkr"]
    host: str = Field(default="127.0.0.1", pattern=r"^[A-Za-z0-9._:\[\]-]{1,253}$")
    port: StrictInt = Field(default=4002, ge=1, le=65535)  # 7496/7497 TWS live/paper, 4001/4002 IB Gateway
    client_id: StrictInt = Field(ge=0, le=2**31 - 1)  # one per concurrent connection to the gateway
    account: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]{1,32}$")  # needed when the login has several
    environment: Literal["paper", "live"] = "paper"
    timeout_seconds: Decimal = Field(default=Decimal(10), gt=0, le=120)
    fill_lookback_days: StrictInt = Field(default=7, ge=1, le=730)
    cash_currency: str = Field(default="USD", pattern=r"^[A-Z]{3,4}$")  # BASE: the account's base currency
    requests_per_second: Decimal | None = Field(default=None, gt=0, le=1000)  # the gateway's message budget
    burst: StrictInt | None = Field(default=None, ge=1, le=10000)


VenueTable = SimAccountTable | BybitAccountTable | AlpacaAccountTable | IbkrAccountTable
AccountTable = Annotated[VenueTable, Field(discriminator="venue")]


class BotTable(_Strict):
    publisher: PublisherTable | None = None
    accounts: dict[Name, AccountTable] = Field(min_length=1)


class FleetDocument(_Strict):
    defaults: DefaultsTable = Field(default_factory=DefaultsTable)
    bots: dict[Name, BotTable] = Field(min_length=1)


VENUES = frozenset({"sim", "bybit", "alpaca", "ibkr"})


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
    publisher: Layout | None = None  # the bot's own Redis layout, written besides ours (workers.publish)
    shared_with: tuple[tuple[str, str], ...] = ()  # the other (bot, account) of its venue account, if shared

    @property
    def venue_account(self) -> str | None:
        """The venue account this account shares with other bots (``venue_account`` in its table), or None."""
        return self.venue_table.venue_account if self.venue_table else None

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
    if isinstance(table, IbkrAccountTable):
        return ibkr_endpoint(table.environment, table.host, table.port)
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
    accounts = _with_publishers(accounts, fleet, path)
    return Fleet(path=path, accounts=_shared(accounts, path))


def _shared(accounts: tuple[AccountConfig, ...], path: Path) -> tuple[AccountConfig, ...]:
    """Each account of a shared venue account told which others share it; the members must name one venue the
    same way (venue, state file or endpoint and credentials), or the file is refused."""
    members: dict[str, list[AccountConfig]] = {}
    for config in accounts:
        if config.venue_account:
            members.setdefault(config.venue_account, []).append(config)
    for name, group in members.items():
        identities = {_venue_identity(c) for c in group}
        if len(identities) > 1:
            labels = ", ".join(c.label for c in group)
            raise FixConfiguration(
                f"fleet file {path}: venue_account {name!r} is named by {labels}, which do not point at the same "
                "venue (venue, state_file, environment, base_url and credentials must agree)"
            )
    return tuple(
        replace(c, shared_with=tuple((o.bot, o.account) for o in members[c.venue_account] if o is not c))
        if c.venue_account
        else c
        for c in accounts
    )


def _venue_identity(config: AccountConfig) -> tuple[object, ...]:
    """What makes two tables the same venue account: the venue, and its state file or connection and keys."""
    table = config.venue_table
    if config.state_file is not None:
        return (config.venue, str(config.state_file))
    connection = {
        key: value
        for key, value in (table.model_dump() if table else {}).items()
        if key in ("environment", "base_url", "api_key_env", "host", "port", "account")
    }
    return (config.venue, tuple(sorted(connection.items())))


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
        if location[-3:-2] == ["multipliers"]:
            return f'table [{table}]: invalid key {name!r}: a lowercase category (option) or "category:SYMBOL"'
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
        multipliers=multipliers_of(table),
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


#: Multipliers by category a venue implies where its positions do not say: an option at IBKR or Alpaca is on 100
#: shares (IBKR reports each contract's own multiplier, which is used when given).
VENUE_MULTIPLIERS: dict[str, dict[str, Decimal]] = {
    "alpaca": {"us_option": Decimal(100)},
    "ibkr": {"option": Decimal(100), "us_option": Decimal(100)},
}


def multipliers_of(table: VenueTable) -> Multipliers:
    """The account's contract multipliers: its ``multipliers`` table over its venue's defaults."""
    by_symbol = {(k.partition(":")[0], k.partition(":")[2]): v for k, v in table.multipliers.items() if ":" in k}
    by_category = {k: v for k, v in table.multipliers.items() if ":" not in k}
    defaults = {**DEFAULT_MULTIPLIERS, **VENUE_MULTIPLIERS.get(table.venue, {})}
    return Multipliers(by_symbol=by_symbol, by_category=by_category, defaults=defaults)


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


def _with_publishers(
    accounts: tuple[AccountConfig, ...], fleet: FleetDocument, path: Path
) -> tuple[AccountConfig, ...]:
    """Each account with its publisher layout (its own table, else its bot's); two accounts writing the same
    key pattern would overwrite each other's positions, so that is refused."""
    owners: dict[tuple[int | None, str], str] = {}
    resolved = []
    for config in accounts:
        bot_table = fleet.bots[config.bot]
        own = bot_table.accounts[config.account].publisher
        table = own if own is not None else bot_table.publisher
        where = f"bots.{config.bot}" + (f".accounts.{config.account}" if own is not None else "") + ".publisher"
        layout = None
        if table is not None:
            try:
                layout = layout_of(table)
            except LayoutProblem as problem:
                raise FixConfiguration(
                    f"fleet file {path}: table [{where}{problem.table}]: key {problem.key!r}: {problem.message}"
                ) from None
        for pattern in key_patterns(layout or OWN_LAYOUT, config.bot, config.account):
            place = ((layout or OWN_LAYOUT).db, pattern)
            if place in owners:
                raise FixConfiguration(
                    f"fleet file {path}: table [{where}]: {owners[place]} and {config.label} would both write "
                    f"{pattern!r}: put {{account}} in the key, or give each account its own publisher table"
                )
            owners[place] = config.label
        resolved.append(replace(config, publisher=layout) if layout is not None else config)
    return tuple(resolved)
