"""Run every benchmark module in bench/ (each has `main(argv) -> int`); exit with the worst code."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from collections.abc import Callable, Sequence
from typing import cast

import bench

SKIP = frozenset({"run_all"})


def benchmark_modules() -> list[str]:
    """Public modules of the bench package; helpers start with an underscore."""
    return sorted(
        f"bench.{m.name}"
        for m in pkgutil.iter_modules(bench.__path__)
        if not m.name.startswith("_") and m.name not in SKIP
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    worst = 0
    for name in benchmark_modules():
        entry = getattr(importlib.import_module(name), "main", None)
        if entry is None:
            continue
        print(f"=== {name} ===", flush=True)
        started = time.monotonic()
        code = cast(Callable[[Sequence[str]], int], entry)(args)
        print(f"=== {name}: exit {code} in {time.monotonic() - started:.0f} s ===", flush=True)
        worst = max(worst, code)
    return worst


if __name__ == "__main__":
    raise SystemExit(main())
