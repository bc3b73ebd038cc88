"""`ncb-connector notifications`: the outbox of notices, and testing a channel."""

from __future__ import annotations

import asyncio
import os
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from connector.cli.common import (
    _fail,
    _json,
    _settings,
    config_option,
    handles_errors,
    out,
    record_change,
)
from connector.cli.render import fit, folded, utc_time
from connector.enquiries.entry import utc_iso
from connector.logs import configure_logging
from connector.settings.config import load_settings
from connector.trail.entry import Action

if TYPE_CHECKING:
    from connector.notify.outbox import State


@click.command("list")
@click.option("--pending", "state", flag_value="pending", help="Only those not yet delivered.")
@click.option("--dead", "state", flag_value="dead", help="Only those given up on.")
@click.option("--delivered", "state", flag_value="delivered")
@click.option(
    "--limit", type=click.IntRange(1), default=200, show_default=True, help="The newest N."
)
@click.option("--json", "as_json", is_flag=True)
@config_option
@handles_errors
def notifications_list(state: State | None, limit: int, as_json: bool, config_path: Path) -> None:
    """Notices with their state, attempts and last error."""
    from connector.notify.outbox import Outbox

    settings = load_settings(config_path)
    with closing(Outbox.open(settings.enquiries_url)) as box:
        rows = box.list(state=state, limit=limit)
        counts = box.counts()
    if as_json:
        _json(
            [
                {
                    "id": r.notice.id,
                    "channel": r.notice.channel,
                    "kind": r.notice.kind,
                    "enquiry": r.notice.enquiry,
                    "created_at": utc_iso(r.notice.created_at),
                    "state": r.state,
                    "attempts": r.attempts,
                    "next_attempt_at": utc_iso(r.next_attempt_at) if r.state == "pending" else None,
                    "last_attempt_at": utc_iso(r.last_attempt_at) if r.last_attempt_at else None,
                    "delivered_at": utc_iso(r.delivered_at) if r.delivered_at else None,
                    "last_error": r.last_error,
                    "body": r.notice.body,
                }
                for r in rows
            ]
        )
        return
    table = folded(
        Table(
            "id",
            "created (UTC)",
            "channel",
            "kind",
            "enquiry",
            "state",
            "attempts",
            "next / last error",
        )
    )
    for r in rows:
        style = {"dead": "red", "pending": "yellow"}.get(r.state, "green")
        detail = f"next {utc_iso(r.next_attempt_at)[11:19]}" if r.state == "pending" else ""
        if r.last_error:
            detail = f"{detail} {r.last_error}".strip()
        table.add_row(
            r.notice.id,
            utc_time(r.notice.created_at),
            r.notice.channel,
            r.notice.kind,
            r.notice.enquiry or "-",
            f"[{style}]{r.state}[/]",
            str(r.attempts),
            detail,
        )
    out.print(fit(table, out) if rows else "no notices")
    out.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "the outbox is empty")


@click.command("retry")
@click.argument("notice_ids", nargs=-1)
@click.option("--dead", "all_dead", is_flag=True, help="Every dead notice.")
@config_option
@handles_errors
def notifications_retry(notice_ids: tuple[str, ...], all_dead: bool, config_path: Path) -> None:
    """Make notices (or every dead one) due again; a running node delivers them."""
    from connector.notify.outbox import Outbox

    if bool(notice_ids) == all_dead:
        _fail("give notice ids or --dead")
    settings = load_settings(config_path)
    with closing(Outbox.open(settings.enquiries_url)) as box:
        n = box.retry(None if all_dead else list(notice_ids), now=time.time())
    if n:
        target = "dead" if all_dead else ",".join(notice_ids)
        record_change(settings, Action.NOTICES_RETRIED, target, notices=n)
    out.print(f"{n} notice(s) due again")
    if not n:
        raise SystemExit(1)


@click.command("test")
@click.argument("channel")
@config_option
@handles_errors
def notifications_test(channel: str, config_path: Path) -> None:
    """Send a test notice through CHANNEL now and say whether it arrived."""
    from connector.node.check import send_test_notice
    from connector.notify.channels import DeliveryError

    settings = _settings(config_path)
    config = settings.notifications.channels.get(channel)
    if config is not None and config.type == "log":
        # A log channel writes to the log of whoever sends: here, this terminal, as the
        # node writes its notices to its journal.
        configure_logging(fmt="auto", level="info")
    try:
        notice = asyncio.run(send_test_notice(settings, channel, env=os.environ, clock=time.time))
    except DeliveryError as exc:
        _fail(f"{channel}: {exc}", 1)
        return
    out.print(f"{channel}: delivered test notice {notice.id}")
