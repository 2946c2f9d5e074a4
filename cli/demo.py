"""``recon demo``: the example fleet reconciled on simulated venues, in a workspace the user can explore.

The workspace holds the fleet file, the venues' state files, the books the bots wrote before the trouble
started, and a fresh SQLite database; ``cd`` into it and every ``recon`` command works on the demo.

The demo writes only into a missing or empty directory, or into one an earlier demo made (it leaves a
``.recon-demo`` marker) that holds nothing but the demo's own files; anything else needs ``force``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from cli import render
from models import history
from models.database import Database, open_database
from reconciliation.errors import FixConfiguration
from reconciliation.names import shown
from workers.books import BooksClient
from workers.fleet import AccountConfig, load_fleet
from workers.results import RunResult
from workers.service import Service
from workers.settings import load_settings

EXAMPLES = Path(__file__).resolve().parent / "examples"
MARKER = ".recon-demo"
FOLDERS = ("venues", "books")
DATABASE_FILES = ("recon.db", "recon.db-wal", "recon.db-shm", "recon.db-journal")
OWN_FILES = frozenset({MARKER, "fleet.toml", *DATABASE_FILES})


def prepare_workspace(directory: Path, *, force: bool = False) -> Path:
    """Copy the example fleet into ``directory`` (refreshing an earlier demo there) and return its path.

    A directory holding anything but an earlier demo's own files is refused, unchanged, unless ``force``.
    """
    if directory.exists() and not directory.is_dir():
        raise FixConfiguration(f"demo directory {directory} exists and is not a directory: choose another --dir")
    try:
        refusal = None if force else why_not_a_demo(directory)
        if refusal is None:
            _write_workspace(directory)
    except OSError as error:
        raise FixConfiguration(f"cannot write the demo into {directory}: {error.strerror or error}") from error
    if refusal is not None:
        raise FixConfiguration(
            f"demo directory {directory} {refusal}: choose another --dir, or pass --force to write the demo "
            "there anyway (its fleet.toml, venues/, books/ and recon.db are replaced)"
        )
    return directory


def why_not_a_demo(directory: Path) -> str | None:
    """Why ``directory`` must not be overwritten by the demo, or None when it is missing, empty or an earlier demo."""
    if not directory.exists():
        return None
    entries = sorted(directory.iterdir())
    if not entries:
        return None
    foreign = next((found for found in map(_foreign_entry, entries) if found is not None), None)
    if foreign is not None:
        return f"holds {shown(str(foreign.relative_to(directory)))}, which `recon demo` did not make"
    if not (directory / MARKER).is_file():
        return f"was not made by `recon demo` (it has no {MARKER} file)"
    return None


def _foreign_entry(entry: Path) -> Path | None:
    """``entry``, or the first file in it, when that is not the demo's own (its marker, fleet file, database,
    example files); None when all of it is."""
    if entry.is_symlink():
        return entry
    if entry.name in OWN_FILES:
        return None if entry.is_file() else entry
    if entry.name in FOLDERS and entry.is_dir():
        examples = {example.name for example in (EXAMPLES / entry.name).iterdir()}
        inside = sorted(entry.iterdir())
        return next((i for i in inside if i.name not in examples or i.is_symlink() or not i.is_file()), None)
    return entry


def _write_workspace(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text(
        "Made by `recon demo`; running it again with this --dir replaces the demo's files here.\n", encoding="utf-8"
    )
    shutil.copy(EXAMPLES / "fleet.toml", directory / "fleet.toml")
    for folder in FOLDERS:
        shutil.copytree(EXAMPLES / folder, directory / folder, dirs_exist_ok=True)
    for stale in DATABASE_FILES:
        (directory / stale).unlink(missing_ok=True)


def seed_books(client: BooksClient, config: AccountConfig, seed_file: Path) -> None:
    """Write what the bot recorded before the trouble: fills, pending orders and expected cash."""
    seed: dict[str, Any] = json.loads(seed_file.read_text(encoding="utf-8"))
    for fill in seed.get("fills", []):
        client.record_fill(config.bot, config.account, **fill)
    for order in seed.get("orders", []):
        client.record_order(config.bot, config.account, **order)
    if "cash" in seed:
        client.set_expected_cash(config.bot, config.account, seed["cash"]["balance"], seed["cash"]["currency"])


def run_demo(console: Console, directory: Path, db_url: str | None, *, force: bool = False) -> None:
    """Seed the example books, reconcile every account, show the reports, then reconcile again."""
    workspace = prepare_workspace(directory, force=force)
    database = open_database(db_url or f"sqlite:///{workspace / 'recon.db'}")
    fleet = load_fleet(workspace / "fleet.toml")
    client = BooksClient(database, fleet=fleet)
    service = Service(database, load_settings())  # the embedded default: no Redis, runs alone, follow-ups in-process

    def reconcile(config: AccountConfig, reason: str) -> RunResult:
        return service.reconcile(config, reason).results[-1]

    console.print(
        f"[bold]Example fleet[/]: {len(fleet.accounts)} accounts on simulated venues, database {database.url}"
    )
    with _progress(console) as progress:
        seeding = progress.add_task("writing the bots' books", total=len(fleet.accounts))
        for config in fleet.accounts:
            seed_books(client, config, workspace / "books" / f"{config.bot}_{config.account}.json")
            progress.advance(seeding)
        running = progress.add_task("reconciling (start-up)", total=len(fleet.accounts))
        first = []
        for config in fleet.accounts:
            first.append(reconcile(config, "startup"))
            progress.advance(running)
    for result in first:
        _print_run(console, database, result)
    with _progress(console) as progress:
        running = progress.add_task("reconciling again (schedule)", total=len(fleet.accounts))
        second = []
        for config in fleet.accounts:
            second.append(reconcile(config, "schedule"))
            progress.advance(running)
    console.print(_outcomes(fleet.accounts, first, second))
    with database.reading() as session:
        console.print(render.fleet_view(history.fleet_status(session)))
    _print_hints(console, workspace, db_url)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console, transient=True
    )


def _print_run(console: Console, database: Database, result: RunResult) -> None:
    with database.reading() as session:
        record = history.run_record(session, result.run_id)
    console.rule()
    console.print(render.run_view(record))


def _outcomes(accounts: tuple[AccountConfig, ...], first: list[RunResult], second: list[RunResult]) -> Table:
    table = Table("account", "start-up run", "next run", title="the same venues, reconciled twice", box=None)
    for config, one, two in zip(accounts, first, second, strict=True):
        table.add_row(config.label, render.status_text(one.status), render.status_text(two.status))
    return table


def _print_hints(console: Console, workspace: Path, db_url: str | None) -> None:
    if db_url is None and os.environ.get("RECON_DATABASE_URL"):
        db_url = "sqlite:///recon.db"  # the workspace's database, not the one the environment names
    recon = _command_from(workspace) + (f" --db {db_url}" if db_url else "")
    console.print(
        f"\nExplore the demo: [bold]cd {workspace}[/] and try\n"
        f"  {recon} fleet\n  {recon} runs\n  {recon} report 1 --json\n"
        f"  {recon} ledger show lxalgo paper      (FIFO lots and P&L: 340,000 on the scale-in)\n"
        f"  {recon} resume shortseller live\n"
        f"  edit venues/*.json, then: {recon} reconcile momentum live --dry-run",
        soft_wrap=True,
    )


def _command_from(workspace: Path) -> str:
    """How to call ``recon`` from inside the workspace: by name when it is on PATH, else by its path."""
    if shutil.which("recon"):
        return "recon"
    installed = Path(sys.executable).parent / "recon"
    return os.path.relpath(installed, workspace.resolve()) if installed.exists() else "recon"


__all__ = ["MARKER", "prepare_workspace", "run_demo", "seed_books", "why_not_a_demo"]
