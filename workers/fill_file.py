"""Reading a bot's trade history from a file: one fill per CSV row or JSONL line, each checked as the books check
a recorded fill (``workers.books.checked_fill``).

    symbol, side, qty, price, time, fill_id, fee        required
    category, order_id, group, leg                      optional (empty or null: not given)

A CSV file has a header row naming its columns (line 1); a JSONL file has one JSON object per line. Blank lines
are skipped. Amounts are decimal text (JSON numbers are read as ``Decimal``, never as floats); times are ISO 8601
with a time zone. A row that fails a check is a ``BadRow`` naming its line and what is wrong; the file as a
whole (unreadable, not UTF-8, a CSV header lacking or adding columns) raises ``FixConfiguration``. A fill id
repeated with the same contents counts once; with other contents the repeat is a bad row.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from reconciliation.errors import FixConfiguration
from reconciliation.names import shown
from reconciliation.values import Fill
from workers.books import checked_fill

REQUIRED = ("symbol", "side", "qty", "price", "time", "fill_id", "fee")
OPTIONAL = ("category", "order_id", "group", "leg")
COLUMNS = REQUIRED + OPTIONAL


class FileFormat(StrEnum):
    """How a history file is written."""

    CSV = "csv"
    JSONL = "jsonl"


@dataclass(frozen=True)
class BadRow:
    """A row that cannot be imported: its line in the file and what is wrong with it."""

    line: int
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"


@dataclass(frozen=True)
class FileFill:
    """A good row: the fill it records and the line it is on."""

    line: int
    fill: Fill


@dataclass(frozen=True)
class FillFile:
    """What a history file holds: its good fills in file order (repeats collapsed), its bad rows, and how many
    rows repeated an earlier one exactly."""

    fills: tuple[FileFill, ...]
    bad: tuple[BadRow, ...]
    repeated: int


def file_format(path: Path, given: str | None) -> FileFormat:
    """The format ``given`` (``--format``), else the one the file's extension names (.csv, .jsonl)."""
    name = given if given is not None else path.suffix.lstrip(".")
    try:
        return FileFormat(name.strip().lower())
    except ValueError:
        where = f"--format {shown(given)}" if given is not None else f"the extension of {path.name}"
        raise FixConfiguration(
            f"unknown file format: {where} is not csv or jsonl (pass --format csv or --format jsonl)"
        ) from None


def read_fill_file(path: Path, fmt: FileFormat, category_of: Callable[[str | None], str], now: datetime) -> FillFile:
    """Every row of ``path`` checked: a fill, or a bad row. ``category_of`` checks a category for the account's
    venue (its answers are remembered per value: one venue look-up per distinct category); ``now`` bounds the
    fills' times."""
    text = _text_of(path)
    rows = _csv_rows(text) if fmt is FileFormat.CSV else _jsonl_rows(text)
    categories = _Remembered(category_of)
    fills: list[FileFill] = []
    bad: list[BadRow] = []
    seen: dict[str, FileFill] = {}
    repeated = 0
    for line, values in rows:
        if isinstance(values, BadRow):
            bad.append(values)
            continue
        try:
            fill = _fill_of(values, categories, now)
        except FixConfiguration as error:
            bad.append(BadRow(line, str(error)))
            continue
        earlier = seen.get(fill.fill_id)
        if earlier is None:
            seen[fill.fill_id] = FileFill(line, fill)
            fills.append(seen[fill.fill_id])
        elif earlier.fill == fill:
            repeated += 1
        else:
            bad.append(BadRow(line, f"fill_id {shown(fill.fill_id)} is on line {earlier.line} with other contents"))
    return FillFile(tuple(fills), tuple(bad), repeated)


Row = tuple[int, dict[str, Any] | BadRow]


def _text_of(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: a spreadsheet's byte order mark is not a column name
    except UnicodeDecodeError as error:
        raise FixConfiguration(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise FixConfiguration(f"{path}: cannot be read ({error.strerror or error})") from None


def _csv_rows(text: str) -> Iterator[Row]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise FixConfiguration(f"line 1: the header is not CSV ({error})") from None
    if header is None:
        raise FixConfiguration("the file is empty: a CSV file starts with a header row naming its columns")
    names = [name.strip().lower() for name in header]
    _check_header(names)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield reader.line_num, BadRow(reader.line_num, f"not CSV ({error})")
            continue
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        if len(cells) != len(names):
            yield reader.line_num, BadRow(reader.line_num, f"{len(cells)} cells, the header names {len(names)}")
            continue
        # An empty cell is a value not given, as a missing key is in JSONL.
        yield reader.line_num, {n: c.strip() for n, c in zip(names, cells, strict=True) if c.strip()}


def _check_header(names: list[str]) -> None:
    missing = [name for name in REQUIRED if name not in names]
    unknown = [name for name in names if name not in COLUMNS]
    repeated = sorted({name for name in names if names.count(name) > 1})
    problems = [
        *([f"lacks {', '.join(missing)}"] if missing else []),
        *([f"has unknown {', '.join(shown(n) for n in unknown)}"] if unknown else []),
        *([f"repeats {', '.join(repeated)}"] if repeated else []),
    ]
    if problems:
        raise FixConfiguration(
            f"line 1: the header {'; '.join(problems)} (columns: {', '.join(REQUIRED)}; "
            f"optional: {', '.join(OPTIONAL)})"
        )


def _jsonl_rows(text: str) -> Iterator[Row]:
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw, parse_float=Decimal, parse_constant=_no_constant)
        except ValueError as error:
            yield line, BadRow(line, f"not JSON ({error})")
            continue
        if not isinstance(value, dict):
            yield line, BadRow(line, f"expected a JSON object, got {type(value).__name__}")
            continue
        unknown = [key for key in value if key not in COLUMNS]
        if unknown:
            yield line, BadRow(line, f"unknown key {', '.join(shown(k) for k in unknown)} (keys: {', '.join(COLUMNS)})")
            continue
        yield line, {key: item for key, item in value.items() if item is not None and item != ""}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _fill_of(values: dict[str, Any], category_of: Callable[[str | None], str], now: datetime) -> Fill:
    missing = [name for name in REQUIRED if name not in values]
    if missing:
        raise FixConfiguration(f"{', '.join(missing)}: required")
    return checked_fill(
        category_of, now, symbol=values["symbol"], side=values["side"], qty=values["qty"], price=values["price"],
        fill_id=_id(values["fill_id"]), fee=values["fee"], time=values["time"], category=values.get("category"),
        leg=_leg(values.get("leg", 0)), group=values.get("group"), order_id=_id(values.get("order_id")),
    )  # fmt: skip


def _id(value: object) -> object:
    """An id as text: venues' ids are sometimes numbers in JSON."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _leg(value: object) -> object:
    """A CSV leg is text: a whole number written as digits."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


class _Remembered:
    """``category_of`` asked once per distinct category: for a sim venue each answer reads its state file."""

    def __init__(self, category_of: Callable[[str | None], str]) -> None:
        self.category_of = category_of
        self.answers: dict[str | None, tuple[str, bool]] = {}  # category given -> (answer or problem, good)

    def __call__(self, category: str | None) -> str:
        if category not in self.answers:
            try:
                self.answers[category] = (self.category_of(category), True)
            except FixConfiguration as error:
                self.answers[category] = (str(error), False)
        answer, good = self.answers[category]
        if not good:
            raise FixConfiguration(answer)
        return answer
