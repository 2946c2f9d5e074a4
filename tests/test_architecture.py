"""The dependency rule of DESIGN.md and docs/architecture.md, for our packages and for third-party ones.

    reconciliation  <-  venues, models  <-  workers  <-  tasks (by task name only), api  <-  cli
    SQL (SQLAlchemy, Alembic) only in models/ and alembic/; venue SDKs and requests only in venues/;
    Celery, kombu, celery-redbeat and Redis only in workers/ (Celery also in tasks/; Redis also in api/, which
    reads the event stream and the counters); Typer and Rich only in cli/; FastAPI, uvicorn, Jinja2 and
    prometheus_client only in api/, which reads through models/ and sends tasks through workers/.

Every import counts, also one inside a function or under ``if TYPE_CHECKING``. bench/ measures the packages
from outside: it may import any of ours, and SQLAlchemy (to count statements, and for its deliberately
per-row baseline) and Celery, kombu and Redis (to drive real workers), but no venue SDK; a benchmark may use
another's helpers (``fleet_10k`` starts its private Redis and Postgres as ``chaos`` does).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"reconciliation", "venues", "models", "workers", "tasks", "cli", "api"}
ALLOWED_OURS = {
    "reconciliation": set(),
    "venues": {"reconciliation"},
    "models": {"reconciliation"},
    "workers": {"reconciliation", "venues", "models"},
    "tasks": {"workers", "reconciliation"},
    "cli": {"reconciliation", "models", "workers", "api"},
    "api": {"reconciliation", "models", "workers"},
    "alembic": {"models"},
    "bench": {"reconciliation", "venues", "models", "workers", "api"},
}
ALLOWED_THIRD_PARTY = {
    "reconciliation": set(),
    "venues": {"pybit", "alpaca", "requests", "ib_async"},
    "models": {"sqlalchemy", "alembic"},
    "workers": {"celery", "kombu", "redbeat", "redis", "pydantic", "pydantic_settings"},
    "tasks": {"celery"},
    "cli": {"typer", "rich"},
    "api": {"fastapi", "starlette", "uvicorn", "jinja2", "anyio", "pydantic", "prometheus_client", "redis", "orjson"},
    "alembic": {"sqlalchemy", "alembic"},
    "bench": {
        "httpx",
        "sqlalchemy",
        "celery",
        "kombu",
        "redis",
        "fake_exchange",
        *(p.stem for p in (ROOT / "bench").glob("*.py")),
    },
}
SDKS = {"pybit", "alpaca", "requests", "ib_async", "eventkit"}


def imported_packages(path: Path) -> set[str]:
    """Top-level names a module imports, wherever in the module the import is."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names - {"__future__"}


def modules_of(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED_OURS))
def test_a_package_imports_only_the_packages_of_ours_the_design_allows(package: str) -> None:
    offending = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules_of(package)
        for name in imported_packages(path) & OURS
        if name != package and name not in ALLOWED_OURS[package]
    }
    assert not offending


@pytest.mark.parametrize("package", sorted(ALLOWED_THIRD_PARTY))
def test_a_package_imports_only_the_third_party_packages_its_layer_owns(package: str) -> None:
    offending = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules_of(package)
        for name in imported_packages(path) - OURS - set(sys.stdlib_module_names)
        if name not in ALLOWED_THIRD_PARTY[package] and name != package
    }
    assert not offending


def test_nothing_imports_the_tasks_but_celery_by_name() -> None:
    importers = {
        str(path.relative_to(ROOT))
        for package in (OURS - {"tasks"}) | {"bench"}
        for path in modules_of(package)
        if "tasks" in imported_packages(path)
    }
    assert not importers


def test_the_rules_cover_every_package_that_holds_code() -> None:
    packages = {
        path.parent.name for path in ROOT.glob("*/*.py") if path.parent.name not in {"tests", "scripts", ".venv"}
    }
    assert packages <= set(ALLOWED_OURS)


def test_no_venue_sdk_is_imported_outside_the_venues() -> None:
    offending = {
        str(path.relative_to(ROOT))
        for package in (OURS - {"venues"}) | {"bench", "alembic"}
        for path in modules_of(package)
        if imported_packages(path) & SDKS
    }
    assert not offending


def test_the_engine_imports_only_the_standard_library() -> None:
    outside = {
        f"{path.name}: {name}"
        for path in modules_of("reconciliation")
        for name in imported_packages(path)
        if name not in sys.stdlib_module_names and name != "reconciliation"
    }
    assert not outside
