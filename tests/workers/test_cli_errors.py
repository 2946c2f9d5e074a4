"""Bad input to the installed ``recon`` command: one line on stderr, the documented exit code, never a traceback.

Every case runs ``recon`` as a subprocess in its own copy of the example workspace (fleet file, venue states,
an empty migrated SQLite ``recon.db``), four at a time. Exit codes: 2 usage or configuration error, 3 the run
failed or a dependency was unavailable (nothing changed), 5 internal error (checked in-process at the end).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cli.app import main
from tests.conftest import RABBITMQ_URL, REDIS_URL

RECON = Path(sys.executable).parent / "recon"
EXAMPLES = Path(__file__).resolve().parents[2] / "cli" / "examples"
UNREACHABLE_POSTGRES = "postgresql://postgres:s3cret@127.0.0.1:1/x"
UNREACHABLE_REDIS = "redis://:s3cret@127.0.0.1:1/0"
UNREACHABLE_BROKER = "amqp://guest:s3cret@127.0.0.1:1//"
WRONG_PASSWORD_BROKER = re.sub(r"(://[^:/@]*)(:[^@]*)?@", r"\1:s3cret@", RABBITMQ_URL, count=1)
POSTGRES = "{postgres}"  # replaced by the test Postgres schema's URL
LONG_LINE = 600  # an error line never echoes a huge input whole
USAGE, FAILED, INTERNAL = 2, 3, 5


@dataclass(frozen=True)
class Case:
    """One bad input: the arguments, the exit code and a fragment of the error line it must produce."""

    name: str
    args: tuple[str, ...]
    code: int
    says: str
    setup: Callable[[Path], None] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    then: Callable[[Path], None] | None = None


@dataclass(frozen=True)
class Outcome:
    """How one run of ``recon`` ended."""

    code: int
    out: str
    err: str
    workdir: Path


# --- workspace edits and checks -------------------------------------------------------------------------------


def write(relative: str, content: bytes) -> Callable[[Path], None]:
    """A setup writing ``content`` to ``relative`` in the workspace."""

    def setup(workdir: Path) -> None:
        (workdir / relative).write_bytes(content)

    return setup


def sim_position_qty(qty: str) -> Callable[[Path], None]:
    """A setup making lxalgo/paper's venue hold ``qty`` of its first position."""

    def setup(workdir: Path) -> None:
        state_file = workdir / "venues" / "lxalgo_paper.json"
        state = json.loads(state_file.read_text())
        state["positions"][0]["qty"] = qty
        state_file.write_text(json.dumps(state))

    return setup


def make_directory(relative: str) -> Callable[[Path], None]:
    def setup(workdir: Path) -> None:
        (workdir / relative).mkdir()

    return setup


def books_untouched(workdir: Path) -> None:
    """No fill, lot or order reached the workspace's database."""
    with sqlite3.connect(workdir / "recon.db") as connection:
        counts = [connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in ("fills", "lots")]
    assert counts == [0, 0]


def nobody_written(workdir: Path) -> None:
    """Not even a bot or account row was written."""
    books_untouched(workdir)
    with sqlite3.connect(workdir / "recon.db") as connection:
        assert connection.execute("SELECT count(*) FROM bots").fetchone()[0] == 0


def still_garbage(workdir: Path) -> None:
    assert (workdir / "recon.db").read_bytes() == b"this is not a database\n" * 100


def recorded_fill(workdir: Path, qty: str) -> None:
    """A setup recording fill f1 of ``qty`` BTCUSDT for lxalgo/paper, as the bot did before."""
    from workers.books import BooksClient  # noqa: PLC0415
    from workers.fleet import load_fleet  # noqa: PLC0415

    books = BooksClient(f"sqlite:///{workdir / 'recon.db'}", fleet=load_fleet(workdir / "fleet.toml"))
    books.record_fill("lxalgo", "paper", symbol="BTCUSDT", side="buy", qty=qty, price="100", fill_id="f1")
    books.database.dispose()


