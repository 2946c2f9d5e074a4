"""The deployment files run what docs/operations.md says they run.

There is no Docker engine on these machines, so docker-compose.yml is validated against the Compose
Specification's JSON schema (the copy vendored by check-jsonschema 0.39.0, pinned in pyproject.toml; upstream
compose-spec/compose-spec, Apache-2.0), then parsed (PyYAML, anchors and merge keys resolved) and checked for
the facts the service relies on: one image, migration before workers, two beats on one locked schedule,
Flower behind a login, no password written in the file. The Procfile is checked against the executables this
project installs into the environment running the tests, and against the compose commands.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from workers.celery import create_app
from workers.schedule import QUEUES as APP_QUEUES
from workers.settings import Settings

try:
    import yaml
except ModuleNotFoundError as exc:  # pragma: no cover - a clear message instead of a bare ImportError
    raise ImportError("tests/test_deploy_files.py needs PyYAML (dev extras): pip install -e '.[dev]'") from exc

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

APP_SERVICES = ("migrate", "worker", "beat", "flower")
CELERY_SERVICES = ("worker", "beat", "flower")
QUEUES = {"recon.default", "recon.sim", "recon.bybit", "recon.alpaca"}
HARD_TIME_LIMIT_SECONDS = 300
REQUIRED_VARIABLE = re.compile(r"\$\{[A-Z][A-Z0-9_]*:?\?[^}]*\}")  # ${NAME:?message}: set, or Compose stops


# ---------------------------------------------------------------- helpers


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return list(command) if isinstance(command, list) else shlex.split(command)


def _procfile_args(line: str) -> list[str]:
    """A Procfile command's words, after an optional ``umask NNN && exec`` or ``NAME=value exec`` prefix."""
    args = shlex.split(line)
    if args[:1] == ["umask"] and args[2:4] == ["&&", "exec"]:
        return args[4:]
    while args and re.fullmatch(r"[A-Z_]+=.*", args[0]):
        args = args[1:]
    return args[1:] if args[:1] == ["exec"] else args


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def _flag(args: list[str], name: str) -> str | None:
    """Value of ``--name=value`` or ``--name value`` in an argument list, or None."""
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def _seconds(duration: str) -> float:
    """A Compose duration (``330s``, ``5m30s``, ``1h``) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts, f"not a duration: {duration!r}"
    assert "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    factor = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}
    return sum(float(n) * factor[u] for n, u in parts)


def _mount_targets(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Container path -> {"source", "read_only"} for short and long volume syntax."""
    mounts: dict[str, dict[str, Any]] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            mounts[target] = {"source": source, "read_only": "ro" in mode}
        else:
            mounts[volume["target"]] = {"source": volume.get("source"), "read_only": bool(volume.get("read_only"))}
    return mounts


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def procfile() -> dict[str, str]:
    processes: dict[str, str] = {}
    for line in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line)  # honcho's and foreman's line format
        if match:
            assert match.group(1) not in processes, f"process type {match.group(1)} defined twice"
            processes[match.group(1)] = match.group(2)
    return processes


# ---------------------------------------------------------------- docker-compose.yml


def test_compose_is_a_v2_spec_file_with_every_service(compose: dict[str, Any]) -> None:
    assert "version" not in compose, "Compose v2 ignores and warns about a top-level version key"
    assert set(compose["services"]) >= {"postgres", "redis", *APP_SERVICES}
    assert all(key in {"services", "volumes", "networks", "name"} or key.startswith("x-") for key in compose)


