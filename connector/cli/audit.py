"""`ncb-connector audit`: the admin audit trail, listed and verified."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from connector.cli.common import (
    _json,
    config_option,
    err,
    handles_errors,
    json_option,
    out,
)
from connector.cli.enquiries import parse_since
from connector.cli.render import fit, folded, shown
from connector.settings.config import Settings, load_settings
from connector.trail.entry import TRAIL_FILE, Action, TrailEntry
from connector.trail.file import read_entries, verify_file

EXIT_BROKEN = 1


def _path(settings: Settings) -> Path:
    return settings.state_path(TRAIL_FILE)


@click.command("list")
@click.option("--since", help="2h, 30m, 7d, or an ISO 8601 date/time (UTC unless it says).")
@click.option(
    "--action",
    "actions",
    multiple=True,
    type=click.Choice([a.value for a in Action]),
    help="Only this action (repeatable).",
)
@config_option
@json_option
@handles_errors
def audit_list(
    since: str | None, actions: tuple[str, ...], config_path: Path, as_json: bool
) -> None:
    """Changes admins made, oldest first: when, who, what, to what.

    Lists every line that reads as an entry; `audit verify` says whether they still chain.
    Exit status: 0; 2 the trail (or the config) could not be read."""
    settings = load_settings(config_path)
    since_ts = parse_since(since, now=datetime.now(UTC)) if since else None
    entries = [
        e
        for e in read_entries(_path(settings))
        if (since_ts is None or e.when >= since_ts) and (not actions or e.action in actions)
    ]
    if as_json:
        _json([e.to_json() for e in entries])
        return
    out.print(fit(_table(entries), out) if entries else "no changes recorded")


def _table(entries: list[TrailEntry]) -> Table:
    table = folded(Table("#", "time (UTC)", "by", "action", "target", "details"))
    for e in entries:
        table.add_row(
            str(e.seq),
            e.at[:19].replace("T", " "),
            escape(e.actor.shown),
            e.action,
            escape(e.target),
            escape(", ".join(f"{k} {shown(v)}" for k, v in e.details.items()) or "-"),
        )
    return table


def _expected(text: str) -> tuple[int, str]:
    seq, sep, digest = text.partition(":")
    if not sep or not seq.isdigit() or len(digest) != 64:
        raise click.BadParameter("give SEQ:HASH, as `audit verify` prints the head")
    return int(seq), digest.lower()


@click.command("verify")
@click.option(
    "--expect",
    metavar="SEQ:HASH",
    help="A head taken earlier (`audit verify` prints it; a backup's manifest holds one): "
    "also proves no entry up to it was cut or rewritten since.",
)
@config_option
@json_option
@handles_errors
def audit_verify(expect: str | None, config_path: Path, as_json: bool) -> None:
    """Check the trail's hash chain; name the first line edited, deleted, out of order or
    partial.

    Exit status: 0 the trail holds; 1 a line is not as written (the finding names its line
    and seq), or --expect's entry is gone or changed; 2 the trail (or the config) could not
    be read."""
    expected = None if expect is None else _expected(expect)
    path = _path(load_settings(config_path))
    report = verify_file(path, expect=expected)
    head = report.head
    if as_json:
        _json(
            {
                "ok": report.ok,
                "file": str(path),
                "entries": report.entries,
                "head": None if head is None else {"seq": head.seq, "hash": head.hash},
                "finding": report.finding,
                "line": report.line,
                "seq": report.seq,
                "problem": report.problem,
                "expect_held": report.expect_held,
            }
        )
    elif report.ok:
        where = "empty" if head is None else f"head {head.seq}:{head.hash}"
        out.print(f"ok: {report.entries} entr{'y' if report.entries == 1 else 'ies'}, {where}")
        if report.expect_held:
            assert expected is not None
            out.print(f"the checkpoint holds: entry {expected[0]} is there, unchanged")
    else:
        err.print(f"[bold red]BROKEN[/] ({report.finding}): {escape(report.problem or '')}")
        if head is not None and report.finding != "cut":
            err.print(f"the entries before it chain, up to seq {head.seq}")
    if not report.ok:
        raise SystemExit(EXIT_BROKEN)
