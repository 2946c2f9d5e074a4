"""The Prometheus files in deploy/prometheus/ are valid, and each alert fires on the series it should and not on
a healthy account beside it (``promtool test rules`` with alerts_test.yml). promtool comes with Debian's
``prometheus`` package; without it these tests fail, saying so: they are never skipped."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS = Path(__file__).resolve().parent.parent.parent / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    """The path of promtool."""
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: install Debian's `prometheus` package (apt-get install prometheus)",
                    pytrace=False)  # fmt: skip
    return found


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    """promtool with ``args``, in deploy/prometheus/, bounded in time."""
    return subprocess.run([promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False)


def test_the_alert_rules_are_valid(promtool: str) -> None:
    checked = run(promtool, "check", "rules", "alerts.yml")

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "4 rules found" in checked.stdout


def test_each_alert_fires_on_its_series_and_not_on_a_healthy_one(promtool: str) -> None:
    tested = run(promtool, "test", "rules", "alerts_test.yml")

    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test(promtool: str) -> None:
    rules = (PROMETHEUS / "alerts.yml").read_text()
    tests = (PROMETHEUS / "alerts_test.yml").read_text()
    alerts = {line.split(":", 1)[1].strip() for line in rules.splitlines() if line.strip().startswith("- alert:")}

    assert alerts == {"ReconAccountStale", "ReconRunsFailing", "ReconAccountHalted", "ReconCriticalBreakOpen"}
    assert all(f"alertname: {alert}" in tests for alert in alerts)


def test_the_example_scrape_config_is_valid_and_loads_the_rules(promtool: str) -> None:
    checked = run(promtool, "check", "config", "prometheus.yml")

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout
    assert "127.0.0.1:8000" in (PROMETHEUS / "prometheus.yml").read_text()
