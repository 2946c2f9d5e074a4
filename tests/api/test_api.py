"""The API through a real ``recon serve`` on loopback, on the test Postgres and Redis with the example fleet: who
may do what, the trading gate, triggers coalesced like ``recon trigger``, the audit, and one error shape."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from models.audit import OperatorAction
from models.database import Database
from tests.api.server import Server, running_server
from tests.conftest import EXAMPLES, REDIS_URL, reconcile
from workers.fleet import load_fleet
from workers.settings import Settings

OPERATOR = "ops-operate-token-0123456789"
READER = "ops-read-token-0123456789abc"
LXALGO_BOT = "lxalgo-bot-token-0123456789"
TOKENS = f"alice:operate:{OPERATOR},grafana:read:{READER},lx:bot=lxalgo:{LXALGO_BOT}"
ACCOUNTS = 6  # the example fleet: three bots, paper and live each


def server_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment ``recon serve`` gets: the same settings as the test's workers, and the tokens."""
    env = {
        "RECON_DATABASE_URL": settings.database_url.get_secret_value(),
        "RECON_FLEET": str(settings.fleet),
        "RECON_REDIS_URL": REDIS_URL,
        "RECON_BROKER_URL": settings.broker,
        "RECON_API_TOKENS": TOKENS,
        "RECON_COALESCE_SECONDS": "30",
    }
    return {**env, **extra}


