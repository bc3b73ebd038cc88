"""A benchmark's record store built once and cached, and what evaluations report of it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench._docs import replace_block
from connector.records.store import RecordStore


def cached_store(path: Path, build: Callable[[RecordStore], None], *, what: str) -> float | None:
    """The SQLite store at `path`, made by `build` into a partial file first and renamed only
    once whole, so a build cut short is never read as a cache. The build's seconds, or None
    when the store came from the cache."""
    if path.exists():
        return None
    print(f"building {what} into {path} …", flush=True)
    partial = path.with_suffix(".partial")
    for stale in path.parent.glob(partial.name + "*"):
        stale.unlink()
    started = time.monotonic()
    store = RecordStore.open(f"sqlite:///{partial}")
    try:
        build(store)
    finally:
        store.close()
    partial.rename(path)
    return time.monotonic() - started


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile of `values` by nearest rank below."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def publish(text: str, *, write_docs: bool, docs: Path, begin: str, end: str, section: str) -> None:
    """Print a generated block, and with `write_docs` put it in its place on the page."""
    print(text.replace(begin, "").replace(end, "").strip())
    if write_docs:
        replace_block(docs, text, begin=begin, end=end, new_section=f"{section}\n\n")
        print(f"\nwritten to {docs}")
