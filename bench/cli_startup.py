"""Benchmark: start-up of the ``recon`` command, side by side with ``python -c pass``.

    .venv/bin/python bench/cli_startup.py [--runs 10] [--recon PATH] [--json] [--strict] [--what-if]

Measures whole processes (spawn to reaped child): wall time, and peak memory as the child's max RSS, taken by
GNU ``/usr/bin/time -f %M`` when it is there (a forked child's max RSS also counts the pages of the process it
was forked from, so ``os.wait4`` alone, the fallback, cannot see anything smaller than this script). Three
commands, interleaved run by run so that machine load hits them alike:

* ``python -c pass`` with the interpreter the ``recon`` script runs on;
* ``recon --help``;
* ``recon fleet`` inside a demo workspace made once beforehand with ``recon demo --dir <tmp>/demo``.

Targets (the issue): ``recon --help`` within 0.3 s of ``python -c pass``, ``recon fleet`` at most 0.6 s, both
medians. Then, for the two ``recon`` commands, where the time goes: start-up, imports, the command, exit
handlers and interpreter finalization (timestamps taken inside the child on the same monotonic clock), and
which modules they import and what each costs (``-X importtime``). The entry module and function are read from
the console script, so the benchmark follows the entry point when it moves. ``--what-if`` adds, to the same
interleaved runs, processes that only import some dependencies, and variants of the two commands that need no
change to the project (Typer without Rich help, the garbage collector kept out of imports and exit).

Exit status: 0 (also when a target is missed); 1 with ``--strict`` when a target is missed or a measured
command failed; 2 when the commands cannot be run at all (no ``recon`` script, no demo workspace).
Progress goes to stderr, the report to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HELP_TARGET_DELTA = 0.3  # s over `python -c pass`
FLEET_TARGET = 0.6  # s, absolute
TOP_IMPORTS = 15
TOP_PACKAGES = 12
VENUE_SDKS = ("pybit", "alpaca")
WHAT_IF_IMPORTS = (
    "typer",
    "typer,rich.console,rich.table",
    "typer,typer.rich_utils",
    "pydantic.main",
    "pydantic_settings",
    "sqlalchemy",
    "sqlalchemy.orm",
    "alembic.command,alembic.config,alembic.script,alembic.runtime.migration",
    "models",
    "workers.fleet",
    "typer,rich.table,sqlalchemy.orm,pydantic_settings,models.history,workers.fleet",  # what `fleet` needs
    "typer,rich.table,sqlalchemy.orm,models.history,workers.fleet",  # the same without pydantic_settings
    "gc:typer,rich.table,sqlalchemy.orm,models.history,workers.fleet",
    "celery.app.base",
    "pybit.unified_trading",
    "alpaca.trading.client,alpaca.data.historical",
)
# A Typer app as big as recon's top level, with nothing else: the floor of `--help` with Typer and Rich.
TYPER_FLOOR = """\
import typer
app = typer.Typer(no_args_is_help=True, add_completion=False)
for i in range(16):
    app.command(f"command{i}", help=f"Command {i}: does one thing to an account, with a longer description.")(
        lambda name: None
    )
