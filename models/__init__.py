"""The books and the run history: SQLAlchemy 2 typed tables and the query functions over them.

This is the only package that writes SQL. Tables live in ``books`` and ``runs``; ``ledger`` is the API bots
write their books through; ``apply`` writes a reconciliation plan in one transaction; ``history`` reads runs;
``tallies`` holds the running totals of finished runs that the database keeps for the metrics.
"""

from models.audit import OperatorAction
from models.base import Base
from models.books import Account, Bot, ExpectedCash, Fill, Lot, PendingOrder, PositionGroup, Trade
from models.runs import Action, Alert, Break, Finding, Run
from models.tallies import DurationTally, RunTally

__all__ = [
    "Account",
    "Action",
    "Alert",
    "Base",
    "Bot",
    "Break",
    "DurationTally",
    "ExpectedCash",
    "Fill",
    "Finding",
    "Lot",
    "OperatorAction",
    "PendingOrder",
    "PositionGroup",
    "Run",
    "RunTally",
    "Trade",
]
