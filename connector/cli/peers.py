"""`ncb-connector peers`: the trust store, the peers' health, nodes found on the LAN."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape
from rich.table import Table

from connector.cli.common import (
    _fail,
    _json,
    config_option,
    err,
    handles_errors,
    out,
    record_change,
)
from connector.cli.render import fit, folded, utc_time
from connector.enquiries.entry import utc_iso
from connector.settings.config import Settings, load_settings
from connector.trail.entry import Action

if TYPE_CHECKING:
    from connector.peers.health import PeerHealth
    from connector.peers.trust import PinnedKey


@click.command("add")
@click.argument("peer_id")
@click.option("--url", required=True)
@click.option("--key", "jwk_text", help="The peer's public JWK (JSON).")
@click.option("--fetch", is_flag=True, help="Read the key and fingerprint from the peer.")
@click.option("--tls-fingerprint", help="SHA-256 of the peer's TLS certificate.")
@click.option("--insecure", is_flag=True, help="Plain HTTP (tests and demos only).")
@click.option("--yes", is_flag=True, help="Pin what --fetch found without asking.")
@click.option(
    "--update",
    is_flag=True,
    help="The peer is trusted already: pin the key and certificate it presents now (after "
    "it rotated them), with --fetch.",
)
@config_option
@handles_errors
def peers_add(
    peer_id: str,
    url: str,
    jwk_text: str | None,
    fetch: bool,
    tls_fingerprint: str | None,
    insecure: bool,
    yes: bool,
    update: bool,
    config_path: Path,
) -> None:
    """Trust a peer: pin its key and TLS fingerprint.

    Exit status: 0 pinned; 1 not pinned (the question was answered no); 2 bad input, the
    peer unreachable, or already trusted without --update."""
    from connector.peers.pinning import pin_peer

    def confirm(summary: str) -> bool:
        click.echo(summary)
        return yes or click.confirm("Pin this key and fingerprint?", default=False)

    settings = load_settings(config_path)
    pinned = pin_peer(
        settings,
        peer_id=peer_id.upper(),
        url=url,
        jwk_text=jwk_text,
        fetch=fetch,
        tls_fingerprint=tls_fingerprint,
        insecure=insecure,
        confirm=confirm,
        update=update,
    )
    if pinned is None:
        _fail("not pinned", 1)
        return
    peer = pinned.peer
    record_change(
        settings,
        Action.PEER_UPDATED if update else Action.PEER_ADDED,
        peer.id,
        url=peer.url,
        keys=[k.key.kid for k in peer.keys],
        tls_fingerprint=peer.tls_fingerprint,
        insecure=peer.insecure,
    )
    click.echo(
        f"peer {peer.id} {'updated' if update else 'added'}: key {peer.keys[0].key.kid}, "
        f"tls {peer.tls_fingerprint or 'none (insecure)'}"
    )
    if pinned.inherited:
        click.echo(
            f"note: {peer.id} is a node of {peer.id[:2]}; these rules name "
            f"{peer.id[:2]} and so apply to it too: {', '.join(pinned.inherited)}"
        )
    out.print("A running node picks this up within its reload interval or on SIGHUP.")


@click.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def peers_list(config_path: Path, as_json: bool) -> None:
    """List trusted peers.

    \b
    --json: [{"id", "url", "keys": [kid…], "pinned_keys": [{"kid", "not_after"}],
    "tls_fingerprint", "retiring_tls_fingerprints": [{"fingerprint", "not_after"}],
    "insecure"}]; a key's not_after is null when it has none (a key retiring in a rotation
    has one)."""
    from connector.peers.trust import load_trust_store

    settings = load_settings(config_path)
    store = load_trust_store(settings.path(settings.peers_file))
    peers_sorted = sorted(store.peers.values(), key=lambda p: p.id)
    now = time.time()
    if as_json:
        _json(
            [
                {
                    "id": p.id,
                    "url": p.url,
                    "keys": [k.key.kid for k in p.keys],
                    "pinned_keys": [
                        {
                            "kid": k.key.kid,
                            "not_after": utc_iso(k.not_after.timestamp()) if k.not_after else None,
                        }
                        for k in p.keys
                    ],
                    "tls_fingerprint": p.tls_fingerprint,
                    # A certificate the peer renewed, accepted until its not_after.
                    "retiring_tls_fingerprints": [
                        {
                            "fingerprint": r.fingerprint,
                            "not_after": utc_iso(r.not_after.timestamp()),
                        }
                        for r in p.retiring_tls
                    ],
                    "insecure": p.insecure,
                }
                for p in peers_sorted
            ]
        )
        return
    table = folded(Table("id", "url", "key thumbprint(s)", "tls fingerprint"))
    for p in peers_sorted:
        fp = p.tls_fingerprint
        table.add_row(
            p.id,
            p.url,
            "\n".join(_key_state(k, now) for k in p.keys),
            "\n".join([fp, *(f"{r.fingerprint} (retiring)" for r in p.retiring_tls)])
            if fp
            else "[yellow]insecure (plain http)[/]",
        )
    out.print(fit(table, out) if peers_sorted else "no peers")


@click.command("remove")
@click.argument("peer_id")
@config_option
@handles_errors
def peers_remove(peer_id: str, config_path: Path) -> None:
    """Stop trusting a peer."""
    from connector.peers.admin import remove_peer

    settings = load_settings(config_path)
    peer_id = peer_id.upper()
    if not remove_peer(settings.path(settings.peers_file), peer_id):
        _fail(f"{peer_id} is not in the trust store", 1)
    record_change(settings, Action.PEER_REMOVED, peer_id)
    out.print(f"peer {peer_id} removed")


@click.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--probe",
    is_flag=True,
    help="Check every peer now, from this command, instead of showing the running node's "
    "last checks (which a verified answer also updates).",
)
@handles_errors
def peers_status(config_path: Path, as_json: bool, probe: bool) -> None:
    """Each peer's last health check by the running node: up or down, latency, key, TLS;
    and this node's own certificate when it ends within federation.key_expiry_warning_days.
    The table exits 1 when a peer is down; --json exits 0 and says so in `up`, and gives
    `own`: {"certificate_expires", "certificate_expiring"} (null when the keys cannot be
    read by this user)."""
    from connector.peers.health import load_health

    settings = load_settings(config_path)
    own = _own_expiry(settings)
    written_at: float | None
    if probe:
        written_at = time.time()
        rows = asyncio.run(_probe(settings, now=written_at))
    else:
        written_at, rows = load_health(settings.state_path(settings.federation.health_file))
    if as_json:
        _json(
            {
                "written_at": utc_iso(written_at) if written_at else None,
                "probed": probe,
                "peers": [_health_dict(r) for r in rows],
                "own": own,
            }
        )
        return
    if written_at is None:
        _fail(
            "no health checks yet: is the node running? (it checks every "
            f"{settings.federation.health_interval_s:g} s)",
            1,
        )
        return
    table = folded(
        Table(
            "peer",
            "state",
            "latency",
            "key",
            "tls",
            "key expires",
            "last up",
            "breaker",
            "problem",
            title=f"peer health {'probed' if probe else 'as of'} {utc_time(written_at)} UTC",
        )
    )

    def yes_no(v: bool | None) -> str:
        return "-" if v is None else ("[green]ok[/]" if v else "[red]MISMATCH[/]")

    for r in rows:
        expires = utc_iso(r.key_expires_at)[:10] if r.key_expires_at else "-"
        if r.key_expiring:
            expires = f"[yellow]{expires} soon[/]"
        table.add_row(
            r.peer,
            "[green]up[/]" if r.up else "[red]down[/]",
            "-" if r.latency_ms is None else f"{r.latency_ms:.0f} ms",
            yes_no(r.key_ok),
            yes_no(r.tls_ok),
            expires,
            utc_time(r.last_up_at) if r.last_up_at else "-",
            "-" if probe else r.breaker,  # the breakers are the node's, not this command's
            escape(r.error or ""),
        )
    out.print(fit(table, out) if rows else "no peers")
    if own is not None and own["certificate_expiring"]:
        out.print(
            f"[yellow]this node's TLS certificate ends {own['certificate_expires']}[/]: "
            "`ncb-connector keys renew-tls` (docs/operations.md §4.1)"
        )
    if any(not r.up for r in rows):
        raise SystemExit(1)


def _own_expiry(settings: Settings) -> dict[str, Any] | None:
    """When this node's certificate in force ends, and whether that is within the warning
    days: what the running node warns of (`own_certificate_expiring`)."""
    from connector.errors import ConfigError
    from connector.node.keyring import expiry
    from connector.node.rotation import keyring_now

    now = time.time()
    try:
        ends = keyring_now(settings, now=now).certificate.not_after
    except ConfigError:
        return None
    days = settings.federation.key_expiry_warning_days
    return {"certificate_expires": expiry(ends), "certificate_expiring": ends - now < days * 86_400}


async def _probe(settings: Settings, *, now: float) -> list[PeerHealth]:
    """Each peer checked now, as the node's health job checks it."""
    from connector.peers.client import peer_session
    from connector.peers.health import check_peer
    from connector.peers.trust import load_trust_store

    trust = load_trust_store(settings.path(settings.peers_file))
    peers = sorted(trust.peers.values(), key=lambda p: p.id)
    loop = asyncio.get_running_loop()
    async with peer_session() as session:
        return list(
            await asyncio.gather(
                *(
                    check_peer(
                        session,
                        p,
                        now=now,
                        timeout=settings.outgoing.timeout,
                        warn_days=settings.federation.key_expiry_warning_days,
                        monotonic=loop.time,
                    )
                    for p in peers
                )
            )
        )