def fill(*extra: str, bot: str = "lxalgo", qty: str = "1", price: str = "100", fill_id: str = "f1") -> tuple[str, ...]:
    """``recon ledger fill`` arguments with these values and ``extra``."""
    return ("ledger", "fill", bot, "paper", "--symbol", "BTCUSDT", "--side", "buy", "--qty", qty, "--price", price,
            "--fill-id", fill_id, *extra)  # fmt: skip


# --- the battery ----------------------------------------------------------------------------------------------

EVIL = "evil'); DROP TABLE runs;--"
CASES = [
    # names
    Case("unknown-account", ("reconcile", "nobody", "live"), USAGE, "no account nobody/live"),
    Case("sql-in-bot-name", ("reconcile", EVIL, "paper"), USAGE, "invalid bot name", then=nobody_written),
    Case("sql-in-bot-name-fill", fill(bot=EVIL), USAGE, "invalid bot name", then=nobody_written),
    Case("100k-bot-name", ("reconcile", "a" * 100_000, "paper"), USAGE, "(100002 characters)"),
    Case("empty-account-name", ("ledger", "show", "lxalgo", ""), USAGE, "invalid account name ''"),
    Case("empty-bot-filter", ("runs", ""), USAGE, "invalid bot name ''"),
    Case("uppercase-halt", ("halt", "LXAlgo", "paper", "--reason", "x"), USAGE, "invalid bot name 'LXAlgo'"),
    # database URLs and files
    Case("db-url-garbage", ("--db", "garbage", "runs"), USAGE, "not a database URL"),
    Case("db-url-scheme", ("--db", "mysql://x/y", "runs"), USAGE, "unsupported database 'mysql'"),
    Case("db-url-bad-port", ("--db", "postgresql://u:s3cret@host:notaport/db", "runs"), USAGE, "not a database URL"),
    Case("db-unreachable", ("--db", UNREACHABLE_POSTGRES, "runs"), FAILED, "database unavailable at"),
    Case("db-upgrade-unreachable", ("--db", UNREACHABLE_POSTGRES, "db", "upgrade"), FAILED, "port 1 failed"),
    Case(
        "db-file-garbage",
        ("runs",),
        FAILED,
        "database unusable at sqlite:///recon.db: file is not a database",
        setup=write("recon.db", b"this is not a database\n" * 100),
        then=still_garbage,
    ),
    # fleet files
    Case("fleet-missing", ("--config", "missing.toml", "reconcile", "lxalgo", "paper"), USAGE, "missing.toml"),
    Case(
        "fleet-not-toml",
        ("reconcile", "lxalgo", "paper"),
        USAGE,
        "not valid TOML",
        setup=write("fleet.toml", b"[bots.lxalgo\nvenue = 'sim'\n"),
    ),
    Case(
        "fleet-not-utf8",
        ("reconcile", "lxalgo", "paper"),
        USAGE,
        "not UTF-8",
        setup=write("fleet.toml", b"\xff\xfe[bots]\n"),
    ),
    Case("fleet-directory", ("--config", "conf", "schedule"), USAGE, "conf", setup=make_directory("conf")),
    Case(
        "fleet-unknown-key",
        ("schedule",),
        USAGE,
        "unknown key 'bogus'",
        setup=write("fleet.toml", b'[bots.x.accounts.y]\nvenue = "sim"\nstate_file = "s.json"\nbogus = 1\n'),
    ),
    # run ids and listing
    Case("report-not-a-number", ("report", "abc"), USAGE, "Invalid value for 'run_id'"),
    Case("report-negative", ("report", "--", "-1"), USAGE, "greater than or equal to 1"),
    Case("report-2-to-63", ("report", str(2**63)), USAGE, "less than or equal to 2147483647"),
    Case("report-unknown", ("report", "999"), USAGE, "no run with id 999"),
    Case("report-2-to-31-on-postgres", ("--db", POSTGRES, "report", str(2**31)), USAGE, "less than or equal to"),
    Case("runs-limit-0", ("runs", "--limit", "0"), USAGE, "greater than or equal to 1"),
    Case("runs-limit-huge", ("runs", "--limit", "9" * 30), USAGE, "less than or equal to 10000"),
    # ledger input
    Case("qty-abc", fill(qty="abc"), USAGE, "qty: 'abc' is not a decimal number", then=nobody_written),
    Case("qty-1e25", fill(qty="1e25"), USAGE, "qty: '1e25' is out of range", then=nobody_written),
    Case("qty-1e25-on-postgres", ("--db", POSTGRES, *fill(qty="1e25")), USAGE, "qty: '1e25' is out of range"),
    Case("qty-negative", fill(qty="-1"), USAGE, "qty: must be positive, got -1"),
    Case("qty-nan", fill(qty="NaN"), USAGE, "qty: 'NaN' is not a finite number"),
    Case("qty-zero", fill(qty="0"), USAGE, "qty: must be positive, got 0"),
    Case("qty-19-places", fill(qty="0.0000000000000000001"), USAGE, "more than 18 decimal places"),
    Case("price-1e999999", fill(price="1e999999"), USAGE, "price: '1e999999' is out of range"),
    Case("time-not-iso", fill("--time", "yesterday"), USAGE, "time: 'yesterday' is not an ISO 8601 time"),
    Case("time-naive", fill("--time", "2026-11-14T03:10:00"), USAGE, "time: must carry a time zone"),
    Case("time-year-1", fill("--time", "0001-01-01T00:00:00+00:00"), USAGE, "is outside 1970-01-01 to 2100-01-01"),
    Case("time-year-9999", fill("--time", "9999-12-31T23:59:59+14:00"), USAGE, "is outside 1970-01-01"),
    Case("symbol-65", fill("--symbol", "S" * 65), USAGE, "symbol: ", then=nobody_written),
    Case("symbol-65-on-postgres", ("--db", POSTGRES, *fill("--symbol", "S" * 65)), USAGE, "longer than 64"),
    Case("fill-id-200", fill(fill_id="i" * 200), USAGE, "fill_id: ", then=nobody_written),
    Case("side-hold", fill("--side", "hold"), USAGE, "side: 'hold' is not one of buy, sell"),
    Case("kind-bogus", fill("--kind", "bogus"), USAGE, "kind: 'bogus' is not one of"),
    Case("leg-huge", fill("--leg", str(2**40)), USAGE, "leg: must be a whole number from 0 to 2147483647"),
    Case("group-long", fill("--group", "g" * 100), USAGE, "group: "),
    # books that refuse nonsense
    Case("fill-from-2099", fill("--time", "2099-01-01T00:00:00Z"), USAGE, "s in the future", then=nobody_written),
    Case("fill-bot-not-in-fleet", fill(bot="newbot"), USAGE, "no account newbot/paper (known: ", then=nobody_written),
    Case(
        "fill-category-misspelt",
        fill("--category", "lineer"),
        USAGE,
        "category: 'lineer' is not one lxalgo/paper's venue (sim) knows: linear",
        then=nobody_written,
    ),
    Case(
        "fill-category-required",
        ("ledger", "fill", "shortseller", "live", *fill()[4:]),
        USAGE,
        "category: required for shortseller/live on sim (one of us_equity, us_option)",
        then=nobody_written,
    ),
    Case(
        "fill-id-conflict",
        fill(qty="2"),
        USAGE,
        "fill_id 'f1' is already recorded for lxalgo/paper with other contents: qty 2 (recorded 1)",
        setup=lambda workdir: recorded_fill(workdir, qty="1"),
    ),
    Case(
        "cash-currency-not-a-code",
        ("ledger", "cash", "lxalgo", "paper", "--balance", "1", "--currency", "U$D"),
        USAGE,
        "currency: 'U$D' is not a currency code",
        then=nobody_written,
    ),
    Case(
        "cash-currency-40",
        ("ledger", "cash", "lxalgo", "paper", "--balance", "1", "--currency", "C" * 40),
        USAGE,
        "currency: ",
        then=nobody_written,
    ),
    Case("cash-balance-nan", ("ledger", "cash", "lxalgo", "paper", "--balance", "NaN"), USAGE, "balance: 'NaN'"),
    Case(
        "order-status-bogus",
        (
            "ledger",
            "order",
            "lxalgo",
            "paper",
            "--client-order-id",
            "c1",
            "--symbol",
            "X",
            "--side",
            "buy",
            "--qty",
            "1",
            "--status",
            "bogus",
        ),
        USAGE,
        "status: 'bogus' is not one of",
    ),
    # halting and runs
    Case("halt-without-reason", ("halt", "lxalgo", "paper"), USAGE, "Missing option '--reason'"),
    Case("halt-empty-reason", ("halt", "lxalgo", "paper", "--reason", " "), USAGE, "--reason: '' is empty"),
    Case(
        "reconcile-reason-bogus", ("reconcile", "lxalgo", "paper", "--reason", "r" * 300), USAGE, "unknown reason 'rrrr"
    ),
    Case(
        "sim-quantity-1e25",
        ("reconcile", "lxalgo", "paper"),
        FAILED,
        "run 1 failed: fetch failed:",
        setup=sim_position_qty("1e25"),
        then=books_untouched,
    ),
    Case(
        "sim-quantity-1e25-on-postgres",
        ("--db", POSTGRES, "reconcile", "lxalgo", "paper"),
        FAILED,
        "failed: fetch failed:",
        setup=sim_position_qty("1e25"),
    ),
    Case(
        "sim-not-json",
        ("reconcile", "lxalgo", "paper", "--json"),
        FAILED,
        "not JSON",
        setup=write("venues/lxalgo_paper.json", b'{"positions": ['),
        then=books_untouched,
    ),
    Case(
        "venue-check-not-json",
        ("venue", "check", "lxalgo", "paper"),
        FAILED,
        "cannot read the account",
        setup=write("venues/lxalgo_paper.json", b"\x00\x01"),
    ),
    # Redis and settings
    Case(
        "trigger-redis-unreachable",
        ("trigger", "lxalgo", "paper"),
        FAILED,
        "Redis unavailable at redis://",
        env={"RECON_REDIS_URL": UNREACHABLE_REDIS},
    ),
    Case(
        "queue-redis-unreachable",
        ("reconcile", "lxalgo", "paper", "--queue"),
        FAILED,
        "Redis unavailable",
        env={"RECON_REDIS_URL": UNREACHABLE_REDIS},
    ),
    Case(
        "reconcile-redis-unreachable",
        ("reconcile", "lxalgo", "paper"),
        FAILED,
        "Redis unavailable",
        env={"RECON_REDIS_URL": UNREACHABLE_REDIS},
        then=books_untouched,
    ),
    Case(
        "trigger-broker-unreachable",
        ("trigger", "lxalgo", "paper"),
        FAILED,
        "the message broker is unavailable at amqp://guest:***@127.0.0.1:1//: [Errno 111] Connection refused",
        env={"RECON_REDIS_URL": REDIS_URL, "RECON_BROKER_URL": UNREACHABLE_BROKER},
    ),
    Case(
        "queue-broker-refuses-the-login",
        ("reconcile", "lxalgo", "paper", "--queue"),
        FAILED,
        "ACCESS_REFUSED",
        env={"RECON_REDIS_URL": REDIS_URL, "RECON_BROKER_URL": WRONG_PASSWORD_BROKER},
    ),
    Case(
        "workers-broker-unreachable",
        ("workers",),
        FAILED,
        "the message broker is unavailable at amqp://",
        env={"RECON_REDIS_URL": REDIS_URL, "RECON_BROKER_URL": UNREACHABLE_BROKER},
    ),
    Case(
        "broker-url-garbage",
        ("trigger", "lxalgo", "paper"),
        USAGE,
        "invalid setting RECON_BROKER_URL: not a message broker URL (scheme 'http'): use redis://, rediss://, amqp://",
        env={"RECON_BROKER_URL": "http://user:s3cret@example.com/"},
    ),
    Case(
        "redis-url-garbage",
        ("trigger", "lxalgo", "paper"),
        USAGE,
        "RECON_REDIS_URL: not a Redis URL",
        env={"RECON_REDIS_URL": "garbage"},
    ),
    Case("setting-not-a-number", ("runs",), USAGE, "invalid setting RECON_LOCK_TTL", env={"RECON_LOCK_TTL": "abc"}),
    # the command line itself
    Case("no-command", (), USAGE, "missing command"),
    Case("unknown-command", ("reconcil", "lxalgo", "paper"), USAGE, "No such command 'reconcil'"),
    Case("demo-into-a-file", ("demo", "--dir", "fleet.toml"), USAGE, "exists and is not a directory"),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Path:
    """The example workspace with an empty, migrated SQLite database, copied for every case."""
    workspace = tmp_path_factory.mktemp("workspace") / "template"
    shutil.copytree(EXAMPLES, workspace)
    shutil.copy(sqlite_template, workspace / "recon.db")
    return workspace


@pytest.fixture(scope="module")
def outcomes(
    template: Path, tmp_path_factory: pytest.TempPathFactory, postgres_session_url: str
) -> Iterator[dict[str, Outcome]]:
    """Every case run once, four at a time."""
    root = tmp_path_factory.mktemp("cases")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            case.name: pool.submit(run, case, template, root / case.name, postgres_session_url) for case in CASES
        }
        yield {name: future.result() for name, future in futures.items()}


