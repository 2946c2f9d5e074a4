"""What every ``recon`` command shares: exit codes, the global options, argument types and the console.

Kept light on purpose: ``recon --help`` and every refused input import only this, Typer and Rich. The
database, the fleet file and the settings are resolved when a command asks for them.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from reconciliation.errors import FixConfiguration
from reconciliation.names import check_name

if TYPE_CHECKING:
    from models.database import Database
    from workers.fleet import Fleet
    from workers.settings import Settings

EXIT_IN_SYNC, EXIT_DISCREPANCIES, EXIT_USAGE, EXIT_FAILED, EXIT_HALTED, EXIT_INTERNAL = 0, 1, 2, 3, 4, 5
EXIT_NO_WORKER, EXIT_WAIT_EXPIRED = 6, 7
STATUS_EXIT = {
    "in_sync": EXIT_IN_SYNC,
    "resolved": EXIT_DISCREPANCIES,
    "warned": EXIT_DISCREPANCIES,
    "failed": EXIT_FAILED,
    "halted": EXIT_HALTED,
}
MAX_RUN_ID = 2**31 - 1  # runs.id is a 32-bit INTEGER on Postgres
MAX_LIST = 10_000
MAX_REASON = 500
MAX_WAIT = 86_400.0

PIPE_WIDTH = 1000  # in a pipe, a row of a table is one whole line: nothing wrapped, dropped or cut for scripts


def _stdout_console() -> Console:
    """Rich's console on stdout, as wide as the terminal; in a pipe (unless COLUMNS says) ``PIPE_WIDTH``."""
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(highlight=False, width=PIPE_WIDTH if piped else None)


console = _stdout_console()


def _bot_name(value: str) -> str:
    return check_name(value, "bot")


def _account_name(value: str) -> str:
    return check_name(value, "account")


def optional_bot_name(value: str | None) -> str | None:
    """A bot name argument that may be left out."""
    return None if value is None else check_name(value, "bot")


def optional_account_name(value: str | None) -> str | None:
    """An account name argument that may be left out."""
    return None if value is None else check_name(value, "account")


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (amounts as strings) instead of tables.")]
BotArg = Annotated[str, typer.Argument(help="Bot name, e.g. lxalgo.", callback=_bot_name)]
AccountArg = Annotated[str, typer.Argument(help="Account name, e.g. paper or live.", callback=_account_name)]


@dataclass
class Options:
    """Global options, resolved lazily so commands that need no database or fleet never touch them."""

    config: Path | None
    db: str | None
    opened: list[Database] = field(default_factory=list)

    def settings(self) -> Settings:
        """The process settings (``RECON_*``), with the fleet file and database these options name."""
        from workers.settings import load_settings  # noqa: PLC0415 - pydantic-settings only when a command runs

        return load_settings(fleet=str(self.fleet_path()), database_url=self.database_url())

    def database_url(self) -> str:
        """``--db``, else ``$RECON_DATABASE_URL``, else the embedded SQLite file; checked to be a URL."""
        from models.database import normalize_url  # noqa: PLC0415
        from workers.settings import load_settings  # noqa: PLC0415

        url = self.db or load_settings().database_url.get_secret_value()
        normalize_url(url)
        return url

    def database(self) -> Database:
        """The database, its schema current (SQLite is upgraded by itself); closed with the command (``close``)."""
        from models.database import open_database  # noqa: PLC0415

        database = open_database(self.database_url())
        self.opened.append(database)
        return database

    def close(self) -> None:
        """Close the connections of every database the command opened (a command run in-process, as the tests
        and the demo do, would otherwise leave them to the garbage collector)."""
        while self.opened:
            self.opened.pop().dispose()

    def fleet(self) -> Fleet:
        """The fleet file, read and checked."""
        from workers.fleet import load_fleet  # noqa: PLC0415

        return load_fleet(self.fleet_path())

    def has_fleet(self) -> bool:
        """True when a fleet file is given, found in the working directory or named by ``$RECON_FLEET``."""
        from workers.settings import load_settings  # noqa: PLC0415

        return self.config is not None or Path("fleet.toml").exists() or bool(load_settings().fleet)

    def fleet_path(self) -> Path:
        """``--config``, else ``./fleet.toml``, else ``$RECON_FLEET``."""
        from workers.settings import load_settings  # noqa: PLC0415

        if self.config is not None:
            return self.config
        local = Path("fleet.toml")
        if local.exists():
            return local
        from_env = load_settings().fleet
        if from_env:
            return Path(from_env)
        raise FixConfiguration(
            "no fleet file: pass --config FILE, create ./fleet.toml or set RECON_FLEET (see `recon demo`)"
        )


def options_of(ctx: typer.Context) -> Options:
    """The global options of the command line being run."""
    options = ctx.find_object(Options)
    assert options is not None
    return options


_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]+@")


def hide_password(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\g<head>:***@", text)