@pytest.fixture(scope="module")
def shared_server(postgres_session_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``recon serve`` for the module, on the test Postgres and Redis with a copy of the example fleet: it reads
    both afresh for every request, so each test's own books are what it answers about."""
    folder = tmp_path_factory.mktemp("api")
    shutil.copytree(EXAMPLES, folder / "fleet")
    env = {"RECON_DATABASE_URL": postgres_session_url, "RECON_FLEET": str(folder / "fleet" / "fleet.toml"),
           "RECON_REDIS_URL": REDIS_URL, "RECON_BROKER_URL": REDIS_URL, "RECON_API_TOKENS": TOKENS,
           "RECON_COALESCE_SECONDS": "30"}  # fmt: skip
    with running_server(env, folder) as running:
        yield running


@pytest.fixture
def server(shared_server: Server, settings: Settings) -> Server:
    """``recon serve`` over this test's books: the example fleet's seeded, nothing run yet (``settings`` empties
    and seeds the same Postgres and Redis)."""
    return shared_server


def run_all(settings: Settings) -> None:
    """One run of every account of the example fleet, in-process (shortseller/live ends halted)."""
    database = Database(settings.database_url.get_secret_value())
    for config in load_fleet(Path(str(settings.fleet))).accounts:
        reconcile(database, config)
    database.dispose()


def error_of(answer: Any) -> dict[str, str]:
    body = answer.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


# --- who may do what ----------------------------------------------------------------------------------------------


def test_without_a_token_only_health_answers(server: Server) -> None:
    with server.client() as anonymous:
        health = anonymous.get("/api/v1/health")
        answer = anonymous.get("/api/v1/fleet")

    assert health.json() == {"status": "degraded", "database": "ok", "redis": "ok", "workers": "none answering"}
    assert health.status_code == 503  # no worker runs in this test
    assert answer.status_code == 401
    assert error_of(answer)["code"] == "unauthorized"
    assert answer.headers["www-authenticate"] == "Bearer"


def test_a_wrong_token_is_refused_and_never_written_to_the_log(server: Server) -> None:
    wrong = "not-a-token-but-long-enough-0001"
    with server.client(wrong) as stranger:
        answer = stranger.get("/api/v1/fleet")
    with server.client(OPERATOR) as operator:
        assert operator.get("/api/v1/fleet").status_code == 200

    assert answer.status_code == 401
    assert wrong not in answer.text
    log = server.log.read_text()
    assert "GET /api/v1/fleet" in log  # the requests were logged, the tokens were not
    assert wrong not in log and OPERATOR not in log


def test_a_bots_token_reads_and_triggers_its_own_accounts_only(server: Server, settings: Settings) -> None:
    run_all(settings)
    with server.client(LXALGO_BOT) as bot:
        fleet = bot.get("/api/v1/fleet").json()["accounts"]
        own = bot.get("/api/v1/accounts/lxalgo/paper")
        other = bot.get("/api/v1/accounts/momentum/paper")
        others_runs = bot.get("/api/v1/runs", params={"bot": "momentum"})
        runs = bot.get("/api/v1/runs").json()["runs"]
        trigger_own = bot.post("/api/v1/accounts/lxalgo/paper/reconcile", json={"reason": "large_fill"})
        trigger_other = bot.post("/api/v1/accounts/momentum/paper/reconcile", json={"reason": "large_fill"})
        halt_own = bot.post("/api/v1/accounts/lxalgo/paper/halt", json={"reason": "no"})

    assert {row["bot"] for row in fleet} == {"lxalgo"}
    assert own.status_code == 200
    assert other.status_code == 403 and error_of(other)["code"] == "forbidden"
    assert others_runs.status_code == 403
    assert runs and {run["bot"] for run in runs} == {"lxalgo"}
    assert trigger_own.status_code == 202
    assert trigger_other.status_code == 403
    assert halt_own.status_code == 403


def test_a_read_token_reads_everything_and_changes_nothing(server: Server, settings: Settings) -> None:
    run_all(settings)
    with server.client(READER) as reader:
        assert len(reader.get("/api/v1/fleet").json()["accounts"]) == ACCOUNTS
        halt = reader.post("/api/v1/accounts/lxalgo/paper/halt", json={"reason": "no"})
        trigger = reader.post("/api/v1/accounts/lxalgo/paper/reconcile")
        account = reader.get("/api/v1/accounts/lxalgo/paper").json()

    assert halt.status_code == 403 and trigger.status_code == 403
    assert account["halted"] is False


def test_health_is_ok_when_a_worker_answers(server: Server, worker: Any) -> None:
    with server.client() as anonymous:
        health = anonymous.get("/api/v1/health")

    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": "ok", "redis": "ok", "workers": "1 answering"}


# --- the fleet and the trading gate --------------------------------------------------------------------------------


def test_the_fleet_lists_every_account_of_the_fleet_file_also_those_never_run(server: Server) -> None:
    with server.client(READER) as reader:
        rows = reader.get("/api/v1/fleet").json()["accounts"]

    assert [(r["bot"], r["account"]) for r in rows] == [
        ("lxalgo", "live"), ("lxalgo", "paper"), ("momentum", "live"), ("momentum", "paper"),
        ("shortseller", "live"), ("shortseller", "paper"),
    ]  # fmt: skip
    never_run = rows[0]
    assert never_run["last_run"] is None and never_run["last_success_at"] is None
    assert never_run["stale"] is True
    assert never_run["trading_allowed"] is False and never_run["reasons"] == ["stale"]


def test_the_gate_opens_after_a_successful_run_and_closes_for_a_halt_and_a_critical_break(
    server: Server, settings: Settings
) -> None:
    run_all(settings)
    with server.client(LXALGO_BOT) as bot:
        in_sync = bot.get("/api/v1/accounts/lxalgo/live").json()
    with server.client(READER) as reader:
        halted = reader.get("/api/v1/accounts/shortseller/live").json()

    assert in_sync["trading_allowed"] is True and in_sync["reasons"] == []
    assert in_sync["last_run"]["status"] in ("in_sync", "resolved")
    assert isinstance(in_sync["last_success_age_seconds"], float)
    assert halted["trading_allowed"] is False
    assert halted["reasons"] == ["halted", "open_critical_breaks"]
    assert halted["open_breaks"]["critical"] >= 1


def test_the_gate_closes_when_the_last_run_failed(server: Server, settings: Settings, example_fleet: Path) -> None:
    run_all(settings)
    (example_fleet.parent / "venues" / "lxalgo_live.json").write_text("{not json")
    database = Database(settings.database_url.get_secret_value())
    failed = reconcile(database, load_fleet(example_fleet).account("lxalgo", "live"))
    database.dispose()

    with server.client(LXALGO_BOT) as bot:
        gate = bot.get("/api/v1/accounts/lxalgo/live").json()

    assert failed.failed
    assert gate["trading_allowed"] is False and gate["reasons"] == ["last_run_failed"]
    assert gate["stale"] is False  # the run before it succeeded moments ago


# --- operate actions and their audit -------------------------------------------------------------------------------


def test_halt_and_resume_are_recorded_with_who_when_and_why(server: Server, settings: Settings) -> None:
    with server.client(OPERATOR) as operator:
        first = operator.post("/api/v1/accounts/momentum/live/halt", json={"reason": "venue maintenance"})
        again = operator.post("/api/v1/accounts/momentum/live/halt", json={"reason": "still"})
        gate = operator.get("/api/v1/accounts/momentum/live").json()
        resumed = operator.post("/api/v1/accounts/momentum/live/resume")

    assert first.json() == {"bot": "momentum", "account": "live", "halted": True, "changed": True}
    assert again.json()["changed"] is False
    assert "halted" in gate["reasons"] and gate["halted_reason"] == "still"  # the newest reason stands
    assert resumed.json()["changed"] is True
    database = Database(settings.database_url.get_secret_value())
    with database.reading() as session:
        audit = [(a.action, a.actor, a.reason, a.outcome) for a in session.scalars(select(OperatorAction))]
    database.dispose()
    assert audit == [
        ("halt", "alice", "venue maintenance", "halted"),
        ("halt", "alice", "still", "unchanged"),
        ("resume", "alice", None, "resumed"),
    ]


def test_triggers_coalesce_like_recon_trigger_and_are_audited(server: Server, settings: Settings) -> None:
    with server.client(LXALGO_BOT) as bot:
        first = bot.post("/api/v1/accounts/lxalgo/paper/reconcile", json={"reason": "large_fill"})
        second = bot.post("/api/v1/accounts/lxalgo/paper/reconcile")

    assert first.status_code == 202 and first.json() == {"queued": True, "joined": False, "run_id": None}
    assert second.status_code == 202 and second.json() == {"queued": False, "joined": True, "run_id": None}
    database = Database(settings.database_url.get_secret_value())
    with database.reading() as session:
        audit = [(a.action, a.actor, a.reason, a.outcome) for a in session.scalars(select(OperatorAction))]
    database.dispose()
    assert audit == [("trigger", "lx", "large_fill", "queued"), ("trigger", "lx", "large_fill", "joined")]


def test_a_trigger_that_waits_answers_with_the_report_of_the_run_that_served_it(
    server: Server, settings: Settings, worker: Any
) -> None:
    with server.client(LXALGO_BOT, timeout=90) as bot:
        answer = bot.post("/api/v1/accounts/lxalgo/paper/reconcile", params={"wait": 60}, json={"reason": "large_fill"})
        runs = bot.get("/api/v1/runs", params={"account": "paper"}).json()["runs"]

    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["bot"], report["account"], report["reason"]) == ("lxalgo", "paper", "large_fill")
    assert report["run_id"] == runs[0]["run_id"] and report["status"] != "running"


