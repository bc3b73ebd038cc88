"""`ncb-connector config`: checking the node's configuration."""

from __future__ import annotations

from pathlib import Path

import click

from connector.cli.common import (
    EXIT_BAD_INPUT,
    _json,
    config_option,
    error_document,
    handles_errors,
    json_option,
    out,
)
from connector.errors import ConnectorError
from connector.logs import configure_logging
from connector.settings.config import load_settings


@click.command("check")
@config_option
@json_option
@handles_errors
def config_check(config_path: Path, as_json: bool) -> None:
    """Validate connector.yaml, the key files, peers.yaml, sources.yaml, the agencies file
    and the policy directory, together, as a starting or reloading node loads them."""
    from connector.node.check import check_config

    configure_logging(fmt="auto", level="critical")  # the outcome is printed, not logged
    try:
        checked = check_config(load_settings(config_path))
    except ConnectorError as exc:
        if not as_json:
            raise
        lines = exc.extra.get("errors")
        found = lines if isinstance(lines, list) else [exc.detail]
        failed = error_document(exc.detail, code=exc.code, details=found)
        _json({"ok": False, "errors": found, **failed})
        raise SystemExit(EXIT_BAD_INPUT) from exc
    if as_json:
        _json(
            {
                "ok": True,
                "node": checked.node,
                "peers": checked.peers,
                "sources": checked.sources,
                "agencies": checked.agencies,
                "policy_digest": checked.policy_digest,
            }
        )
        return
    out.print(
        f"ok: node {checked.node}, {checked.peers} peer(s), "
        f"{checked.sources} source(s), {checked.agencies} agency(ies), "
        f"policy {checked.policy_digest}"
    )
