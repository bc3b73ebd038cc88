"""`ncb-connector maintenance`: the switch that stops a running node answering peers."""

from __future__ import annotations

import getpass
import os
import time
from pathlib import Path

import click

from connector.cli.common import (
    _json,
    config_option,
    handles_errors,
    json_option,
    out,
    record_change,
)
from connector.cli.render import utc_time
from connector.enquiries.entry import utc_iso
from connector.node.maintenance import (
    MAINTENANCE_FILE,
    RETRY_AFTER_S,
    Maintenance,
    read_maintenance,
    switch_off,
    switch_on,
)
from connector.settings.config import Settings, load_settings
from connector.trail.entry import Action


def _path(settings: Settings) -> Path:
    return settings.state_path(MAINTENANCE_FILE)


def _when(settings: Settings) -> str:
    """How soon the running node follows the switch."""
    if settings.policy_reload_interval > 0:
        return f"within {settings.policy_reload_interval:g} s"
    return "at the next `systemctl reload` (policy_reload_interval is 0)"


@click.command("on")
@click.option("--reason", help="Why, for whoever looks at /readyz or `maintenance status`.")
@config_option
@handles_errors
def maintenance_on(reason: str | None, config_path: Path) -> None:
    """Switch maintenance on: peers get 503 and /readyz is 503 within seconds.

    The running node answers every peer request 503 with Retry-After (nothing is read,
    logged or lost: a peer asks again later), /readyz says `maintenance`, and agencies can
    still ask abroad. Logged as maintenance_started, with your login."""
    settings = load_settings(config_path)
    path = _path(settings)
    switch_on(
        path,
        Maintenance(
            since=time.time(),
            login=getpass.getuser(),
            sudo_user=os.environ.get("SUDO_USER"),
            reason=reason,
        ),
    )
    record_change(settings, Action.MAINTENANCE_ON, settings.node, reason=reason)
    out.print(
        f"maintenance on ({path}): peers get 503, Retry-After {RETRY_AFTER_S} s, {_when(settings)}"
    )


@click.command("off")
@config_option
@handles_errors
def maintenance_off(config_path: Path) -> None:
    """Switch maintenance off: the node answers peers again."""
    settings = load_settings(config_path)
    if switch_off(_path(settings)):
        record_change(settings, Action.MAINTENANCE_OFF, settings.node)
        out.print(f"maintenance off: the node answers peers again {_when(settings)}")
    else:
        out.print("maintenance was off")


@click.command("status")
@config_option
@json_option
@handles_errors
def maintenance_status(config_path: Path, as_json: bool) -> None:
    """Whether maintenance is on, since when, by whom and why (exit 1 when it is on)."""
    found = read_maintenance(_path(load_settings(config_path)))
    if as_json:
        _json(
            {
                "on": found is not None,
                "since": None if found is None else utc_iso(found.since),
                "login": None if found is None else found.login,
                "sudo_user": None if found is None else found.sudo_user,
                "reason": None if found is None else found.reason,
            }
        )
    elif found is None:
        out.print("maintenance is off")
    else:
        who = found.login if found.sudo_user is None else f"{found.sudo_user} (as {found.login})"
        why = f": {found.reason}" if found.reason else ""
        out.print(f"maintenance is on since {utc_time(found.since)} UTC, by {who}{why}")
    if found is not None:
        raise SystemExit(1)
