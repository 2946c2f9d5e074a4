"""The API's schema: the copy kept in the repo is the app's, and a property-based run of every operation against a
real server (schemathesis, a bounded number of examples) finds no 5xx and no answer that breaks the schema."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from redis import Redis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.openapi import openapi_document
from models.database import Database
from tests.api.server import running_server
from tests.conftest import EXAMPLES, REDIS_URL, _truncate, in_process_worker, reconcile
from workers.celery import create_app
from workers.fleet import load_fleet
from workers.settings import Settings

KEPT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
OPERATOR = "schema-operator-token-0123456789"
EXAMPLES_PER_OPERATION = 40


def test_the_schema_kept_in_the_repo_is_the_apps() -> None:
    kept = json.loads(KEPT.read_text(encoding="utf-8"))

    assert kept == openapi_document(), "regenerate it: python -m api.openapi > docs/openapi.json"


SCHEMA = schemathesis.openapi.from_dict(openapi_document())
OPERATIONS = {result.ok().label: result.ok() for result in SCHEMA.get_all_operations()}


@pytest.fixture(scope="module")
def server_url(postgres_session_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``recon serve`` on the example fleet with a run of every account in the books and a worker serving its
    triggers (so the health check is ok: degraded is a 503), for the whole module."""
    folder = tmp_path_factory.mktemp("schema")
    fleet_file = folder / "fleet" / "fleet.toml"
    shutil.copytree(EXAMPLES, fleet_file.parent)
    _truncate(postgres_session_url)
    Redis.from_url(REDIS_URL).flushdb()
    database = Database(postgres_session_url)
    for config in load_fleet(fleet_file).accounts:
        reconcile(database, config)
    database.dispose()
    env = {"RECON_DATABASE_URL": postgres_session_url, "RECON_FLEET": str(fleet_file), "RECON_REDIS_URL": REDIS_URL,
           "RECON_API_TOKENS": f"schema:operate:{OPERATOR}"}  # fmt: skip
    settings = Settings(database_url=postgres_session_url, fleet=str(fleet_file), redis_url=REDIS_URL)
    with running_server(env, folder) as server, in_process_worker(create_app(settings)):
        yield server.url
    Redis.from_url(REDIS_URL).flushdb()


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_no_operation_answers_a_5xx_or_breaks_its_schema(server_url: str, label: str) -> None:
    @hypothesis.given(case=OPERATIONS[label].as_strategy())
    @hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))  # fmt: skip
    def answers_within_its_schema(case: schemathesis.Case) -> None:
        case.call_and_validate(
            base_url=server_url,
            headers={"Authorization": f"Bearer {OPERATOR}"},
            checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
            timeout=30,
        )

    answers_within_its_schema()
