"""`ncb-connector enquiries`: listing, showing and verifying the enquiry log."""

from __future__ import annotations

import re
import time
from contextlib import closing
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

import click

from connector.cli.common import (
    _fail,
    _json,
    config_option,
    err,
    handles_errors,
    json_option,
    out,
)
from connector.cli.render import enquiries_table, entry_dict
from connector.enquiries.entry import Direction
from connector.settings.config import load_settings


def parse_since(text: str, *, now: datetime) -> float:
    """`2h`, `30m`, `7d` back from now, or an ISO 8601 date or time (UTC unless it says)."""
    m = re.fullmatch(r"(\d+)\s*([smhd])", text.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return (now - timedelta(**{unit: int(m.group(1))})).timestamp()
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter("give 2h, 30m, 7d or an ISO 8601 date/time") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


@click.command("list")
@click.option("--peer")
@click.option("--since", help="2h, 30m, 7d, or an ISO date/time.")
@click.option("--direction", type=click.Choice(get_args(Direction)))
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the newest N.")
@click.option("--json", "as_json", is_flag=True)
@config_option
@handles_errors
def enquiries_list(
    peer: str | None,
    since: str | None,
    direction: Direction | None,
    limit: int | None,
    as_json: bool,
    config_path: Path,
) -> None:
    """List enquiries, oldest first."""
    from connector.enquiries.log import EnquiryLog

    settings = load_settings(config_path)
    since_ts = parse_since(since, now=datetime.now(UTC)) if since else None
    with closing(EnquiryLog.open(settings.enquiries_url)) as log:
        rows = log.list(
            peer=peer.upper() if peer else None,
            since=since_ts,
            direction=direction,
            limit=limit,
            newest_first=limit is not None,
        )
    if limit is not None:
        rows.reverse()  # the newest N, shown oldest first like the rest
    if as_json:
        _json([entry_dict(r) for r in rows])
        return
    out.print(enquiries_table(rows) if rows else "no enquiries")


@click.command("show")
@click.argument("enquiry_id")
@config_option
@handles_errors
def enquiries_show(enquiry_id: str, config_path: Path) -> None:
    """One enquiry in full, with the deciding rules and the policy digest."""
    from connector.enquiries.log import EnquiryLog

    settings = load_settings(config_path)
    with closing(EnquiryLog.open(settings.enquiries_url)) as log:
        row = log.get(enquiry_id)
    if row is None:
        _fail(f"no enquiry {enquiry_id}", 1)
        return
    _json(entry_dict(row, with_token=True))


@click.command("verify")
@click.option(
    "--expect",
    "expect",
    metavar="CHECKPOINT",
    help="A checkpoint taken earlier — SEQ:HASH, or the signed token the node logs "
    "as enquiry_log_checkpoint (`signed`) and verify prints: also proves no "
    "newer rows were cut off before it.",
)
@config_option
@json_option
@handles_errors
def enquiries_verify(expect: str | None, config_path: Path, as_json: bool) -> None:
    """Check the hash chain; exit 1 and name the first broken row."""
    import connector.notify.tables  # noqa: F401  (declares the outbox, whose rows the log seals)
    from connector.enquiries.audit import audit_log

    audit = audit_log(load_settings(config_path), expect=expect, now=time.time())
    report = audit.report
    if as_json:
        _json(
            {
                "ok": audit.token is not None,
                "rows": report.rows,
                "head": report.head if audit.token is not None else None,
                "broken_seq": report.broken_seq,
                "problem": report.problem,
                "checkpoint_held": None if audit.checkpoint is None else audit.checkpoint[0],
                "checkpoint": audit.token,
                "disclosed_refs": [asdict(f) for f in report.disclosures],
                "sealed": [asdict(f) for f in report.sealed],
            }
        )
        if audit.token is None:
            raise SystemExit(1)
        return
    if audit.token is None:
        where = "" if report.broken_seq is None else f" at row {report.broken_seq}"
        err.print(f"[bold red]BROKEN[/]{where}: {report.problem} ({report.rows} row(s) read)")
        for message in [f.message for f in report.disclosures] + [f.message for f in report.sealed]:
            err.print(f"  {message}", markup=False)
        raise SystemExit(1)
    out.print(f"ok: {report.rows} row(s), chain head {report.head}")
    if audit.checkpoint is not None:
        out.print(f"the checkpoint holds: row {audit.checkpoint[0]} is there, unchanged")
    out.print("checkpoint (keep it off this host; verify --expect it later):")
    click.echo(audit.token)