def test_app_services_share_one_image_built_from_the_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    images = set()
    for name in APP_SERVICES:
        build = services[name]["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        assert context in {".", "./"}, name
        images.add(services[name].get("image"))
    assert len(images) == 1, f"one image for every process, got {images}"
    assert (ROOT / "Dockerfile").is_file()


def test_postgres_and_redis_are_healthchecked_and_keep_their_data(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    postgres, redis = services["postgres"], services["redis"]
    assert postgres["image"] in {"postgres:16", "postgres:16-alpine"} or postgres["image"].startswith("postgres:16.")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert redis["image"].split(":")[1].split(".")[0].startswith("7")
    assert redis["healthcheck"]["test"][-2:] == ["redis-cli", "ping"] or "redis-cli ping" in " ".join(
        redis["healthcheck"]["test"]
    )
    named = set(compose.get("volumes") or {})
    pg_mounts = _mount_targets(postgres)
    assert pg_mounts["/var/lib/postgresql/data"]["source"] in named, "Postgres data on a named volume"


def test_migrate_runs_db_upgrade_once_after_postgres_is_healthy(services: dict[str, dict[str, Any]]) -> None:
    migrate = services["migrate"]
    assert _command(migrate) == ["recon", "db", "upgrade"]
    assert migrate.get("restart") == "no", "a one-shot job must not be restarted"
    assert _depends_on(migrate).get("postgres") == "service_healthy"


@pytest.mark.parametrize("name", ["worker", "beat"])
def test_workers_and_beat_start_only_after_the_migration_succeeded(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    deps = _depends_on(services[name])
    assert deps.get("migrate") == "service_completed_successfully"
    assert deps.get("redis") == "service_healthy"


@pytest.mark.parametrize("name", CELERY_SERVICES)
def test_celery_processes_load_the_workers_app(services: dict[str, dict[str, Any]], name: str) -> None:
    args = _command(services[name])
    assert args[:3] == ["celery", "-A", "workers"], args
    assert args[3] == name, f"{name} runs `celery -A workers {name}`"


def test_worker_consumes_every_queue_one_message_per_process(services: dict[str, dict[str, Any]]) -> None:
    args = _command(services["worker"])
    assert set((_flag(args, "--queues") or "").split(",")) == QUEUES
    assert _flag(args, "--prefetch-multiplier") == "1"
    assert _flag(args, "--concurrency") == "2"
    assert "-B" not in args and "--beat" not in args, "an embedded beat in every worker multiplies the schedule"


def test_deploy_files_agree_with_the_app(services: dict[str, dict[str, Any]]) -> None:
    assert set(APP_QUEUES) == QUEUES, "the worker command must consume every queue the app routes to"
    assert Settings.model_fields["task_time_limit"].default == HARD_TIME_LIMIT_SECONDS


def test_worker_stop_grace_period_outlasts_the_hard_time_limit(services: dict[str, dict[str, Any]]) -> None:
    grace = _seconds(services["worker"]["stop_grace_period"])
    assert grace > HARD_TIME_LIMIT_SECONDS
    assert grace == 330


def test_two_beats_share_one_locked_schedule(services: dict[str, dict[str, Any]]) -> None:
    beat = services["beat"]
    assert int((beat.get("deploy") or {}).get("replicas", 1)) == 2
    assert _flag(_command(beat), "--schedule") is None, "the schedule lives in Redis, not in a file per beat"
    app = create_app(Settings())
    assert app.conf.beat_scheduler == "workers.beat:Scheduler"
    assert app.conf.redbeat_lock_timeout == Settings().beat_lock_timeout
    runs_beat = [
        name
        for name, service in services.items()
        if name != "beat"
        and (_command(service)[3:4] == ["beat"] or "-B" in _command(service) or "--beat" in _command(service))
    ]
    assert runs_beat == [], "only the beat service may run the scheduler"


def test_the_procfile_runs_worker_beat_and_api_with_json_logs(procfile: dict[str, str]) -> None:
    for process in ("worker", "beat", "api"):
        assert shlex.split(procfile[process])[:2] == ["RECON_LOG_FORMAT=${RECON_LOG_FORMAT:-json}", "exec"]


def test_flower_requires_a_login_from_the_environment_and_bounds_its_memory(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    flower = services["flower"]
    args = _command(flower)
    basic_auth = _flag(args, "--basic-auth")
    assert basic_auth is not None
    assert re.fullmatch(r"\$\{FLOWER_BASIC_AUTH:\?[^}]+\}", basic_auth), (
        f"--basic-auth must be ${{FLOWER_BASIC_AUTH:?...}} (required, no default), got {basic_auth!r}"
    )
    assert _flag(args, "--persistent") == "True"
    assert _flag(args, "--max_tasks") == "10000"
    assert _flag(args, "--port") == "5555"
    db = _flag(args, "--db")
    assert db is not None
    mounts = _mount_targets(flower)
    db_dir = str(Path(db).parent)
    assert db_dir in mounts and mounts[db_dir]["source"] in set(compose.get("volumes") or {}), (
        "Flower's persistent db must live on a named volume"
    )
    published = [str(port) for port in flower.get("ports", [])]
    assert published and all(port.startswith("127.0.0.1:") and port.endswith(":5555") for port in published), (
        "Flower's /metrics and /healthcheck are open even with basic auth: publish on loopback only"
    )


def test_no_password_is_written_in_the_compose_file(services: dict[str, dict[str, Any]]) -> None:
    secret_names = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|BASIC_AUTH|API_KEY", re.IGNORECASE)
    url_password = re.compile(r"://[^:/@\s]+:(\$\{[^}]*\}|[^@\s]*)@")
    for name, service in services.items():
        for key, value in _environment(service).items():
            if secret_names.search(key):
                assert REQUIRED_VARIABLE.fullmatch(value), f"{name}: {key} must be ${{VAR:?...}}, no default"
            for password in url_password.findall(value):
                assert REQUIRED_VARIABLE.fullmatch(password), f"{name}: {key} has a password written in it"
        for arg in _command(service):
            for password in url_password.findall(arg):
                assert REQUIRED_VARIABLE.fullmatch(password), f"{name}: a command has a password written in it"
            if arg.startswith("--basic-auth"):
                assert REQUIRED_VARIABLE.fullmatch(arg.split("=", 1)[1]), f"{name}: Flower's login written in"


def test_every_process_that_needs_the_database_gets_its_url(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        env = _environment(services[name])
        assert env.get("RECON_DATABASE_URL", "").startswith("postgresql://"), name
        assert "@postgres:5432/" in env["RECON_DATABASE_URL"], name
        assert env.get("RECON_LOG_FORMAT") == "json", name
    for name in CELERY_SERVICES:
        env = _environment(services[name])
        assert env.get("RECON_REDIS_URL", "").startswith("redis://redis:6379/"), name


@pytest.mark.parametrize("name", ["worker", "beat"])
def test_fleet_file_is_mounted_read_only_where_it_is_read(services: dict[str, dict[str, Any]], name: str) -> None:
    service = services[name]
    fleet = _environment(service)["RECON_FLEET"]
    mount = _mount_targets(service).get(fleet)
    assert mount is not None, f"{name}: RECON_FLEET={fleet} is not mounted"
    assert mount["source"] in {"./fleet.toml", "fleet.toml"}
    assert mount["read_only"], f"{name}: mount the fleet file read-only"


def check_against_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """``check-jsonschema`` run on ``path`` with its vendored Compose Specification schema."""
    return subprocess.run([str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_the_compose_file_is_valid_under_the_compose_specification_schema() -> None:
    done = check_against_compose_schema(ROOT / "docker-compose.yml")

    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_refuses_a_compose_file_the_specification_does_not_allow(tmp_path: Path) -> None:
    broken = (ROOT / "docker-compose.yml").read_text().replace("stop_grace_period: 330s", "stop_grace_period: [330]")
    assert broken != (ROOT / "docker-compose.yml").read_text()
    (tmp_path / "docker-compose.yml").write_text(broken)

    done = check_against_compose_schema(tmp_path / "docker-compose.yml")

    assert done.returncode == 1
    assert "stop_grace_period" in done.stdout


# ---------------------------------------------------------------- Procfile


def test_procfile_has_the_five_process_types(procfile: dict[str, str]) -> None:
    assert set(procfile) == {"release", "worker", "beat", "flower", "api"}
    assert procfile["release"] == "recon db upgrade"


@pytest.mark.parametrize("process", ["release", "worker", "beat", "flower", "api"])
def test_procfile_commands_run_executables_this_project_installs(procfile: dict[str, str], process: str) -> None:
    executable = _procfile_args(procfile[process])[0]
    assert executable in {"recon", "celery"}
    assert shutil.which(executable, path=str(VENV_BIN)), f"{executable} is not installed in {VENV_BIN}"


def test_procfile_celery_processes_use_the_workers_app(procfile: dict[str, str]) -> None:
    for process in CELERY_SERVICES:
        args = _procfile_args(procfile[process])
        assert args[:4] == ["celery", "-A", "workers", process], args
    flower = _procfile_args(procfile["flower"])
    assert re.fullmatch(r"\$\{FLOWER_BASIC_AUTH(:\?[^}]+)?\}", _flag(flower, "--basic-auth") or "")
    assert _flag(flower, "--db") == "./flower.db"


@pytest.mark.parametrize("process", CELERY_SERVICES)
def test_procfile_and_compose_run_the_same_commands(
    procfile: dict[str, str], services: dict[str, dict[str, Any]], process: str
) -> None:
    def comparable(args: list[str]) -> list[str]:
        # Where Flower keeps its db and how the shell or Compose spells the required variable may differ.
        # Where Flower listens differs too: loopback on a host, every interface inside its container.
        # On a host Flower's port is a setting (FLOWER_PORT); Compose publishes 5555.
        return [arg for arg in args if not arg.startswith(("--db=", "--basic-auth=", "--address=", "--port="))]

    assert comparable(_procfile_args(procfile[process])) == comparable(_command(services[process]))


def test_flower_keeps_its_files_private_and_listens_on_loopback_on_a_host(
    procfile: dict[str, str], services: dict[str, dict[str, Any]]
) -> None:
    assert shlex.split(procfile["flower"])[:4] == ["umask", "077", "&&", "exec"]
    assert _flag(_procfile_args(procfile["flower"]), "--address") == "127.0.0.1"
    entrypoint = services["flower"].get("entrypoint")
    assert entrypoint[:2] == ["sh", "-c"] and entrypoint[2].startswith("umask 077 && exec "), entrypoint


def test_the_api_listens_on_loopback_on_a_host_and_needs_tokens_in_compose(
    procfile: dict[str, str], services: dict[str, dict[str, Any]]
) -> None:
    assert _flag(_procfile_args(procfile["api"]), "--host") == "127.0.0.1"
    api = services["api"]
    assert _command(api)[:2] == ["recon", "serve"]
    assert _flag(_command(api), "--host") == "0.0.0.0"  # in its container; refused without tokens (api.serve)
    assert re.fullmatch(r"\$\{RECON_API_TOKENS:\?[^}]+\}", api["environment"]["RECON_API_TOKENS"])
    assert api["ports"] == ["127.0.0.1:8000:8000"]


# ---------------------------------------------------------------- Dockerfile and .dockerignore


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)  # join continuation lines
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_builds_an_editable_install_run_by_a_non_root_user() -> None:
    instructions = _dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert ("WORKDIR", "/app") in instructions
    copies = [rest.split() for keyword, rest in instructions if keyword == "COPY"]
    assert any(args[0] == "." and args[-1] in {"/app", "/app/", ".", "./"} for args in copies), (
        "the whole checkout (alembic/ and alembic.ini beside the packages) is copied to /app"
    )
    assert any(k == "RUN" and "pip install --no-cache-dir -e ." in rest for k, rest in instructions)
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in {"root", "0", "0:0"}, "the service runs as a non-root user"
    last_run = max(i for i, keyword in enumerate(keywords) if keyword == "RUN")
    assert keywords.index("USER") > last_run, "USER comes after the installs"
    assert instructions[-1] == ("CMD", '["recon", "--help"]')


def test_dockerfile_bakes_in_no_secret() -> None:
    secret = re.compile(r"PASSWORD|SECRET|TOKEN|BASIC_AUTH|API_KEY|DATABASE_URL|WEBHOOK", re.IGNORECASE)
    for keyword, rest in _dockerfile_instructions():
        if keyword in {"ENV", "ARG", "LABEL"}:
            assert not secret.search(rest), f"{keyword} {rest}"
        if keyword in {"COPY", "ADD"}:
            assert not re.search(r"(^|\s)\.env\b|recon\.env|fleet\.toml", rest), f"{keyword} {rest}"


def _docker_pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: anchored at the context root, ``**`` spans directories."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            close = pattern.index("]", i)
            out, i = out + pattern[i : close + 1], close + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (a matched directory takes its contents)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        regex = _docker_pattern(raw.removeprefix("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_secrets_and_local_state_out_and_the_source_in() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    for path in (
        ".env",
        "recon.env",
        ".git/HEAD",
        ".venv/bin/python",
        "recon.db",
        "flower.db",
        "fleet.toml",
        "fleet_recon.egg-info/PKG-INFO",
        "workers/__pycache__/cli.cpython-311.pyc",
    ):
        assert _ignored(path, patterns), f"{path} must stay out of the image"
    for path in (
        "pyproject.toml",
        "README.md",
        "alembic.ini",
        "alembic/env.py",
        "cli/app.py",
        "cli/examples/fleet.toml",
        "tasks/__init__.py",
        "models/__init__.py",
    ):
        assert not _ignored(path, patterns), f"{path} is needed in the image"
