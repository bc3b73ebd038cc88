"""`ncb-connector agencies`: the national agencies that ask through this node, and their tokens."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.table import Table

from connector.cli.common import (
    _json,
    config_option,
    enum_values,
    err,
    handles_errors,
    out,
    record_change,
)
from connector.cli.render import fit, utc_time
from connector.enquiries.entry import utc_iso
from connector.settings.config import Settings, load_settings
from connector.trail.entry import Action
from connector.vocabulary import AgencyKind


def _agencies_file(settings: Settings) -> Path:
    return settings.state_path(settings.federation.agencies_file)


@click.command("add")
@click.argument("agency_id")
@click.option(
    "--kind",
    required=True,
    type=click.Choice(enum_values(AgencyKind)),
    help="Sent to peers as the query's agency_kind.",
)
@config_option
@handles_errors
def agencies_add(agency_id: str, kind: str, config_path: Path) -> None:
    """Register an agency and print its API token, once (only its hash is kept)."""
    from connector.outbound.agencies import add_agency

    settings = load_settings(config_path)
    agency, token = add_agency(
        _agencies_file(settings), agency_id, AgencyKind(kind), now=time.time()
    )
    record_change(settings, Action.AGENCY_ADDED, agency.id, kind=agency.kind.value)
    err.print(
        f"agency {agency.id} ({agency.kind.value}) added. Its token follows; it is "
        "shown only now. Outbound rules name the agency as "
        f"'agency: {agency.id}'."
    )
    click.echo(token)


@click.command("rotate")
@click.argument("agency_id")
@config_option
@handles_errors
def agencies_rotate(agency_id: str, config_path: Path) -> None:
    """Give an agency a new token; the old one stops working at once."""
    from connector.outbound.agencies import rotate_agency

    settings = load_settings(config_path)
    agency, token = rotate_agency(_agencies_file(settings), agency_id, now=time.time())
    record_change(settings, Action.AGENCY_ROTATED, agency.id)
    err.print(f"agency {agency.id}: new token (the old one no longer works):")
    click.echo(token)


@click.command("disable")
@click.argument("agency_id")
@config_option
@handles_errors
def agencies_disable(agency_id: str, config_path: Path) -> None:
    """Refuse an agency's token from its next request on (a running node re-reads the file)."""
    from connector.outbound.agencies import set_agency_enabled

    settings = load_settings(config_path)
    set_agency_enabled(_agencies_file(settings), agency_id, False, now=time.time())
    record_change(settings, Action.AGENCY_DISABLED, agency_id)
    out.print(f"agency {agency_id} disabled")


@click.command("enable")
@click.argument("agency_id")
@config_option
@handles_errors
def agencies_enable(agency_id: str, config_path: Path) -> None:
    """Accept a disabled agency's token again."""
    from connector.outbound.agencies import set_agency_enabled

    settings = load_settings(config_path)
    set_agency_enabled(_agencies_file(settings), agency_id, True, now=time.time())
    record_change(settings, Action.AGENCY_ENABLED, agency_id)
    out.print(f"agency {agency_id} enabled")


@click.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def agencies_list(config_path: Path, as_json: bool) -> None:
    """Agencies, their kinds and state (tokens are never shown again)."""
    from connector.outbound.agencies import load_agencies

    settings = load_settings(config_path)
    rows = sorted(load_agencies(_agencies_file(settings)).values(), key=lambda a: a.id)

    def when(ts: float | None) -> str | None:
        return utc_time(ts) if ts else None

    def iso(ts: float | None) -> str | None:
        return utc_iso(ts) if ts else None  # scripts read ISO 8601, as every --json gives it

    if as_json:
        _json(
            [
                {
                    "id": a.id,
                    "kind": a.kind.value,
                    "enabled": a.enabled,
                    "created_at": iso(a.created_at),
                    "rotated_at": iso(a.rotated_at),
                    "disabled_at": iso(a.disabled_at),
                }
                for a in rows
            ]
        )
        return
    table = Table("agency", "kind", "state", "created (UTC)", "token rotated")
    for a in rows:
        table.add_row(
            a.id,
            a.kind.value,
            "enabled" if a.enabled else "[red]disabled[/]",
            when(a.created_at) or "-",
            when(a.rotated_at) or "-",
        )
    out.print(fit(table, out) if rows else "no agencies")