def run(case: Case, template: Path, workdir: Path, postgres: str) -> Outcome:
    """``recon`` with the case's arguments in a fresh copy of the workspace."""
    shutil.copytree(template, workdir)
    if case.setup is not None:
        case.setup(workdir)
    env = {key: value for key, value in os.environ.items() if not key.startswith("RECON_")}
    env.pop("RECON_REDIS_URL", None)  # the embedded default: in-process runs take no lock and publish nothing
    env.update({"RECON_DATABASE_URL": "sqlite:///recon.db", **case.env})
    args = [postgres if arg == POSTGRES else arg for arg in case.args]
    finished = subprocess.run(
        [str(RECON), *args], capture_output=True, text=True, timeout=60, cwd=workdir, env=env, check=False
    )
    return Outcome(finished.returncode, finished.stdout, finished.stderr, workdir)


def test_the_battery_has_enough_cases_and_unique_names() -> None:
    assert len(CASES) >= 25
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_one_line_with_the_documented_exit_code(case: Case, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[case.name]

    assert "Traceback" not in outcome.out + outcome.err
    assert outcome.err.count("\n") == 1 and outcome.err.startswith("recon: error: "), outcome.err[:2000]
    assert case.says in outcome.err
    assert outcome.code == case.code, outcome.err
    assert len(outcome.err) < LONG_LINE
    assert "s3cret" not in outcome.out + outcome.err
    if case.then is not None:
        case.then(outcome.workdir)


# --- internal errors (in-process: a bug is simulated by patching) ---------------------------------------------


def boom(*_: object, **__: object) -> None:
    raise RuntimeError("the books exploded\n" + "second line " * 100)


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
    except SystemExit as done:
        captured = capsys.readouterr()
        return int(done.code or 0), captured.out, captured.err
    raise AssertionError("main always exits")


def test_an_unexpected_error_is_exit_5_with_one_line_naming_the_type(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    monkeypatch.delenv("RECON_DEBUG", raising=False)
    monkeypatch.setattr("models.history.list_runs", boom)

    code, _, err = run_main(capsys, "--db", sqlite_url, "runs")

    assert code == INTERNAL
    assert err == (
        "recon: error: internal error: RuntimeError: the books exploded (set RECON_DEBUG=1 for the traceback)\n"
    )


def test_recon_debug_adds_the_traceback_after_the_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    monkeypatch.setenv("RECON_DEBUG", "1")
    monkeypatch.setattr("models.history.list_runs", boom)

    code, _, err = run_main(capsys, "--db", sqlite_url, "runs")

    first, rest = err.split("\n", 1)
    assert code == INTERNAL and first.startswith("recon: error: internal error: RuntimeError: the books exploded")
    assert rest.startswith("Traceback (most recent call last):") and "RuntimeError" in rest


def test_an_internal_error_message_is_shortened(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    def huge(*_: object, **__: object) -> None:
        raise ValueError("x" * 100_000)

    monkeypatch.delenv("RECON_DEBUG", raising=False)
    monkeypatch.setattr("models.history.list_runs", huge)

    code, _, err = run_main(capsys, "--db", sqlite_url, "runs")

    assert code == INTERNAL and err.count("\n") == 1 and len(err) < 400
    assert "(100000 characters) (set RECON_DEBUG=1 for the traceback)" in err
