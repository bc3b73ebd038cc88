"""Import files (NDJSON, CSV, FtM) into the record store: bad lines reported, good lines kept."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import orjson

from connector.errors import ImportFileError
from connector.records.ftm import FTM_SCHEMATA, ftm_to_row
from connector.records.kinds.base import Record, RowError
from connector.records.store import RecordStore
from connector.vocabulary import Category, current_name

Format = Literal["ndjson", "csv", "ftm"]
# Rows per transaction: each commit rewrites the index pages it touched, and with random
# keys that is most of them, so fewer, larger commits import several times faster.
BATCH = 50_000
MAX_REPORTED = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected:
    line: int
    reason: str


@dataclass(slots=True, kw_only=True)
class ImportReport:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    removed: int = 0
    replace_skipped: str | None = None  # why --replace removed nothing
    lines: int = 0
    errors: list[Rejected] = field(default_factory=list)

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED:
            self.errors.append(Rejected(line=line, reason=reason))


def guess_format(name: str) -> Format:
    lowered = name.lower()
    if lowered.endswith(".csv"):
        return "csv"
    if lowered.endswith((".ftm", ".ftm.json", ".ftm.jsonl", ".ftm.ndjson")):
        return "ftm"
    if lowered.endswith((".ndjson", ".jsonl", ".json")):
        return "ndjson"
    raise ImportFileError(f"cannot tell the format of {name!r}; give --format ndjson|csv|ftm")


MAX_LINE = 1 << 20
"""Bytes in one import line: no record comes near it, and a file without line breaks (a
binary, a 2 GB blob through a pipe) must not be read into memory whole."""


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes | RowError]]:
    """Lines, each at most MAX_LINE bytes; a longer one is skipped to its end and reported."""
    lineno = 0
    while True:
        raw = stream.readline(MAX_LINE + 1)
        if not raw:
            return
        lineno += 1
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            skipped = len(raw)
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(MAX_LINE)
                skipped += len(raw)
            yield (
                lineno,
                RowError(
                    f"the line is {skipped:,} bytes long, more than a record "
                    f"can be ({MAX_LINE:,}); skipped"
                ),
            )
            continue
        yield lineno, raw


def _ndjson_rows(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    for lineno, raw in _lines(stream):
        if isinstance(raw, RowError):
            yield lineno, raw
            continue
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield lineno, RowError(f"not valid JSON: {exc}")
            continue
        if not isinstance(obj, dict):
            yield lineno, RowError("a line must hold one JSON object")
            continue
        yield lineno, obj


def _ftm_rows(
    stream: IO[bytes], category: Category, status: str | None, warrant_country: str | None
) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """FtM exports are NDJSON, one entity a line: each is mapped to the category's row."""
    for lineno, obj in _ndjson_rows(stream):
        if isinstance(obj, RowError):
            yield lineno, obj
            continue
        try:
            yield (
                lineno,
                ftm_to_row(obj, category=category, status=status, warrant_country=warrant_country),
            )
        except RowError as exc:
            yield lineno, exc


def _csv_rows(
    stream: IO[bytes], required: frozenset[str], category: Category
) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    reader = csv.DictReader(text)
    try:
        header = reader.fieldnames
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"line 1: not UTF-8 text: {exc.reason}") from exc
    if not header:
        raise ImportFileError("the CSV file is empty: line 1 must name the columns")
    missing = required - {current_name(category, name) for name in header}
    if missing:
        raise ImportFileError(
            f"line 1: the CSV header lacks the column(s) {', '.join(sorted(missing))}",
            missing=sorted(missing),
        )
    while True:
        first = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            yield reader.line_num, RowError(f"unreadable CSV: {exc}")
            continue
        last = reader.line_num
        if last > first and _unclosed_quote(row, columns=len(header)):
            yield (
                first,
                RowError(
                    f"a quote opened on line {first} is not closed on its line: lines "
                    f"{first + 1}-{last} were read into one field and none of them is imported; "
                    "close the quote and import the file again"
                ),
            )
            for swallowed in range(first + 1, last + 1):
                yield swallowed, RowError(f"read into the unclosed quote of line {first}")
            continue
        if None in row:
            yield reader.line_num, RowError("more fields than the header names")
            continue
        yield reader.line_num, {k: v for k, v in row.items() if v is not None}


def _unclosed_quote(row: dict[str | Any, Any], *, columns: int) -> bool:
    """A row that spans lines because a quote was never closed, not because a quoted value
    holds a line break: a line inside one of its values reads as a whole row of its own (as
    many commas as the header has), or the value runs to the end of the file."""
    for value in row.values():
        if not isinstance(value, str) or "\n" not in value:
            continue
        if value.endswith("\n"):
            return True
        if any(line.count(",") >= columns - 1 for line in value.split("\n")[1:]):
            return True
    return False


def import_stream(
    store: RecordStore,
    stream: IO[bytes],
    *,
    category: Category,
    fmt: Format,
    progress: Callable[[int], None] | None = None,
    replace: bool = False,
    max_removal_share: float | None = None,
    status: str | None = None,
    warrant_country: str | None = None,
) -> ImportReport:
    """Upsert every good row in batches; each bad row is reported with its line number.

    With `replace`, records of the category absent from the file are removed afterwards,
    but only when every line was good: a rejected line might be a record that is still
    wanted, and removing it would lose it without a word.

    `status` and `warrant_country` are for FtM entities only, which carry neither: see
    `connector.records.ftm.ftm_to_row`.
    """
    kind = store.kind(category)
    if kind is None:
        raise ImportFileError(f"importing {category.value} is not supported yet")
    store.bulk_mode()
    if fmt == "ftm" and category not in FTM_SCHEMATA:
        raise ImportFileError(
            f"{category.value} cannot be imported from FtM entities; FtM "
            f"import covers {', '.join(sorted(FTM_SCHEMATA))}"
        )
    report = ImportReport()
    rows = (
        _ndjson_rows(stream)
        if fmt == "ndjson"
        else _ftm_rows(stream, category, status, warrant_country)
        if fmt == "ftm"
        else _csv_rows(stream, kind.csv_required, category)
    )
    batch: list[Record] = []
    seen: set[tuple[Any, ...]] = set()
    last_pos = 0

    def flush() -> None:
        counts = store.upsert(category, batch)
        report.inserted += counts.inserted
        report.updated += counts.updated
        report.unchanged += counts.unchanged
        batch.clear()

    for lineno, row in rows:
        report.lines = lineno
        if isinstance(row, RowError):
            report.reject(lineno, str(row))
            continue
        try:
            record = kind.parse_row(row)
        except RowError as exc:
            report.reject(lineno, str(exc))
            continue
        batch.append(record)
        if replace:
            seen.add(tuple(record.keys[k] for k in kind.natural_key))
        if len(batch) >= BATCH:
            flush()
            if progress is not None:
                pos = _position(stream)
                progress(pos - last_pos)
                last_pos = pos
    if batch:
        flush()
    if replace:
        if report.rejected:
            report.replace_skipped = "lines were rejected"
        elif not seen:
            # An empty export (a failed job, an empty pipe) must not empty the category.
            report.replace_skipped = "the file holds no records"
        else:
            removed = store.remove_except_keys(category, seen, max_share=max_removal_share)
            if removed is None:
                report.replace_skipped = (
                    f"it would remove more than {max_removal_share:.0%} of the category"
                )
            else:
                report.removed = removed
    if progress is not None:
        progress(max(0, _position(stream) - last_pos))
    return report


def _position(stream: IO[bytes]) -> int:
    try:
        return stream.tell()
    except (OSError, ValueError):
        return 0
