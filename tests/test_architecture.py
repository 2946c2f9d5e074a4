"""The dependency rule of DESIGN.md: reconciliation <- venues, models <- workers <- tasks (by name only)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"reconciliation", "venues", "models", "workers", "tasks"}
ALLOWED = {
    "reconciliation": set(),
    "venues": {"reconciliation"},
    "models": {"reconciliation"},
    "workers": {"reconciliation", "venues", "models", "workers"},
    "tasks": {"workers", "reconciliation"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level names a module imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_the_design_allows(package: str) -> None:
    offending = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / package).rglob("*.py")
        for name in imported_packages(path) & OURS
        if name != package and name not in ALLOWED[package]
    }
    assert not offending


def test_engine_imports_only_the_standard_library() -> None:
    outside = {
        f"{path.name}: {name}"
        for path in (ROOT / "reconciliation").rglob("*.py")
        for name in imported_packages(path)
        if name not in sys.stdlib_module_names and name not in ({"reconciliation", "__future__"})
    }
    assert not outside


def test_only_the_venues_package_imports_venue_sdks() -> None:
    sdks = {"pybit", "alpaca"}
    offending = {
        str(path.relative_to(ROOT))
        for package in OURS - {"venues"}
        for path in (ROOT / package).rglob("*.py")
        if imported_packages(path) & sdks
    }
    assert not offending
