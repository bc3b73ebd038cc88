"""The docs' indexes stay complete: every benchmark in bench/ is listed in benchmarks.md."""

from __future__ import annotations

import re
from pathlib import Path

from bench.run_all import benchmark_modules

ROOT = Path(__file__).resolve().parents[2]


def test_benchmarks_md_lists_every_benchmark() -> None:
    text = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    intro = text.split("\n## ", 1)[0]
    listed = re.findall(r"^\| `(bench\.\w+)` \|", intro, flags=re.M)
    assert sorted(listed) == benchmark_modules()
    # Each row's section link names a heading that exists.
    headings = {
        re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^## (.+)$", text, flags=re.M)
    }
    for anchor in re.findall(r"\]\(#([^)]+)\)", intro):
        assert anchor in headings, anchor
