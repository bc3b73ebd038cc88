"""`python -m connector` is `ncb-connector`."""

from __future__ import annotations

from connector.cli import main

main()
