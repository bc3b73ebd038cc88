"""`ncb-connector config`: checking the node's configuration."""

from __future__ import annotations

from pathlib import Path

import click

from connector.cli.common import config_option, handles_errors, out
from connector.logs import configure_logging
from connector.settings.config import load_settings


@click.command("check")
@config_option
@handles_errors
def config_check(config_path: Path) -> None:
    """Validate connector.yaml, the key files, peers.yaml, sources.yaml and the policy
    directory."""
    from connector.node.service import Node
    from connector.sources.model import load_sources

    settings = load_settings(config_path)
    configure_logging(fmt="auto", level="critical")  # the outcome is printed, not logged
    node = Node.from_settings(settings)
    node.load_live()
    node.ssl_context()
    sources = load_sources(settings.path(settings.sources_file)).sources
    out.print(
        f"ok: node {settings.node}, {len(node.live.trust.peers)} peer(s), "
        f"{len(sources)} source(s), policy {node.live.policy.digest}"
    )
