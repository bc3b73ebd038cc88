"""`ncb-connector keys`: the node's public key and TLS fingerprint, to read out to peers."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from connector.cli.common import _json, config_option, handles_errors
from connector.settings.config import load_settings


@click.command("show")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def keys_show(config_path: Path, as_json: bool) -> None:
    """Print the public JWK, its RFC 7638 thumbprint and the TLS certificate fingerprint."""
    from connector.node.node import Node

    node = Node.from_settings(load_settings(config_path))
    jwk = node.signer.public.jwk()
    if as_json:
        _json(
            {
                "node": node.settings.node,
                "jwk": jwk,
                "thumbprint": node.signer.kid,
                "tls_fingerprint": node.tls_fingerprint,
                "url": node.settings.peer_url,
            }
        )
        return
    # Plain lines, never wrapped or styled: these values are read out over the telephone.
    for label, value in (
        ("node", node.settings.node),
        ("url", node.settings.peer_url),
        ("jwk", orjson.dumps(jwk).decode()),
        ("thumbprint", node.signer.kid),
        ("tls fingerprint", node.tls_fingerprint),
    ):
        click.echo(f"{label:<17}{value}")
