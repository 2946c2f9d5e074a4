"""A real ``recon serve`` on loopback for the API and page tests: started as the operator starts it, waited for,
stopped with its process group."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import free_port, stop_process_groups

RECON = Path(sys.executable).parent / "recon"
START_SECONDS = 60.0  # a loaded 2-core machine can take this long to import and bind


@dataclass(frozen=True)
class Server:
    """A running server: where it listens and its process."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, token: str | None = None, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client for this server, sending ``token`` as a bearer token when given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


@contextmanager
def running_server(env: dict[str, str], cwd: Path, *args: str) -> Iterator[Server]:
    """``recon serve`` with ``env`` (and this process's environment without its ``RECON_*``) on a free loopback
    port, until the block ends."""
    port = free_port()
    log = cwd / f"serve-{port}.log"
    with log.open("wb") as output:
        command = [str(RECON), "serve", "--port", str(port), *args]
        process = subprocess.Popen(command, env={**hermetic_environment(), **env}, cwd=cwd, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_until_listening(server)
        yield server
    finally:
        stop_process_groups(process)


def hermetic_environment() -> dict[str, str]:
    """This process's environment without any ``RECON_*`` setting: a test's server has only those it is given."""
    return {name: value for name, value in os.environ.items() if not name.startswith("RECON_")}


def _wait_until_listening(server: Server) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"recon serve exited with {server.process.returncode}:\n{server.log.read_text()}")
        try:
            httpx.get(f"{server.url}/api/v1/health", timeout=5)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"recon serve did not answer within {START_SECONDS:.0f} s:\n{server.log.read_text()}")
