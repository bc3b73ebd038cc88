"""`ncb-connector approvals`: releases waiting for an operator, shown and decided."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from connector.cli.common import _fail, _json, _settings, config_option, handles_errors, out
from connector.cli.render import approval_lines, approvals_table, awaited_table

if TYPE_CHECKING:
    from connector.approvals.model import State
    from connector.approvals.service import Approvals
    from connector.settings.config import Settings

# Exit statuses of approve and deny (their --help and docs/operations.md say the same).
EXIT_DECIDED = 0
EXIT_ALREADY_DECIDED = 1
EXIT_BAD_INPUT = 2

_STATES = ("pending", "approved", "denied", "expired", "all")


@click.command("list")
@click.option(
    "--state",
    type=click.Choice(_STATES),
    default="pending",
    show_default=True,
    help="Which approvals: those waiting, those decided one way, or all.",
)
@click.option("--limit", type=click.IntRange(1), default=200, show_default=True, help="At most N.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array, each as `show --json`.")
@config_option
@handles_errors
def approvals_list(state: str, limit: int, as_json: bool, config_path: Path) -> None:
    """Releases waiting for an operator, or decided ones (--state).

    Pending ones the first to expire first, decided ones newest first."""
    settings = _settings(config_path)
    with _service(settings) as approvals:
        rows = approvals.list(state=None if state == "all" else _state(state), limit=limit)
    if as_json:
        _json([a.to_json() for a in rows])
        return
    out.print(approvals_table(rows) if rows else f"no approvals ({state})")


@click.command("show")
@click.argument("approval_id")
@click.option("--json", "as_json", is_flag=True, help="The approval as a JSON object.")
@config_option
@handles_errors
def approvals_show(approval_id: str, as_json: bool, config_path: Path) -> None:
    """One approval in full: who asked, what, the records held, the rule.

    Also why they asked (purpose, case) and the decision once made. Exit 2 for an unknown
    id."""
    settings = _settings(config_path)
    with _service(settings) as approvals:
        approval = approvals.get(approval_id)
    if as_json:
        _json(approval.to_json())
        return
    for line in approval_lines(approval):
        out.print(line, soft_wrap=True)


@click.command("awaited")
@click.option(
    "--state",
    type=click.Choice(("pending", "released", "denied", "expired", "unknown", "all")),
    default="pending",
    show_default=True,
    help="Which: still waited for, or ended one way (unknown: the peer no longer knows it, "
    "or stopped answering a day after its deadline).",
)
@click.option("--limit", type=click.IntRange(1), default=200, show_default=True, help="At most N.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array (docs/operations.md §17).")
@config_option
@handles_errors
def approvals_awaited(state: str, limit: int, as_json: bool, config_path: Path) -> None:
    """Releases this node waits for from peers' operators: our agencies' checks answered
    pending.

    Each with the peer, its approval id, the agency and its check, since when, when it
    expires, and its state; the first to expire first. Exit 0, also when none waits."""
    from connector.approvals.awaiting import awaited_releases
    from connector.enquiries.log import EnquiryLog

    settings = _settings(config_path)
    with closing(EnquiryLog.open(settings.enquiries_url)) as log:
        rows = awaited_releases(log, state=None if state == "all" else state, limit=limit)
    if as_json:
        _json([a.listed() for a in rows])
        return
    out.print(awaited_table(rows) if rows else f"no releases awaited from peers ({state})")


def _decide_command(verdict: str) -> click.Command:
    short = (
        "Release the held records to the peer that asked, saying why."
        if verdict == "approve"
        else "Refuse the release, saying why; the peer gets the checks denied."
    )
    what = (
        "the peer that asked fetches the records at the level its rule gives"
        if verdict == "approve"
        else "the peer that asked gets the held checks denied (reason approval_denied)"
    )

    @click.command(verdict)
    @click.argument("approval_id")
    @click.option(
        "--reason",
        required=True,
        help="Why, in a sentence: kept in the enquiry log and the admin audit trail.",
    )
    @click.option("--json", "as_json", is_flag=True, help="The decided approval, as `show`.")
    @config_option
    @handles_errors
    def decide(approval_id: str, reason: str, as_json: bool, config_path: Path) -> None:
        from connector.errors import ApprovalDecided
        from connector.trail.entry import os_actor

        settings = _settings(config_path)
        operator = os_actor(euid=os.geteuid(), environ=os.environ)
        with _service(settings) as approvals:
            act = approvals.approve if verdict == "approve" else approvals.deny
            try:
                decided = asyncio.run(act(approval_id, operator=operator, reason=reason))
            except ApprovalDecided as exc:
                _fail(exc.detail, EXIT_ALREADY_DECIDED)
                return
        if as_json:
            _json(decided.to_json())
            return
        out.print(f"{decided.id} {decided.state} by {operator.shown}: {what}")

    decide.help = (
        f"{short}\n\nOnce decided, {what}. The decision is recorded in the "
        "enquiry log and the admin audit trail with the OS user who ran this. Exit 0 when "
        "decided, 1 when it was decided already (or expired), 2 for an unknown id or a "
        "missing reason."
    )
    return decide


approvals_approve = _decide_command("approve")
approvals_deny = _decide_command("deny")


def _state(name: str) -> State:
    from connector.approvals.model import STATES

    for s in STATES:
        if s == name:
            return s
    raise click.BadParameter(name)


@contextmanager
def _service(settings: Settings) -> Iterator[Approvals]:
    """The node's approvals service on its enquiry log, opened for one command."""
    from connector.approvals.service import Approvals
    from connector.enquiries.log import EnquiryLog
    from connector.trail.entry import TRAIL_FILE

    with closing(EnquiryLog.open(settings.enquiries_url)) as log:
        yield Approvals(
            node=settings.node,
            enquiry_log=log,
            trail=settings.state_path(TRAIL_FILE),
            clock=time.time,
        )