# --- runs, breaks and books ---------------------------------------------------------------------------------------


def test_runs_page_newest_first_and_a_run_reads_as_recon_report(server: Server, settings: Settings) -> None:
    run_all(settings)
    run_all(settings)
    with server.client(READER) as reader:
        first = reader.get("/api/v1/runs", params={"limit": 5}).json()
        second = reader.get("/api/v1/runs", params={"limit": 5, "before": first["next_before"]}).json()
        rest = reader.get("/api/v1/runs", params={"limit": 5, "before": second["next_before"]}).json()
        report = reader.get(f"/api/v1/runs/{first['runs'][0]['run_id']}").json()
        halted = reader.get("/api/v1/runs", params={"status": "halted"}).json()["runs"]

    ids = [r["run_id"] for page in (first, second, rest) for r in page["runs"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == len(set(ids)) == 2 * ACCOUNTS
    assert rest["next_before"] is None
    assert report["run_id"] == first["runs"][0]["run_id"] and "summary" in report and "discrepancies" in report
    assert halted and {(r["bot"], r["account"]) for r in halted} == {("shortseller", "live")}


def test_breaks_and_books_read_as_the_cli_shows_them(server: Server, settings: Settings) -> None:
    run_all(settings)
    with server.client(READER) as reader:
        breaks = reader.get("/api/v1/breaks", params={"bot": "shortseller"}).json()["breaks"]
        books = reader.get("/api/v1/accounts/lxalgo/paper/books").json()

    assert breaks and all(b["resolved_at"] is None and b["bot"] == "shortseller" for b in breaks)
    assert {b["severity"] for b in breaks} >= {"critical"}
    assert all(isinstance(b["occurrences"], int) and b["first_seen_at"].endswith("Z") for b in breaks)
    assert books["positions"] and all(isinstance(p["qty"], str) for p in books["positions"])


# --- one error shape ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "says"),
    [
        ("get", "/api/v1/accounts/nobody/live", 404, "no account nobody/live"),
        ("get", "/api/v1/runs/999999", 404, "no run with id 999999"),
        ("get", "/api/v1/runs?limit=0", 422, "limit:"),
        ("get", "/api/v1/runs/abc", 422, "run_id:"),
        ("get", "/api/v1/accounts/Bad%20Name/live", 422, "bot:"),
        ("post", "/api/v1/accounts/nobody/live/reconcile", 404, "no account nobody/live in the fleet file"),
        ("get", "/api/v1/nowhere", 404, "no such page or endpoint"),
    ],
)
def test_errors_have_one_shape_naming_what_is_wrong(
    server: Server, method: str, path: str, status: int, says: str
) -> None:
    with server.client(OPERATOR) as operator:
        answer = operator.request(method.upper(), path)

    assert answer.status_code == status
    assert says in error_of(answer)["message"]


def test_a_bad_body_is_refused_naming_the_field(server: Server) -> None:
    with server.client(OPERATOR) as operator:
        reason = operator.post("/api/v1/accounts/lxalgo/paper/reconcile", json={"reason": "because"})
        halt = operator.post("/api/v1/accounts/lxalgo/paper/halt", json={})

    assert reason.status_code == 422 and error_of(reason)["message"].startswith("reason:")
    assert halt.status_code == 422 and error_of(halt)["message"].startswith("reason:")


def test_a_database_that_is_down_is_503_without_sql_or_secrets(settings: Settings, tmp_path: Path) -> None:
    down = "postgresql://recon:s3cret-password@127.0.0.1:1/nowhere"
    with running_server(server_env(settings, RECON_DATABASE_URL=down), tmp_path) as server, \
            server.client(READER) as reader:  # fmt: skip
        fleet = reader.get("/api/v1/fleet")
        health = reader.get("/api/v1/health")

    assert fleet.status_code == 503 and error_of(fleet)["code"] == "unavailable"
    assert "s3cret" not in fleet.text and "SELECT" not in fleet.text.upper()
    assert health.status_code == 503
    assert health.json()["status"] == "degraded" and health.json()["database"].startswith("unavailable")
    assert "s3cret" not in health.text


# --- metrics ---------------------------------------------------------------------------------------------------


def test_metrics_are_open_without_a_metrics_token_and_count_the_fleets_runs(server: Server, settings: Settings) -> None:
    run_all(settings)
    with server.client() as prometheus:
        answer = prometheus.get("/metrics")

    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert 'recon_account_halted{account="live",bot="shortseller"} 1.0' in answer.text
    runs = [sample for family in text_string_to_metric_families(answer.text) if family.name == "recon_runs"
            for sample in family.samples if sample.name == "recon_runs_total"]  # fmt: skip
    assert sum(s.value for s in runs) == ACCOUNTS  # one run each
    assert sum(s.value for s in runs if s.labels["bot"] == "shortseller" and s.labels["status"] == "halted") == 1


def test_with_a_metrics_token_metrics_need_it(settings: Settings, tmp_path: Path) -> None:
    scrape = "prometheus-scrape-token-0123456789"
    with running_server(server_env(settings, RECON_METRICS_TOKEN=scrape), tmp_path) as server:
        with server.client() as anonymous:
            refused = anonymous.get("/metrics")
        with server.client(OPERATOR) as api_token:
            wrong = api_token.get("/metrics")
        with server.client(scrape) as prometheus:
            scraped = prometheus.get("/metrics")

    assert refused.status_code == 401 and wrong.status_code == 401
    assert scraped.status_code == 200 and "recon_account_halted" in scraped.text
