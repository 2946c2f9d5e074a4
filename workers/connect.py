"""Opening an account's venue from its fleet-file table; credentials are read from the environment only here."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

from reconciliation.errors import FixConfiguration
from venues.base import Venue
from venues.credentials import credentials_from
from workers.fleet import AccountConfig, AlpacaAccountTable, BybitAccountTable, IbkrAccountTable
from workers.rate_budget import configured_redis, gateway_budget, shared_budget


def open_venue(config: AccountConfig, environ: Mapping[str, str] | None = None) -> Venue:
    """The venue ``config`` names, with credentials from the variables its table names."""
    environ = os.environ if environ is None else environ
    table = config.venue_table
    # A venue's SDK is imported when a venue of its kind is opened: importing both costs most of a second.
    if config.venue == "sim" and config.state_file is not None:
        from venues.sim import SimVenue  # noqa: PLC0415

        return SimVenue(config.state_file)
    if isinstance(table, BybitAccountTable):
        from venues.bybit import BybitSettings, BybitVenue  # noqa: PLC0415

        credentials = credentials_from(environ, table.api_key_env, table.api_secret_env)
        return BybitVenue(
            BybitSettings(
                credentials=credentials,
                environment=table.environment,
                base_url=table.base_url,
                categories=tuple(table.categories),
                settle_coins=tuple(table.settle_coins),
                cash_coin=table.cash_coin,
                timeout_seconds=float(table.timeout_seconds),
                fill_lookback=timedelta(days=table.fill_lookback_days),
            ),
            budget=shared_budget(configured_redis(), "bybit", credentials, table.requests_per_second, table.burst),
        )
    if isinstance(table, AlpacaAccountTable):
        from venues.alpaca import AlpacaSettings, AlpacaVenue  # noqa: PLC0415

        credentials = credentials_from(environ, table.api_key_env, table.api_secret_env)
        return AlpacaVenue(
            AlpacaSettings(
                credentials=credentials,
                environment=table.environment,
                base_url=table.base_url,
                timeout_seconds=float(table.timeout_seconds),
                fill_lookback=timedelta(days=table.fill_lookback_days),
            ),
            budget=shared_budget(configured_redis(), "alpaca", credentials, table.requests_per_second, table.burst),
        )
    if isinstance(table, IbkrAccountTable):
        from venues.ibkr import IbkrSettings, IbkrVenue  # noqa: PLC0415

        return IbkrVenue(
            IbkrSettings(
                client_id=table.client_id,
                host=table.host,
                port=table.port,
                account=table.account,
                environment=table.environment,
                timeout_seconds=float(table.timeout_seconds),
                fill_lookback=timedelta(days=table.fill_lookback_days),
                cash_currency=table.cash_currency,
            ),
            budget=gateway_budget(configured_redis(), table.host, table.port, table.requests_per_second, table.burst),
        )
    raise FixConfiguration(f"{config.label}: venue {config.venue!r} cannot be opened")
