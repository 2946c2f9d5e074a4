"""The benchmark scripts stay runnable: each imports against the code as it is and answers --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_a_benchmark_script_starts_and_explains_itself(script: str) -> None:
    finished = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "usage:" in finished.stdout.lower()
