"""Writing a benchmark's generated block into docs/benchmarks.md, leaving the rest as it is."""

from __future__ import annotations

from pathlib import Path


def replace_block(path: Path, text: str, *, begin: str, end: str, new_section: str) -> None:
    """Put `text` (which starts with `begin` and ends with `end`) where the old block was;
    without one, append `new_section` followed by `text`."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + text + rest.split(end, 1)[1]
    else:
        new = old.rstrip() + "\n\n" + new_section + text + "\n"
    path.write_text(new, encoding="utf-8")
