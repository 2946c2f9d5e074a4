"""Task arguments, checked before anything runs: a malformed call fails once with a clear, short error.

Messages reach workers from anything that can write to the broker, so nothing is coerced: a run id is an
``int`` (not ``True``, ``1.5`` or ``"1"``) within the database's INTEGER range, a flag is a ``bool``, a reason
is one the task knows, and names follow the one naming rule. Errors show a shortened rendering of what was
given, so a 1 MB argument never becomes a 1 MB log line or result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciliation.errors import FixConfiguration
from reconciliation.names import check_name, shown
from reconciliation.plan import RECONCILE_REASONS

MAX_RUN_ID = 2**31 - 1  # the runs table's INTEGER primary key


class BadTaskArguments(FixConfiguration):
    """A task was called with arguments it cannot take; nothing ran."""


@dataclass(frozen=True)
class ReconcileRequest:
    """What ``recon.reconcile`` was asked to do."""

    bot: str
    account: str
    reason: str
    dry_run: bool
    ticket: int | None = None


def reconcile_request(bot: Any, account: Any, reason: Any, dry_run: Any, ticket: Any = None) -> ReconcileRequest:
    """The checked arguments of ``recon.reconcile``."""
    bot, account = account_arguments("recon.reconcile", bot, account)
    if not isinstance(reason, str) or reason not in RECONCILE_REASONS:
        raise BadTaskArguments(f"recon.reconcile: reason {shown(reason)} is not one of {', '.join(RECONCILE_REASONS)}")
    if not isinstance(dry_run, bool):
        raise BadTaskArguments(f"recon.reconcile: dry_run must be true or false, got {shown(dry_run)}")
    if ticket is not None and (isinstance(ticket, bool) or not isinstance(ticket, int) or not 1 <= ticket < 2**63):
        raise BadTaskArguments(f"recon.reconcile: ticket must be a whole number from 1, got {shown(ticket)}")
    return ReconcileRequest(bot, account, reason, dry_run, ticket)


def account_arguments(task: str, bot: Any, account: Any) -> tuple[str, str]:
    """A bot and account name given to ``task``, checked against the naming rule."""
    try:
        return check_name(bot, "bot"), check_name(account, "account")
    except FixConfiguration as error:
        raise BadTaskArguments(f"{task}: {error}") from None


def run_id_argument(task: str, value: Any) -> int:
    """A run id given to ``task``: an int from 1 to 2**31 - 1."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RUN_ID:
        raise BadTaskArguments(f"{task}: run_id must be a whole number from 1 to {MAX_RUN_ID}, got {shown(value)}")
    return value


def single_run_id(task: str, args: Any, kwargs: Any) -> int:
    """The run id of a follow-up called as ``task(run_id)`` with exactly that one argument."""
    args = tuple(args) if isinstance(args, list | tuple) else ()
    kwargs = kwargs if isinstance(kwargs, dict) else {}
    given = [*args, *kwargs.values()]
    if len(given) != 1 or (kwargs and "run_id" not in kwargs):
        raise BadTaskArguments(f"{task}: takes exactly one argument, run_id; got {len(given)}")
    return run_id_argument(task, given[0])
