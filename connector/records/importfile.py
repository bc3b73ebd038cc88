"""An admin's import of one file, or of standard input, into the records database."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import IO

from connector.errors import ImportFileError
from connector.records.importer import Format, ImportReport, guess_format, import_stream
from connector.records.store import RecordStore
from connector.settings.config import Settings
from connector.vocabulary import Category

MAX_REMOVAL_SHARE = 0.5  # of a category, that --replace removes without being told it may


def import_file(
    settings: Settings,
    source: Path | None,
    *,
    category: Category,
    fmt: Format | None = None,
    status: str | None = None,
    warrant_country: str | None = None,
    replace: bool = False,
    allow_large_removal: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import `source` (None: standard input, read as NDJSON unless `fmt` says otherwise);
    the format is guessed from the file's name. FtM entities carry neither a status nor a
    warrant: documents and vehicles are stolen and warrants this node's country's unless
    `status` and `warrant_country` say otherwise. An error names the file, as a rejected
    line does (`file:line: reason`)."""
    name = "-" if source is None else str(source)
    chosen = fmt or (guess_format(name) if source is not None else "ndjson")
    if status is None and category in (Category.TRAVEL_DOCUMENTS, Category.VEHICLES):
        status = "stolen"
    with closing(RecordStore.open(settings.records_url)) as store, _open(source) as stream:
        try:
            return import_stream(
                store,
                stream,
                category=category,
                fmt=chosen,
                progress=progress,
                replace=replace,
                max_removal_share=None if allow_large_removal else MAX_REMOVAL_SHARE,
                status=status
                or (
                    "stolen" if category in (Category.TRAVEL_DOCUMENTS, Category.VEHICLES) else None
                ),
                warrant_country=warrant_country or settings.node[:2],
            )
        except ImportFileError as exc:
            detail = (
                f"{name}:{exc.detail.removeprefix('line ')}"
                if exc.detail.startswith("line ")
                else f"{name}: {exc.detail}"
            )
            if chosen == "csv" and "lacks the column" in detail:
                detail += " (columns are separated by commas)"
            raise ImportFileError(detail) from exc


def _open(source: Path | None) -> IO[bytes]:
    if source is None:
        return open(sys.stdin.fileno(), "rb", closefd=False)
    try:
        return source.open("rb")
    except OSError as exc:
        raise ImportFileError(f"cannot read {source}: {exc.strerror}") from exc
