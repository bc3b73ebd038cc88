"""Syncing the sources an admin names, or every one of sources.yaml, into the records."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import closing

from connector.records.store import RecordStore
from connector.settings.config import Settings
from connector.sources.model import Source, load_sources
from connector.sources.sync import SourceError, SyncReport, sync


def sync_sources(
    settings: Settings,
    names: Collection[str] = (),
    *,
    allow_removal: bool = False,
    clock: Callable[[], float],
) -> Iterator[tuple[Source, SyncReport]]:
    """One sync of each source (or of those named), its report as soon as it is done."""
    sources = load_sources(settings.path(settings.sources_file)).sources
    unknown = set(names) - {s.name for s in sources}
    if unknown:
        raise SourceError(f"no source {', '.join(sorted(unknown))} in {settings.sources_file}")
    if not sources:
        path = settings.path(settings.sources_file)
        what = "names no source" if path.exists() else "does not exist"
        raise SourceError(
            f"no sources: {path} {what}. Write one `sources:` entry per table of the national "
            'database (name, url, table, category, key, columns; docs/records.md, "A live link '
            'to a national database"), then `ncb-connector config check`'
        )
    with closing(RecordStore.open(settings.records_url)) as store:
        for source in sources:
            if not names or source.name in names:
                yield source, sync(source, store, clock=clock, allow_removal=allow_removal)
