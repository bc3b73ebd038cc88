"""`ncb-connector demo`: a small network on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.console import Console

from connector.cli.common import handles_errors, out
from connector.logs import configure_logging


@click.command()
@click.option(
    "--nodes",
    default=3,
    show_default=True,
    type=click.IntRange(3, 196),
    help="How many nodes; beyond 3, one agency check fans out to all of them.",
)
@click.option(
    "--keep",
    type=click.Path(path_type=Path),
    default=None,
    help="Build the nodes here and leave them (default: a temporary directory).",
)
@handles_errors
def demo(nodes: int, keep: Path | None) -> None:
    """Start a small network on loopback, run cross-border checks, print answers and logs."""
    from connector.demo import run_demo

    configure_logging(fmt="console", level="warning")
    # Piped into a file or a pager, 80 columns would fold every ref in two.
    console = (
        out if out.is_terminal else Console(highlight=False, emoji=False, width=max(out.width, 160))
    )
    code = asyncio.run(run_demo(console, nodes=nodes, keep=keep))
    raise SystemExit(code)
