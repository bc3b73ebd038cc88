"""`ncb-connector keys`: the node's keys and certificates, to read out to peers and to rotate."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from connector.cli.common import _json, config_option, handles_errors, record_change
from connector.settings.config import Settings, load_settings
from connector.trail.entry import Action

if TYPE_CHECKING:
    from connector.node.keyring import Published
    from connector.node.rotation import Started


def _published(p: Published, name: str) -> dict[str, Any]:
    from connector.node.keyring import expiry

    return {
        name: p.name,
        "state": p.state,
        "activate_at": expiry(p.activate_at),
        "not_after": expiry(p.not_after),
    }


@click.command("show")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def keys_show(config_path: Path, as_json: bool) -> None:
    """Print the public JWK, its RFC 7638 thumbprint and the TLS certificate fingerprint in
    force, and during a rotation the next and retiring keys and certificates with their
    dates.

    \b
    --json: {"node", "url", "jwk", "thumbprint", "tls_fingerprint", "certificate_expires",
    "keys": [{"kid", "state", "activate_at", "not_after"}],
    "certificates": [{"fingerprint", "state", "activate_at", "not_after"}]}; state is
    "current", "next" (published, not yet in force) or "retiring"; times ISO 8601 UTC or null.
    """
    from connector.node.keyring import expiry
    from connector.node.rotation import keyring_now

    settings = load_settings(config_path)
    ring = keyring_now(settings, now=time.time())
    jwk = ring.signing.public.jwk()
    if as_json:
        _json(
            {
                "node": settings.node,
                "jwk": jwk,
                "thumbprint": ring.signing.public.kid,
                "tls_fingerprint": ring.certificate.fingerprint,
                "url": settings.peer_url,
                "certificate_expires": expiry(ring.certificate.not_after),
                "keys": [_published(p, "kid") for p in ring.keys],
                "certificates": [_published(p, "fingerprint") for p in ring.certificates],
            }
        )
        return
    # Plain lines, never wrapped or styled: these values are read out over the telephone.
    for label, value in (
        ("node", settings.node),
        ("url", settings.peer_url),
        ("jwk", orjson.dumps(jwk).decode()),
        ("thumbprint", ring.signing.public.kid),
        ("tls fingerprint", ring.certificate.fingerprint),
        ("tls expires", expiry(ring.certificate.not_after)),
    ):
        click.echo(f"{label:<17}{value}")
    if len(ring.keys) + len(ring.certificates) > 2:
        click.echo("rotation:")
        for what, items in (("key", ring.keys), ("tls", ring.certificates)):
            for p in items:
                when = (
                    f"in force from {expiry(p.activate_at)}"
                    if p.activate_at
                    else f"until {expiry(p.not_after)}"
                    if p.not_after
                    else ""
                )
                click.echo(f"  {what:<4}{p.state:<9}{p.name}  {when}".rstrip())


def _record(settings: Settings, started: Started) -> None:
    r = started.rotation
    record_change(
        settings,
        Action.KEY_ROTATED if started.kind == "key" else Action.CERTIFICATE_RENEWED,
        settings.node,
        old=r.old,
        new=r.new,
        activate_at=int(r.activate_at),
        not_after=int(r.not_after),
        activated=started.activated,
        tidied=list(started.tidied),
    )


def _report(started: Started, as_json: bool) -> None:
    from connector.node.keyring import expiry

    r = started.rotation
    if as_json:
        _json(
            {
                "kind": started.kind,
                "old": r.old,
                "new": r.new,
                "activate_at": expiry(r.activate_at),
                "not_after": expiry(r.not_after),
                "activated": started.activated,
                "tidied": list(started.tidied),
            }
        )
        return
    what = "key" if started.kind == "key" else "certificate"
    for kind in started.tidied:
        what = "key" if kind == "key" else "certificate"
        click.echo(
            f"the last {what} rotation is over: its new {what} now in the file connector.yaml "
            f"names, the retired {what}'s private key deleted"
        )
    verb = (
        "in force now" if started.activated else f"published; in force from {expiry(r.activate_at)}"
    )
    click.echo(f"new {what} {r.new}\n  {verb}")
    click.echo(f"old {what} {r.old}\n  accepted by peers until {expiry(r.not_after)}")
    click.echo(
        "The running node publishes it within a second; each peer pins it at its next health "
        "check (`peers status` there shows it)."
    )


_ROTATION_HELP = """

\b
--json: {"kind": "key"|"tls", "old", "new", "activate_at", "not_after", "activated",
"tidied": [kinds of finished rotations whose files were tidied]}.
Exit status: 0 done; 2 a rotation is already under way, or a file cannot be read or
written (the message says which and what to do)."""


@click.command(
    "rotate",
    help=(
        "Make the next signing key and publish it, signed by the current key; the node signs "
        "with it after keys.activate_after_s (or at once with --activate, for a rotation "
        "already published) and peers accept the old key for keys.overlap_s more." + _ROTATION_HELP
    ),
)
@config_option
@click.option("--activate", is_flag=True, help="Bring the published next key into force now.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def keys_rotate(config_path: Path, activate: bool, as_json: bool) -> None:
    from connector.node.rotation import rotate_key

    settings = load_settings(config_path)
    started = rotate_key(settings, now=time.time(), activate=activate)
    _record(settings, started)
    _report(started, as_json)


@click.command(
    "renew-tls",
    help=(
        "Make the next TLS key and self-signed certificate for the same names and publish its "
        "fingerprint; the node presents it after keys.activate_after_s (or at once with "
        "--activate) without a restart, and peers accept the old one for keys.overlap_s more."
        + _ROTATION_HELP
    ),
)
@config_option
@click.option("--activate", is_flag=True, help="Present the published next certificate now.")
@click.option(
    "--days", type=click.IntRange(1, 3650), help="Validity (default keys.certificate_days)."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def keys_renew_tls(config_path: Path, activate: bool, days: int | None, as_json: bool) -> None:
    from connector.node.rotation import renew_tls

    settings = load_settings(config_path)
    started = renew_tls(settings, now=time.time(), activate=activate, days=days)
    _record(settings, started)
    _report(started, as_json)
