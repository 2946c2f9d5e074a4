"""The ``recon`` command: reconcile accounts, read runs and reports, keep the books, reach the workers, run the demo.

Exit codes: 0 in sync, 1 discrepancies found (handled per policy), 2 usage or configuration error, 3 the run
failed or a dependency (database, Redis, venue) was unavailable (nothing changed), 4 the account was halted,
5 internal error (a bug), 6 no worker consumes the account's queue (``--queue``; nothing was sent), 7 the wait
for the workers ran out (``--queue``; the request was withdrawn). Every error is one line on stderr, never a
traceback (``RECON_DEBUG=1`` adds it).

Start-up stays short: this module and the commands' modules import only Typer, Rich and the engine's
vocabulary; the database, the settings, Celery and the venues' SDKs are imported by the commands that use them.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from cli import books, importing, runs, runtime, serve, summary, venue
from cli.options import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_NO_WORKER,
    EXIT_USAGE,
    EXIT_WAIT_EXPIRED,
    Options,
    console,
    hide_password,
    options_of,
)
from reconciliation.errors import FixConfiguration, NoWorker, ReconError, WaitExpired

MAX_LINE = 500
EXIT_INTERRUPTED = 130  # the shell's code for a command ended by SIGINT
MAX_INTERNAL = 200

app = typer.Typer(
    name="recon",
    help="Reconcile trading bots' books with their venues: positions, cash and orders.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
ledger_app = typer.Typer(help="Read and write a bot's books (what bots do through workers.books.BooksClient).")
db_app = typer.Typer(help="Manage the database schema.")
venue_app = typer.Typer(help="Talk to an account's venue directly.")
app.add_typer(ledger_app, name="ledger")
app.add_typer(db_app, name="db")
app.add_typer(venue_app, name="venue")

app.command()(runs.reconcile)
app.command()(runs.runs)
app.command()(runs.report)
app.command()(runs.fleet)
app.command()(runs.halt)
app.command()(runs.resume)
app.command()(runs.backfill)
app.command()(summary.summary)
app.command()(runtime.schedule)
app.command()(runtime.trigger)
app.command()(runtime.workers)
app.command()(runtime.procfile)
app.command()(serve.serve)
ledger_app.command()(books.fill)
ledger_app.command()(books.order)
ledger_app.command()(books.cash)
ledger_app.command()(books.show)
ledger_app.command("import")(importing.import_history)
db_app.command()(books.upgrade)
venue_app.command()(venue.check)
venue_app.command()(venue.snapshot)


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", help="Fleet file (default ./fleet.toml, else $RECON_FLEET).")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL (default $RECON_DATABASE_URL, else sqlite:///recon.db)."),
    ] = None,
) -> None:
    """Reconcile trading bots' books with their venues: positions, cash and orders."""
    ctx.obj = Options(config=config, db=db)
    ctx.call_on_close(ctx.obj.close)


@app.command()
def demo(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the demo workspace (fleet file, venue states, database) goes.")
    ] = Path("recon-demo"),
    force: Annotated[
        bool, typer.Option("--force", help="Write the demo into a directory that holds other files too.")
    ] = False,
) -> None:
    """Reconcile the example fleet (LXAlgo, Momentum, ShortSeller; paper and live) on simulated venues.

    DIR must be missing, empty, or an earlier demo holding only its own files; --force writes it anyway.
    """
    from cli.demo import run_demo  # noqa: PLC0415 - the whole service, only for the demo

    run_demo(console, directory, options_of(ctx).db, force=force)


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the command line; every error ends it with one line on stderr and a documented exit code."""
    _route_logging()
    try:
        code = typer.main.get_command(app).main(args=argv, prog_name="recon", standalone_mode=False)
    except typer.Exit as done:
        _exit(done.exit_code)
    except Exception as error:  # the boundary: every error becomes one line and an exit code
        message, exit_code = explain(error)
        complain(message)
        if _debugging() and not isinstance(error, typer.TyperException):
            traceback.print_exception(error, file=sys.stderr)
        _exit(exit_code)
    if code == EXIT_INTERRUPTED:  # Typer turns ^C into this code, silently
        complain("interrupted")
    _exit(code if isinstance(code, int) else 0)


def _exit(code: int) -> NoReturn:
    # Nothing is left to collect: freezing the heap spares the interpreter's final pass over every object the
    # imports created (a fifth of a short command's time).
    gc.freeze()
    sys.exit(code)


def explain(error: Exception) -> tuple[str, int]:
    """The message and exit code for an error that ended a command; anything unexpected is an internal error."""
    if isinstance(error, typer.Abort):  # Click's for ^C (after a blank line closing the terminal's echo) or EOF
        return (
            ("interrupted", EXIT_INTERRUPTED)
            if isinstance(error.__cause__, KeyboardInterrupt)
            else ("aborted", EXIT_FAILED)
        )
    if isinstance(error, typer.TyperException):
        usage = _first_line(error.format_message()) or "missing command"  # empty: the help was printed
        return f"{usage} (see `recon --help`)", EXIT_USAGE
    if isinstance(error, FixConfiguration):
        return str(error), EXIT_USAGE
    if isinstance(error, NoWorker):
        return str(error), EXIT_NO_WORKER
    if isinstance(error, WaitExpired):
        return str(error), EXIT_WAIT_EXPIRED
    if isinstance(error, ReconError):
        return str(error), EXIT_FAILED
    return (
        f"internal error: {type(error).__name__}: {_shortened(_first_line(error), MAX_INTERNAL)} "
        "(set RECON_DEBUG=1 for the traceback)",
        EXIT_INTERNAL,
    )


def complain(message: str) -> None:
    """Write ``message`` to stderr as one short line, without any URL's password."""
    line = _shortened(" ".join(hide_password(message).split()), MAX_LINE)
    sys.stderr.write(f"recon: error: {''.join(c if c.isprintable() else repr(c)[1:-1] for c in line)}\n")


def _first_line(value: object) -> str:
    lines = str(value).strip().splitlines()
    return lines[0].strip() if lines else ""


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _debugging() -> bool:
    return os.environ.get("RECON_DEBUG", "") not in ("", "0")


def _route_logging() -> None:
    """Log records go to stderr only with RECON_DEBUG; otherwise the report and the error line say it all."""
    root = logging.getLogger()
    if _debugging():
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    elif not root.handlers:
        root.addHandler(logging.NullHandler())  # keeps logging's last-resort handler off stderr