def _health_dict(r: PeerHealth) -> dict[str, Any]:
    d = asdict(r)
    for key in ("checked_at", "last_up_at", "key_expires_at"):
        if d[key] is not None:
            d[key] = utc_iso(d[key])
    return d


@click.command("discovered")
@config_option
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def peers_discovered(config_path: Path, as_json: bool) -> None:
    """Nodes the running node found on the LAN (discovery.mdns): none is trusted by that."""
    from connector.peers.sightings import discovered

    settings = load_settings(config_path)
    rows = discovered(settings)
    if as_json:
        _json([{**asdict(s), "seen_at": utc_iso(s.seen_at)} for s in rows])
        return
    if not settings.discovery.mdns:
        err.print("discovery is off (discovery.mdns in connector.yaml)")
    table = folded(Table("node", "address", "key thumbprint", "protocol", "seen (UTC)", "standing"))
    label = {
        "known": "[green]trusted peer: address followed[/]",
        "key_mismatch": "[red]known id, unpinned key: ignored[/]",
        "unknown": "[yellow]not trusted[/]",
    }
    for s in rows:
        table.add_row(
            s.node,
            f"{s.host}:{s.port}",
            s.kid,
            s.protocol,
            utc_time(s.seen_at),
            label[s.standing],
        )
    out.print(fit(table, out) if rows else "nothing discovered")
    if any(s.standing == "unknown" for s in rows):
        out.print(
            "To trust one, confirm its key with its NCB, then: "
            "ncb-connector peers add ID --url https://HOST:PORT --fetch"
        )


def _key_state(key: PinnedKey, now: float) -> str:
    """A pinned key as an admin compares it: its thumbprint, and whether it retires."""
    if key.not_after is None:
        return key.key.kid
    until = utc_iso(key.not_after.timestamp())
    return f"{key.key.kid} ({'retired' if now > key.not_after.timestamp() else 'retiring'} {until})"
