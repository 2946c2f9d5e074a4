"""Writing a command's output to a file: whole or not at all, and never over a file that exists unless forced."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from reconciliation.errors import FixConfiguration

OutOption = Annotated[
    Path | None, typer.Option("--out", help="Write to this file (atomically) instead of printing.", dir_okay=False)
]
ForceFlag = Annotated[bool, typer.Option("--force", help="With --out: replace a file that exists.")]


def refuse_existing(path: Path, force: bool) -> None:
    """A usage error when ``path`` exists and ``force`` is not given, checked before any work is done."""
    if path.exists() and not force:
        raise FixConfiguration(f"{path} exists: pass --force to replace it")
    if path.is_dir():
        raise FixConfiguration(f"{path} is a directory")


def write_atomically(path: Path, text: str, force: bool) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory renamed over it, so a reader sees
    the old file or the whole new one; an existing file is kept unless ``force``."""
    refuse_existing(path, force)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FixConfiguration(f"{path}: no directory {directory}")
    try:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise FixConfiguration(f"{path}: cannot write in {directory}: {error.strerror}") from error
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would hide a report from its readers
        _move(Path(temporary), path, force)
    except OSError as error:
        raise FixConfiguration(f"{path}: {error.strerror or error}") from error
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _move(temporary: Path, path: Path, force: bool) -> None:
    if force:
        os.replace(temporary, path)
        return
    try:  # a link refuses a file that appeared since the check, where a rename would replace it
        os.link(temporary, path)
    except FileExistsError:
        raise FixConfiguration(f"{path} exists: pass --force to replace it") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