app()
"""
# The console script with the garbage collector kept out: `freeze` at exit (nothing left for the final
# collections), off during the imports and frozen after them, or off throughout and frozen at exit.
GC_AT_EXIT = "import atexit, gc\natexit.register(gc.freeze)\n"
GC_OFF = "import atexit, gc\ngc.disable()\natexit.register(gc.freeze)\n"
GC_AROUND_IMPORTS = (
    'import gc, sys\ngc.disable()\nfrom {module} import {name}\ngc.freeze()\ngc.enable()\nsys.argv[0] = "recon"\n'
    "sys.exit({call}())\n"
)
PHASES_FILE_VAR = "CLI_STARTUP_PHASES_FILE"
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)\s*$")
FROM_IMPORT = re.compile(r"^from\s+([\w.]+)\s+import\s+(\w+)", re.MULTILINE)
EXIT_CALL = re.compile(r"sys\.exit\(\s*([\w.]+)\(\)\s*\)")
LONG_SHEBANG = re.compile(r"""^'''exec' "?([^"\s]+)"?""", re.MULTILINE)

# Run inside the child with `python -c`: the console script's work, with timestamps on the monotonic clock
# (time.perf_counter is CLOCK_MONOTONIC on Linux, shared by all processes), written by the first exit handler
# registered, hence the last to run.
PHASES_WRAPPER = """\
import atexit, os, sys, time
_t = {{"started": time.perf_counter()}}
def _write():
    _t["exit_handlers_done"] = time.perf_counter()
    import json
    with open(os.environ[{var!r}], "w") as out:
        json.dump(_t, out)
atexit.register(_write)
from {module} import {name}
_t["imported"] = time.perf_counter()
sys.argv[0] = "recon"
try:
    _code = {call}()
finally:
    _t["returned"] = time.perf_counter()
sys.exit(_code)
"""

SCRIPT_WRAPPER = 'import sys\nfrom {module} import {name}\nsys.argv[0] = "recon"\nsys.exit({call}())\n'


@dataclass(frozen=True)
class EntryPoint:
    """What the ``recon`` console script runs: ``from <module> import <name>``, then ``sys.exit(<call>())``."""

    script: Path
    interpreter: Path
    module: str
    name: str
    call: str


@dataclass(frozen=True)
class Command:
    label: str
    argv: tuple[str, ...]
    cwd: Path
    env: tuple[tuple[str, str], ...] = ()  # set on top of the benchmark's child environment


@dataclass(frozen=True)
class Sample:
    wall: float
    max_rss_kib: int
    exit_code: int


@dataclass
class Summary:
    label: str
    argv: list[str]
    runs: int
    median: float
    best: float
    worst: float
    median_rss_mib: float
    failed_runs: int
    delta_vs_python: float = 0.0
    rss_delta_vs_python_mib: float = 0.0
    samples: list[Sample] = field(default_factory=list)


@dataclass(frozen=True)
class Verdict:
    label: str
    measured: float
    limit: float
    text: str

    @property
    def met(self) -> bool:
        return self.measured <= self.limit


@dataclass(frozen=True)
class ImportRecord:
    module: str
    self_us: int
    cumulative_us: int
    depth: int


@dataclass
class ImportReport:
    label: str
    modules: int
    total_ms: float
    top_cumulative: list[ImportRecord]
    by_package: list[tuple[str, int, float]]  # package, modules, self ms
    venue_sdks: list[str]
    entry_module: str
    entry_imports: list[ImportRecord]  # what each import the entry module makes itself costs, given the earlier ones
    late_imports: list[ImportRecord]  # imported while the command ran, after the entry module


# --- finding the command --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="measured runs of each command (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first (default 1)")
    parser.add_argument("--recon", type=Path, default=None, help="the recon script (default: next to python)")
    parser.add_argument("--workspace", type=Path, default=None, help="an existing demo workspace to use")
    parser.add_argument("--what-if", action="store_true", help="also time the big imports and variants")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="[gc:]MOD[,MOD]",
        help="also time `python -c 'import MOD, ...'` (repeatable; gc: with the collector off, then frozen)",
    )
    parser.add_argument(
        "--rss", choices=("auto", "time", "wait4"), default="auto", help="max RSS from GNU time or os.wait4"
    )
    parser.add_argument("--phase-runs", type=int, default=3, help="runs of the phase breakdown (default 3)")
    parser.add_argument(
        "--import-runs", type=int, default=3, help="-X importtime runs; the least disturbed is shown (default 3)"
    )
    parser.add_argument("--no-imports", action="store_true", help="skip the -X importtime analysis")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.import_runs < 1 or args.warmup < 0 or args.phase_runs < 0:
        parser.error("--runs and --import-runs must be >= 1, --warmup and --phase-runs >= 0")
    return args


def default_recon() -> Path:
    return Path(sys.executable).parent / "recon"


def interpreter_of(script: Path, text: str) -> Path:
    """The interpreter named by the script's shebang (also pip's ``/bin/sh`` form for long paths)."""
    first = text.splitlines()[0] if text else ""
    if first.startswith("#!"):
        named = first[2:].strip().split()[0] if first[2:].strip() else ""
        if "python" in Path(named).name and Path(named).exists():
            return Path(named)
        long_form = LONG_SHEBANG.search(text)
        if long_form and Path(long_form.group(1)).exists():
            return Path(long_form.group(1))
    return Path(sys.executable)


def entry_point_from_metadata(interpreter: Path, script_name: str) -> tuple[str, str] | None:
    """``(module, attribute)`` of the console script ``script_name``, asked of the target interpreter."""
    code = (
        "import importlib.metadata as m\n"
        f"for e in m.entry_points(group='console_scripts', name={script_name!r}):\n"
        "    print(e.value)\n"
    )
    done = subprocess.run([str(interpreter), "-c", code], capture_output=True, text=True, check=False)
    value = done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""
    if ":" not in value:
        return None
    module, attribute = value.split(":", 1)
    return module.strip(), attribute.strip()


def read_entry_point(script: Path) -> EntryPoint:
    """Module and function of the console script, read from its text, else from the package metadata."""
    text = script.read_text(errors="replace")
    interpreter = interpreter_of(script, text)
    called = EXIT_CALL.search(text)
    imports = {name: module for module, name in FROM_IMPORT.findall(text)}
    if called and called.group(1).split(".")[0] in imports:
        name = called.group(1).split(".")[0]
        return EntryPoint(script, interpreter, imports[name], name, called.group(1))
    found = entry_point_from_metadata(interpreter, script.name)
    if found is None:
        raise SystemExit(f"cannot tell what {script} runs: no `from X import Y` and no console_scripts entry")
    module, attribute = found
    return EntryPoint(script, interpreter, module, attribute.split(".")[0], attribute)


def child_env() -> dict[str, str]:
    """The environment without RECON_* (so `recon fleet` reads the demo's database) and import profiling."""
    drop = ("PYTHONPROFILEIMPORTTIME", "PYTHONSTARTUP", PHASES_FILE_VAR)
    return {k: v for k, v in os.environ.items() if not k.startswith("RECON_") and k not in drop}


def make_demo(entry: EntryPoint, parent: Path, env: dict[str, str]) -> Path:
    """A fresh demo workspace under ``parent``, written by ``recon demo --dir``."""
    workspace = parent / "demo"
    done = subprocess.run(
        [str(entry.script), "demo", "--dir", str(workspace)],
        cwd=parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if not (workspace / "fleet.toml").exists() or not (workspace / "recon.db").exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise SystemExit(f"`recon demo` failed (exit {done.returncode}): " + " / ".join(tail))
    return workspace


# --- measuring ------------------------------------------------------------------------------------------------


def gnu_time(choice: str) -> Path | None:
    """``/usr/bin/time`` when it is GNU time and ``choice`` allows it (``auto`` or ``time``)."""
    binary = Path("/usr/bin/time")
    if choice == "wait4" or not binary.exists():
        return None
    with tempfile.NamedTemporaryFile(mode="r") as out:
        done = subprocess.run([str(binary), "-f", "%M", "-o", out.name, "true"], capture_output=True, check=False)
        if done.returncode == 0 and out.read().strip().isdigit():
            return binary
    return None


def last_int(text: str) -> int:
    """The last word of GNU time's output (``%M``; a note about the exit status may come before it), else 0."""
    words = text.split()
    return int(words[-1]) if words and words[-1].isdigit() else 0


def run_once(command: Command, env: dict[str, str], timer: Path | None) -> Sample:
    """Wall time from spawn to reaped; max RSS (KiB) from GNU time, else from ``os.wait4`` of the child."""
    with tempfile.NamedTemporaryFile() as errors, tempfile.NamedTemporaryFile(mode="r") as rss:
        argv = [str(timer), "-f", "%M", "-o", rss.name, *command.argv] if timer else list(command.argv)
        started = time.perf_counter()
        child = subprocess.Popen(
            argv, cwd=command.cwd, env={**env, **dict(command.env)}, stdout=subprocess.DEVNULL, stderr=errors
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        max_rss = last_int(rss.read()) if timer else usage.ru_maxrss
        if child.returncode != 0:
            errors.seek(0)
            last = errors.read().decode(errors="replace").strip().splitlines()[-1:]
            progress(f"  {command.label} exited {child.returncode}: {' '.join(last)}")
    return Sample(wall, max_rss, child.returncode)


def measure_interleaved(
    commands: list[Command], runs: int, warmup: int, env: dict[str, str], timer: Path | None
) -> dict[str, list[Sample]]:
    """``runs`` rounds of every command, the order rotated each round; ``warmup`` rounds first, not kept."""
    samples: dict[str, list[Sample]] = {c.label: [] for c in commands}
    for round_ in range(warmup + runs):
        shift = round_ % len(commands)
        for command in commands[shift:] + commands[:shift]:
            sample = run_once(command, env, timer)
            if round_ >= warmup:
                samples[command.label].append(sample)
        if round_ >= warmup:
            progress(f"  round {round_ - warmup + 1}/{runs}")
    return samples


def summarize(command: Command, samples: list[Sample]) -> Summary:
    walls = [s.wall for s in samples]
    return Summary(
        label=command.label,
        argv=list(command.argv),
        runs=len(samples),
        median=statistics.median(walls),
        best=min(walls),
        worst=max(walls),
        median_rss_mib=statistics.median(s.max_rss_kib for s in samples) / 1024,
        failed_runs=sum(1 for s in samples if s.exit_code != 0),
        samples=samples,
    )


def add_deltas(summaries: list[Summary], baseline: Summary) -> None:
    for summary in summaries:
        summary.delta_vs_python = summary.median - baseline.median
        summary.rss_delta_vs_python_mib = summary.median_rss_mib - baseline.median_rss_mib


def verdicts(help_: Summary, fleet: Summary) -> list[Verdict]:
    """The issue's two targets; a command that failed in any run misses its target."""
    help_measured = help_.delta_vs_python if help_.failed_runs == 0 else float("inf")
    fleet_measured = fleet.median if fleet.failed_runs == 0 else float("inf")
    return [
        Verdict(help_.label, help_measured, HELP_TARGET_DELTA, f"median - python -c pass <= +{HELP_TARGET_DELTA} s"),
        Verdict(fleet.label, fleet_measured, FLEET_TARGET, f"median <= {FLEET_TARGET} s"),
    ]


# --- where the time goes --------------------------------------------------------------------------------------


def phases_once(entry: EntryPoint, args: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float] | None:
    """One run of the console script's work with timestamps: start-up, imports, command, exit, finalization."""
    code = PHASES_WRAPPER.format(var=PHASES_FILE_VAR, module=entry.module, name=entry.name, call=entry.call)
    with tempfile.NamedTemporaryFile(suffix=".phases", delete=False) as handle:
        stamps_file = Path(handle.name)
    try:
        started = time.perf_counter()
        subprocess.run(
            [str(entry.interpreter), "-c", code, *args],
            cwd=cwd,
            env={**env, PHASES_FILE_VAR: str(stamps_file)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        ended = time.perf_counter()
        text = stamps_file.read_text()
    finally:
        stamps_file.unlink(missing_ok=True)
    stamps: dict[str, float] = json.loads(text) if text else {}
    if not {"started", "imported", "returned", "exit_handlers_done"} <= stamps.keys():
        return None  # the import or the command raised before its stamp
    return {
        "interpreter start-up": stamps["started"] - started,
        f"import {entry.module}": stamps["imported"] - stamps["started"],
        "the command": stamps["returned"] - stamps["imported"],
        "exit handlers": stamps["exit_handlers_done"] - stamps["returned"],
        "finalization, exit": ended - stamps["exit_handlers_done"],
        "whole process": ended - started,
    }


def phase_medians(entry: EntryPoint, args: list[str], cwd: Path, env: dict[str, str], runs: int) -> dict[str, float]:
    found = [p for p in (phases_once(entry, args, cwd, env) for _ in range(runs)) if p is not None]
    if not found:
        return {}
    return {name: statistics.median(p[name] for p in found) for name in found[0]}


def import_records_once(entry: EntryPoint, args: list[str], cwd: Path, env: dict[str, str]) -> list[ImportRecord]:
    """Every import the command makes, in ``-X importtime`` order (children before their parent)."""
    code = SCRIPT_WRAPPER.format(module=entry.module, name=entry.name, call=entry.call)
    done = subprocess.run(
        [str(entry.interpreter), "-X", "importtime", "-c", code, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    records = []
    for line in done.stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            self_us, cumulative_us, indent, module = match.groups()
            records.append(ImportRecord(module, int(self_us), int(cumulative_us), len(indent) // 2))
    return records


def import_records(entry: EntryPoint, args: list[str], cwd: Path, env: dict[str, str], runs: int) -> list[ImportRecord]:
    """The least disturbed of ``runs`` importtime runs: the one with the smallest total."""
    found = [import_records_once(entry, args, cwd, env) for _ in range(runs)]
    return min(found, key=lambda records: sum(r.self_us for r in records))


def by_package(records: list[ImportRecord]) -> list[tuple[str, int, float]]:
    """Self time summed by top-level package, most expensive first."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for record in records:
        package = record.module.split(".")[0]
        totals[package][0] += 1
        totals[package][1] += record.self_us
    ranked = sorted(totals.items(), key=lambda item: -item[1][1])
    return [(package, count, self_us / 1000) for package, (count, self_us) in ranked]


def top_cumulative(records: list[ImportRecord], count: int) -> list[ImportRecord]:
    """The ``count`` largest cumulative times, each module once (a submodule can be listed above its package)."""
    seen: set[str] = set()
    top = []
    for record in sorted(records, key=lambda r: -r.cumulative_us):
        if record.module not in seen:
            seen.add(record.module)
            top.append(record)
    return top[:count]


def entry_index(records: list[ImportRecord], module: str) -> int | None:
    found = [i for i, r in enumerate(records) if r.module == module]
    return max(found, key=lambda i: records[i].cumulative_us) if found else None


def direct_imports(records: list[ImportRecord], index: int) -> list[ImportRecord]:
    """The imports made by the module at ``index`` itself (one level down), most expensive first."""
    depth = records[index].depth
    children = []
    for record in reversed(records[:index]):
        if record.depth <= depth:
            break
        if record.depth == depth + 1:
            children.append(record)
    return sorted(children, key=lambda r: -r.cumulative_us)


def import_report(label: str, entry_module: str, records: list[ImportRecord]) -> ImportReport:
    packages = {r.module.split(".")[0] for r in records}
    index = entry_index(records, entry_module)
    return ImportReport(
        label=label,
        modules=len(records),
        total_ms=sum(r.self_us for r in records) / 1000,
        top_cumulative=top_cumulative(records, TOP_IMPORTS),
        by_package=by_package(records)[:TOP_PACKAGES],
        venue_sdks=sorted(p for p in packages if p in VENUE_SDKS),
        entry_module=entry_module,
        entry_imports=direct_imports(records, index)[:TOP_IMPORTS] if index is not None else [],
        late_imports=[r for r in records[index + 1 :] if r.depth == 0] if index is not None else [],
    )


# --- the machine ----------------------------------------------------------------------------------------------


def cpu_model() -> str:
    if shutil.which("lscpu"):
        done = subprocess.run(["lscpu"], capture_output=True, text=True, check=False)
        for line in done.stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def interpreter_version(interpreter: Path) -> str:
    code = "import platform; print(platform.python_implementation(), platform.python_version())"
    done = subprocess.run([str(interpreter), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def machine_info(entry: EntryPoint) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "python": interpreter_version(entry.interpreter),
        "interpreter": str(entry.interpreter),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "entry_point": f"{entry.module}:{entry.call}",
    }


# --- the report -----------------------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def format_table(summaries: list[Summary], targets: dict[str, Verdict]) -> list[str]:
    width = max(len(s.label) for s in summaries)
    header = (
        f"{'command':<{width}} {'runs':>4} {'median s':>9} {'min s':>7} {'max s':>7} {'RSS MiB':>8} "
        f"{'vs pass s':>10} {'vs pass MiB':>11}  target"
    )
    lines = [header, "-" * len(header)]
    for s in summaries:
        verdict = targets.get(s.label)
        target = f"{'met   ' if verdict.met else 'MISSED'} {verdict.text}" if verdict else ""
        failed = f"  ({s.failed_runs} runs failed)" if s.failed_runs else ""
        lines.append(
            f"{s.label:<{width}} {s.runs:>4} {s.median:>9.3f} {s.best:>7.3f} {s.worst:>7.3f} {s.median_rss_mib:>8.1f} "
            f"{s.delta_vs_python:>+10.3f} {s.rss_delta_vs_python_mib:>+11.1f}  {target}{failed}"
        )
    return lines


def format_phases(label: str, phases: dict[str, float]) -> list[str]:
    if not phases:
        return [f"{label}: no phase breakdown (the child wrote no timestamps)"]
    whole = phases["whole process"]
    lines = [f"{label}, where the wall time goes (median of the phase runs, ms):"]
    for name, seconds in phases.items():
        share = f"{seconds / whole:>5.0%}" if name != "whole process" else ""
        lines.append(f"  {name:<36} {seconds * 1000:>8.1f}  {share}")
    return lines


def format_records(records: list[ImportRecord], indent: bool) -> list[str]:
    return [f"    {r.cumulative_us / 1000:>8.1f}  {'  ' * r.depth if indent else ''}{r.module}" for r in records]


def format_imports(report: ImportReport) -> list[str]:
    sdks = ", ".join(report.venue_sdks) if report.venue_sdks else "none"
    late = [r for r in report.late_imports if r.cumulative_us >= 1000]
    return [
        f"{report.label}: {report.modules} modules imported, {report.total_ms:.0f} ms under -X importtime "
        f"(which slows imports down); venue SDKs imported: {sdks}",
        f"  top {TOP_IMPORTS} by cumulative time (ms; indented by nesting depth):",
        *format_records(report.top_cumulative, indent=True),
        f"  imports {report.entry_module} makes itself, cumulative (ms; each after the ones before it):",
        *format_records(report.entry_imports, indent=False),
        "  imported while the command ran (ms, those over 1 ms):",
        *(format_records(late, indent=False) or ["    none"]),
        f"  self time by top-level package (ms, modules), top {TOP_PACKAGES}:",
        *(f"    {self_ms:>8.1f}  {package} ({count})" for package, count, self_ms in report.by_package),
    ]


def print_text(
    info: dict[str, Any],
    summaries: list[Summary],
    verdict_list: list[Verdict],
    phases: dict[str, dict[str, float]],
    imports: list[ImportReport],
) -> None:
    lines = [
        f"machine: {info['cpu']}, {info['cpus']} CPUs; {info['python']}; {info['date']}; "
        f"load average {' '.join(str(x) for x in info['load_average'])}",
        f"recon runs {info['entry_point']} on {info['interpreter']}; max RSS from {info['max_rss_from']}",
        "",
        *format_table(summaries, {v.label: v for v in verdict_list}),
        "",
    ]
    for label, breakdown in phases.items():
        lines += [*format_phases(label, breakdown), ""]
    for report in imports:
        lines += [*format_imports(report), ""]
    for v in verdict_list:
        shown = "a run failed" if v.measured == float("inf") else f"{v.measured:+.3f} s"
        lines.append(f"{'met   ' if v.met else 'MISSED'}  {v.label}: {shown} (target {v.text})")
    print("\n".join(lines))


def print_json(
    info: dict[str, Any],
    summaries: list[Summary],
    verdict_list: list[Verdict],
    phases: dict[str, dict[str, float]],
    imports: list[ImportReport],
) -> None:
    document = {
        "machine": info,
        "commands": [asdict(s) for s in summaries],
        "targets": [
            {**asdict(v), "measured": None if v.measured == float("inf") else v.measured, "met": v.met}
            for v in verdict_list
        ],
        "phases": phases,
        "imports": [asdict(r) for r in imports],
    }
    print(json.dumps(document, indent=2, default=str))


# --- main -----------------------------------------------------------------------------------------------------


def import_commands(interpreter: Path, specs: list[str], cwd: Path) -> list[Command]:
    """``python -c 'import A, B'`` for each spec ``A,B``; ``gc:A,B`` with the collector off, then frozen."""
    commands = []
    for spec in specs:
        frozen = spec.startswith("gc:")
        modules = [m.strip() for m in spec.removeprefix("gc:").split(",") if m.strip()]
        code = "import " + ", ".join(modules)
        label = f"import {', '.join(modules)}"
        if frozen:
            code = f"import gc\ngc.disable()\n{code}\ngc.freeze()\ngc.enable()\n"
            label += " (gc off, frozen)"
        commands.append(Command(label, (str(interpreter), "-c", code), cwd))
    return commands


def variant_commands(entry: EntryPoint, cwd: Path) -> list[Command]:
    """The two commands changed in ways that need no edit to the project, and Typer's own floor."""
    python = str(entry.interpreter)
    script = SCRIPT_WRAPPER.format(module=entry.module, name=entry.name, call=entry.call)
    around = GC_AROUND_IMPORTS.format(module=entry.module, name=entry.name, call=entry.call)
    commands = [Command("typer app, 16 commands, --help", (python, "-c", TYPER_FLOOR, "--help"), cwd)]
    for label, args in (("--help", ("--help",)), ("fleet", ("fleet",))):
        commands += [
            Command(f"recon {label}, gc.freeze() at exit", (python, "-c", GC_AT_EXIT + script, *args), cwd),
            Command(f"recon {label}, gc off in imports, then frozen", (python, "-c", around, *args), cwd),
            Command(f"recon {label}, gc off, frozen at exit", (python, "-c", GC_OFF + script, *args), cwd),
        ]
    commands.insert(
        1, Command("recon --help, TYPER_USE_RICH=0", (str(entry.script), "--help"), cwd, (("TYPER_USE_RICH", "0"),))
    )
    return commands


def analyse(
    entry: EntryPoint, workspace: Path, env: dict[str, str], args: argparse.Namespace
) -> tuple[dict[str, dict[str, float]], list[ImportReport]]:
    cases = [("recon --help", ["--help"]), ("recon fleet", ["fleet"])]
    phases: dict[str, dict[str, float]] = {}
    imports: list[ImportReport] = []
    for label, argv in cases:
        if args.phase_runs:
            progress(f"phase breakdown of {label} ...")
            phases[label] = phase_medians(entry, argv, workspace, env, args.phase_runs)
        if not args.no_imports:
            progress(f"-X importtime of {label} ...")
            records = import_records(entry, argv, workspace, env, args.import_runs)
            imports.append(import_report(label, entry.module, records))
    return phases, imports


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    script = (args.recon or default_recon()).resolve()
    if not script.is_file():
        progress(f"no recon script at {script} (pass --recon PATH)")
        return 2
    env = child_env()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        try:
            entry = read_entry_point(script)
            workspace = args.workspace.resolve() if args.workspace else make_demo(entry, Path(tmp), env)
        except SystemExit as failed:
            progress(str(failed))
            return 2
        python = str(entry.interpreter)
        baseline = Command("python -c pass", (python, "-c", "pass"), workspace)
        help_ = Command("recon --help", (str(script), "--help"), workspace)
        fleet = Command("recon fleet (demo workspace)", (str(script), "fleet"), workspace)
        specs = [*(WHAT_IF_IMPORTS if args.what_if else ()), *args.imports]
        commands = [baseline, help_, fleet, *import_commands(entry.interpreter, specs, workspace)]
        if args.what_if:
            commands += variant_commands(entry, workspace)
        timer = gnu_time(args.rss)
        progress(f"measuring {len(commands)} commands, {args.runs} runs each, interleaved ...")
        samples = measure_interleaved(commands, args.runs, args.warmup, env, timer)
        summaries = [summarize(c, samples[c.label]) for c in commands]
        add_deltas(summaries, summaries[0])
        verdict_list = verdicts(summaries[1], summaries[2])
        phases, imports = analyse(entry, workspace, env, args)
    info = {**machine_info(entry), "max_rss_from": f"{timer} -f %M" if timer else "os.wait4"}
    (print_json if args.json else print_text)(info, summaries, verdict_list, phases, imports)
    missed = not all(v.met for v in verdict_list)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
