"""The README's service block, followed literally: the first shell block under "Running it as a service" runs in
bash from the fleet's folder (not the repository), with only its URLs pointed at the test's Postgres and Redis.

It starts the Procfile's worker, beat, Flower and API through honcho, waits for a worker, triggers a run,
reconciles through the workers, asks the API for the account's trading gate and stops them all. The test checks
what an operator would: the commands said what they did, the runs are in Postgres, and no process is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis

from models.database import Database
from models.history import list_runs
from tests.conftest import free_port

REDIS_URL = os.environ.get("RECON_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[2]
README_DATABASE_URL = "postgresql://recon@127.0.0.1/recon"
README_REDIS_URL = "redis://127.0.0.1:6379/0"
BLOCK_SECONDS = 300  # the block waits up to 60 s for workers and 300 s for its report; a healthy run takes ~20 s
LEAVING_SECONDS = 10  # how long a stopped process may take to finish exiting once the block has ended


def service_block() -> str:
    """The first fenced block after the README's "Running it as a service" heading."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Running it as a service", 1)[1]
    block = re.search(r"^```[a-z]*\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)
    assert block is not None, "the section has a shell block"
    return block.group(1)


def processes_in_group(group: int) -> list[str]:
    """The command lines (else names) and states of the live (not zombie) processes in a process group."""
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            with contextlib.suppress(OSError):
                command = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{command or status.read_text().split(')', 1)[0] + ')'} [state {fields[0]}]")
    return found


def processes_left_in_group(group: int, grace: float = LEAVING_SECONDS) -> list[str]:
    """The processes of a group still alive after `grace` seconds: ones already on their way out (their memory
    released, so an empty command line, but not yet a zombie) are given that long to finish."""
    deadline = time.monotonic() + grace
    while (found := processes_in_group(group)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def test_the_readmes_service_block_runs_as_written_from_the_fleets_folder(
    example_fleet: Path, postgres_url: str
) -> None:
    script = service_block()
    assert README_DATABASE_URL in script and README_REDIS_URL in script, "the block's URLs are the ones replaced"
    script = script.replace(README_DATABASE_URL, shlex.quote(postgres_url)).replace(README_REDIS_URL, REDIS_URL)
    Redis.from_url(REDIS_URL).flushdb()
    bin_dir = str(Path(sys.executable).parent)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("RECON_", "FLOWER_"))}
    env |= {"PATH": f"{bin_dir}:{env.get('PATH', '')}", "FLOWER_PORT": str(free_port()), "COLUMNS": "200",
            "RECON_API_PORT": str(free_port())}  # fmt: skip
    shell = subprocess.Popen(["bash", "-c", script], cwd=example_fleet.parent, env=env, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        out, err = shell.communicate(timeout=BLOCK_SECONDS)
        left_behind = processes_left_in_group(shell.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)
        shell.wait(timeout=30)
        Redis.from_url(REDIS_URL).flushdb()

    assert "recon: error" not in err, err
    assert "Traceback" not in err, err
    assert re.search(r"^recon\.sim: \S+@\S+", out, flags=re.MULTILINE), (out, err[-3000:])
    assert "reconcile:lxalgo:live" in out, "recon schedule lists beat's entry for the account"
    assert "lxalgo/live: run queued" in out or "lxalgo/live: a run is already queued" in out
    assert re.search(r"^run \d+  lxalgo/live on sim  \w+  ", out, flags=re.MULTILINE), "--queue printed the report"
    gate = re.search(r'\{"bot":"lxalgo","account":"live".*?"reasons":\[[^\]]*\]\}', out)  # curl ends no line
    assert gate is not None, ("curl printed the account's row from the API", out, err[-3000:])
    assert json.loads(gate.group(0))["last_run"]["status"] != "running", "the API saw the finished runs"
    database = Database(postgres_url)
    with database.reading() as session:
        live = [(line.reason, line.status) for line in list_runs(session, "lxalgo", "live", limit=50)]
    database.dispose()
    assert any(reason == "large_fill" for reason, _ in live), "the trigger's run is recorded"
    assert all(status != "running" for _, status in live), "every run finished"
    assert left_behind == [], "kill %1 stopped worker, beat, flower and the API"
