"""``recon serve`` as an operator starts it: refused beyond loopback without tokens, open to this machine only on
the embedded default, where a trigger runs the reconciliation in the server's process."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.server import RECON, Server, hermetic_environment, running_server


@pytest.fixture
def embedded(example_fleet: Path, sqlite_url: str, tmp_path: Path) -> Iterator[Server]:
    """``recon serve`` on the embedded default: the example fleet, SQLite, no Redis, no tokens."""
    env = {"RECON_DATABASE_URL": sqlite_url, "RECON_FLEET": str(example_fleet)}
    with running_server(env, tmp_path) as running:
        yield running


def test_serving_beyond_loopback_without_tokens_is_refused_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([str(RECON), "serve", "--host", "0.0.0.0"], env=hermetic_environment(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip

    assert done.returncode == 2
    assert done.stderr == (
        "recon: error: refusing to serve on 0.0.0.0 without RECON_API_TOKENS: set tokens (docs/api.md) "
        "or bind 127.0.0.1\n"
    )


def test_a_bad_token_setting_stops_the_server_before_it_listens(tmp_path: Path) -> None:
    env = {**hermetic_environment(), "RECON_API_TOKENS": "alice:admin:0123456789abcdef0123"}
    done = subprocess.run([str(RECON), "serve"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip

    assert done.returncode == 2
    assert "RECON_API_TOKENS: entry 1 (alice): the role must be read, operate or bot=<bot name>" in done.stderr
    assert "0123456789abcdef0123" not in done.stderr


def test_on_the_embedded_default_health_is_ok_and_a_trigger_runs_here(embedded: Server) -> None:
    with embedded.client() as local:
        health = local.get("/api/v1/health").json()
        queued = local.post("/api/v1/accounts/lxalgo/paper/reconcile", json={"reason": "manual"})
        waited = local.post("/api/v1/accounts/lxalgo/paper/reconcile", params={"wait": 30})
        runs = local.get("/api/v1/runs").json()["runs"]
        gate = local.get("/api/v1/accounts/lxalgo/paper").json()

    assert health == {"status": "ok", "database": "ok", "redis": "not configured (the embedded default)",
                      "workers": "not configured (the embedded default)"}  # fmt: skip
    assert queued.status_code == 202 and queued.json()["queued"] is True
    assert waited.status_code == 200 and waited.json()["run_id"] == runs[0]["run_id"]
    assert [r["run_id"] for r in runs] == [queued.json()["run_id"] + 1, queued.json()["run_id"]]
    assert gate["last_run"]["run_id"] == runs[0]["run_id"] and gate["trading_allowed"] is True


def test_without_tokens_only_requests_naming_this_machine_are_answered(embedded: Server) -> None:
    with embedded.client() as local:
        rebound = local.get("/api/v1/fleet", headers={"Host": "attacker.example:8000"})
        by_name = local.get("/api/v1/fleet", headers={"Host": "localhost"})

    assert rebound.status_code == 403
    assert rebound.json()["error"]["message"] == (
        "without RECON_API_TOKENS only requests to 127.0.0.1 or localhost are answered"
    )
    assert by_name.status_code == 200


def test_without_tokens_another_sites_page_cannot_halt_an_account(embedded: Server) -> None:
    url = f"{embedded.url}/api/v1/accounts/lxalgo/live/halt"
    cross_site = httpx.post(url, json={"reason": "x"}, headers={"Origin": "https://evil.example"}, timeout=30)
    fetch_metadata = httpx.post(url, json={"reason": "x"}, headers={"Sec-Fetch-Site": "cross-site"}, timeout=30)
    same_origin = httpx.post(url, json={"reason": "by hand"}, headers={"Origin": embedded.url}, timeout=30)

    assert cross_site.status_code == 403 and fetch_metadata.status_code == 403
    assert same_origin.status_code == 200 and same_origin.json()["halted"] is True
