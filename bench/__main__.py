"""`python -m bench`: run every benchmark in bench/ in turn."""

from __future__ import annotations

from bench.run_all import main

raise SystemExit(main())
