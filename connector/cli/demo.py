"""`ncb-connector demo`: a small network on loopback, shown as it runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import assert_never

import click
from rich.console import Console
from rich.panel import Panel

from connector.cli.common import handles_errors, out
from connector.cli.render import answer_table, enquiries_table, fanout_table
from connector.demo import (
    Answered,
    ConsoleUp,
    DemoEvent,
    Failed,
    FanoutAnswered,
    FanoutTimed,
    Finished,
    LogShown,
    NodeUp,
    Notified,
    QuietLogs,
    Section,
    Serving,
    Starting,
    run_demo,
)
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
@click.option(
    "--serve",
    is_flag=True,
    help="After the checks, keep the nodes and DE's operator console running until Ctrl-C.",
)
@handles_errors
def demo(nodes: int, keep: Path | None, serve: bool) -> None:
    """Start a small network on loopback, run cross-border checks, print answers and logs.

    DE's operator console is started too; its address and a login made for this run are
    printed (open it during the demo with --serve)."""
    configure_logging(fmt="console", level="warning")
    # Piped into a file or a pager, 80 columns would fold every ref in two.
    console = (
        out if out.is_terminal else Console(highlight=False, emoji=False, width=max(out.width, 160))
    )

    async def show() -> int:
        failures = 0
        async for event in run_demo(nodes=nodes, keep=keep, serve=serve):
            _show(console, event)
            if isinstance(event, Finished):
                failures = event.failures
        return 0 if not failures else 1

    try:
        code = asyncio.run(show())
    except KeyboardInterrupt:
        code = 0  # --serve ends here; the nodes stopped on the way out
    raise SystemExit(code)


def _show(console: Console, event: DemoEvent) -> None:
    match event:
        case Starting(nodes=ids, root=root):
            console.print(
                Panel.fit(
                    f"Starting {len(ids)} nodes on loopback ({', '.join(ids)}): own Ed25519 "
                    "keys, self-signed TLS pinned by fingerprint, own record store and enquiry "
                    f"log.\nWorking directory: {root}",
                    title="ncb-connector demo",
                )
            )
        case NodeUp():
            console.print(
                f"  {event.node}  https://127.0.0.1:{event.peer_port}  "
                f"key {event.kid[:16]}…  tls {event.tls_fingerprint[:23]}…"
            )
        case ConsoleUp():
            console.print(
                f"  {event.node} operator console  {event.url}  "
                f"login [bold]{event.account}[/] password [bold]{event.password}[/]"
            )
        case Serving(nodes=ids):
            console.print(
                f"serving: {', '.join(ids)} and DE's console keep running; Ctrl-C stops them"
            )
        case Section(title=title):
            console.rule(f"[bold]{title}")
        case Failed(detail=detail):
            console.print(f"[red]failed:[/] {detail}")
        case Answered(exchange=exchange, expected=expected):
            console.print(answer_table(exchange))
            if event.got != expected:
                console.print(f"[red]expected {expected}, got {event.got}[/]")
        case FanoutTimed():
            console.print(
                f"  {event.attempt}: {event.peers} peers answered in {event.elapsed_ms:.0f} ms"
            )
        case FanoutAnswered(shown=shown, statuses=statuses):
            title = f"first {len(shown)} of {event.peers} peers"
            console.print(fanout_table(["doc"], list(shown), event.outcomes, title=title))
            console.print(
                "  " + ", ".join(f"{statuses.count(x)} {x}" for x in sorted(set(statuses)))
            )
        case Notified():
            about = ", ".join(f"{m} (answered: {status})" for m, status in event.matched)
            console.print(
                f"  {event.node} → {event.channel} ({event.state}): {event.asker} asked "
                f"about {about}; why: {', '.join(event.why)}"
            )
        case LogShown(rows=rows, report=report):
            console.print(enquiries_table(list(rows)) if rows else "  (no enquiries)")
            if event.more:
                where = (
                    f"`ncb-connector enquiries list --config {event.config}`"
                    if event.config
                    else "run with --keep to list them"
                )
                console.print(f"  … and {event.more} more ({where})")
            status = "[green]chain verified[/]" if report.ok else f"[red]{report.problem}[/]"
            console.print(f"  {report.rows} row(s), {status}")
        case QuietLogs(rows=quiet):
            low, high = min(r for _, r in quiet), max(r for _, r in quiet)
            console.print(
                f"  {', '.join(node for node, _ in quiet)}: "
                f"{low if low == high else f'{low} to {high}'} row(s) each, "
                f"[green]every chain verified[/]"
            )
        case Finished(failures=failures):
            console.rule()
            console.print(
                "[green]demo complete[/]"
                if not failures
                else f"[red]{failures} scenario(s) failed[/]"
            )
        case _:
            assert_never(event)
