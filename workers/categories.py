"""Which instrument categories an account's venue knows, so what a bot records names an instrument the venue
can report (a fill in ``default:`` never matches a position in ``linear:``).

    bybit    the categories its fleet-file table reads (``categories``, default ``["linear"]``)
    alpaca   its asset classes: us_equity, us_option, crypto
    sim      the categories its state file names now (none named: any category, ``default`` when left out)
"""

from __future__ import annotations

from datetime import UTC, datetime

from reconciliation.errors import FixConfiguration, ReconError
from reconciliation.names import shown
from reconciliation.values import DEFAULT_CATEGORY
from workers.fleet import AccountConfig, AlpacaAccountTable, BybitAccountTable


def known_categories(config: AccountConfig) -> tuple[str, ...]:
    """The categories ``config``'s venue knows, in a stable order; empty when any will do."""
    table = config.venue_table
    if isinstance(table, BybitAccountTable):
        return tuple(table.categories)
    if isinstance(table, AlpacaAccountTable):
        from venues.alpaca_rows import CATEGORIES  # noqa: PLC0415 - the SDK's package only for Alpaca accounts

        return CATEGORIES
    return _sim_categories(config)


def _sim_categories(config: AccountConfig) -> tuple[str, ...]:
    if config.state_file is None or not config.state_file.is_file():  # a named pipe would block: no venue reads here
        return ()
    from venues.sim import SimVenue  # noqa: PLC0415

    try:
        snapshot = SimVenue(config.state_file).fetch_snapshot(datetime.now(UTC))
    except ReconError:  # a state file being edited must not stop a bot recording what it did
        return ()
    keys = [
        *(p.key for p in snapshot.positions),
        *(o.key for o in snapshot.open_orders),
        *(f.key for f in snapshot.fills),
        *snapshot.marks,
    ]
    return tuple(sorted({key.category for key in keys}))


def checked_category(config: AccountConfig, category: str | None) -> str:
    """The category to record for ``config``: the one given (lower-cased) when the venue knows it, else the only
    one it knows, else ``default`` when it names none; ``FixConfiguration`` otherwise, naming what it knows."""
    known = known_categories(config)
    if category is None:
        if len(known) > 1:
            raise FixConfiguration(
                f"category: required for {config.label} on {config.venue} (one of {', '.join(known)})"
            )
        return known[0] if known else DEFAULT_CATEGORY
    normal = category.strip().lower()
    if known and normal not in known:
        raise FixConfiguration(
            f"category: {shown(category)} is not one {config.label}'s venue ({config.venue}) knows: {', '.join(known)}"
        )
    return normal
