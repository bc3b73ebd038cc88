"""`ncb-connector init` and `run`: creating a node and serving it."""

from __future__ import annotations

import asyncio
import functools
import getpass
import os
from pathlib import Path

import click

from connector.cli.common import _settings, config_option, handles_errors, out, record_change
from connector.settings.config import load_settings
from connector.trail.entry import Action


@click.command()
@click.option("--node", required=True, help="Node id: ISO 3166-1 alpha-2, e.g. FR or FR-2.")
@click.option("--dir", "directory", required=True, type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Peer listener address.")
@click.option("--peer-port", default=8443, show_default=True, type=click.IntRange(0, 65535))
@click.option("--local-port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the databases live (e.g. /var/lib/ncb-connector); default: --dir.",
)
@handles_errors
def init(
    node: str, directory: Path, host: str, peer_port: int, local_port: int, state_dir: Path | None
) -> None:
    """Create a node: config, Ed25519 key, TLS certificate, empty peers, default-deny policy."""
    from connector.node.init import init_node

    paths = init_node(
        directory,
        node=node,
        host=host,
        peer_port=peer_port,
        local_port=local_port,
        state_dir=state_dir,
    )
    # The trail's first entry: who made the node, and when.
    settings = load_settings(paths.config)
    record_change(settings, Action.NODE_INITIALIZED, settings.node, config=str(paths.config))
    out.print(f"Node [bold]{node}[/] created in {directory}")
    out.print(
        f"  config    {paths.config}\n  key       {paths.key} (mode 0600)\n"
        f"  tls       {paths.tls_cert}\n  peers     {paths.peers}\n"
        f"  policies  {paths.policies}/ (default deny)"
    )
    out.print(f"Next: ncb-connector keys show --config {paths.config}")


@click.command()
@config_option
@click.option(
    "--new-log",
    is_flag=True,
    help="Start although the enquiry log is missing, empty or not the one this node wrote: "
    "a new log begins. Recorded, with your login, in the journal and the kept state.",
)
@handles_errors
def run(config_path: Path, new_log: bool) -> None:
    """Serve the peer API and the local API until SIGTERM (SIGHUP reloads)."""
    from connector.enquiries.continuity import Admin
    from connector.node.node import Node
    from connector.node.sdnotify import SystemdNotifier
    from connector.node.service import serve

    node = Node.from_settings(_settings(config_path, service=True))
    admin = (
        Admin(login=getpass.getuser(), sudo_user=os.environ.get("SUDO_USER")) if new_log else None
    )
    asyncio.run(
        serve(
            node,
            notifier=SystemdNotifier.from_env(os.environ),
            new_log=admin,
            reread=functools.partial(load_settings, config_path),
            config=config_path,
        )
    )
