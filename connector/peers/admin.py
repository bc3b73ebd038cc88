"""Changing the trust store on an admin's command: add (with --fetch confirmation), remove."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson

from connector.crypto.jws import PublicKey
from connector.errors import TrustStoreError
from connector.peers.client import FetchedIdentity, fetch_identity
from connector.peers.rotations import review
from connector.peers.trust import (
    Peer,
    PinnedKey,
    load_trust_store,
    normalise_fingerprint,
    save_trust_store,
)
from connector.vocabulary import is_node_id, node_id_problem


async def _fetch(url: str, pin: str | None) -> FetchedIdentity:
    async with aiohttp.ClientSession() as session:
        return await fetch_identity(session, url, pin=pin)


def add_peer(
    peers_file: Path,
    *,
    peer_id: str,
    url: str,
    jwk_text: str | None,
    fetch: bool,
    tls_fingerprint: str | None,
    insecure: bool,
    confirm: Callable[[str], bool],
    update: bool = False,
) -> Peer | None:
    """Pin a peer. With fetch, the admin sees the key thumbprint and TLS fingerprint first and
    confirms them (compare them with what the peer's NCB gave you by another channel). With
    update, a peer already pinned is pinned anew (`update_peer`)."""
    if not is_node_id(peer_id):
        raise TrustStoreError(node_id_problem(peer_id, groups_allowed=False))
    if not url.startswith(("https://", "http://")):
        raise TrustStoreError("--url must start with https:// (or http:// with --insecure)")
    if url.startswith("http://") and not insecure:
        raise TrustStoreError("a plain http:// URL needs --insecure")
    known = load_trust_store(peers_file).get(peer_id)
    if known is not None and not update:
        # Before any fetch or prompt: an admin re-adding a peer should not confirm a key first.
        raise TrustStoreError(
            f"{peer_id} is already trusted (at {known.url}); to pin the key or certificate it "
            f"rotated to, add --update (with --fetch); to pin it from scratch, "
            f"`ncb-connector peers remove {peer_id}` first"
        )
    if update:
        if known is None:
            raise TrustStoreError(f"{peer_id} is not trusted yet: leave out --update")
        if not fetch:
            raise TrustStoreError("--update reads what to pin from the peer: give --fetch")
        return update_peer(peers_file, known, url=url, confirm=confirm)
    fp = None
    if tls_fingerprint:
        try:
            fp = normalise_fingerprint(tls_fingerprint)
        except ValueError as exc:
            raise TrustStoreError(f"--tls-fingerprint: {exc}") from exc
    if fetch:
        fetched = asyncio.run(_fetch(url, fp))
        if fetched.claims.iss != peer_id:
            raise TrustStoreError(f"{url} says it is {fetched.claims.iss}, not {peer_id}")
        key = fetched.key
        fp = fp or fetched.tls_fingerprint
        claimed = fetched.claims.tls_fingerprint
        if claimed and fp and normalise_fingerprint(claimed) != fp:
            raise TrustStoreError(
                f"{url} presents certificate {fp} but its signed identity "
                f"names {claimed}; not pinning"
            )
        summary = (
            f"peer {peer_id} at {url}\n  key thumbprint   {key.kid}\n"
            f"  tls fingerprint  {fp or '(plain http)'}"
        )
        if not confirm(summary):
            return None
    else:
        assert jwk_text is not None
        try:
            key = PublicKey.from_jwk(orjson.loads(jwk_text))
        except (orjson.JSONDecodeError, ValueError, AttributeError) as exc:
            raise TrustStoreError(f"--key: {exc}") from exc
    if url.startswith("https://") and fp is None:
        raise TrustStoreError("an https peer needs --tls-fingerprint (or --fetch)")
    store = load_trust_store(peers_file)
    if peer_id in store.peers:  # added meanwhile, by another admin's command
        raise TrustStoreError(f"{peer_id} is already trusted; remove it first to re-pin")
    peer = Peer(
        id=peer_id,
        url=url.rstrip("/"),
        keys=(PinnedKey(key=key),),
        tls_fingerprint=fp,
        insecure=insecure,
    )
    save_trust_store(peers_file, store.with_peer(peer))
    return peer


def remove_peer(peers_file: Path, peer_id: str) -> bool:
    store = load_trust_store(peers_file)
    if peer_id not in store.peers:
        return False
    save_trust_store(peers_file, store.without(peer_id))
    return True


def update_peer(
    peers_file: Path, known: Peer, *, url: str, confirm: Callable[[str], bool]
) -> Peer | None:
    """Pin anew the key and certificate a known peer presents now. What a rotation statement
    signed by a key we pin vouches for is said so, and the old key and certificate stay
    accepted until their not_after; anything else is new trust, to be confirmed out of band
    like a first `add`, and replaces the old pins."""
    fetched = asyncio.run(_fetch(url, None))
    if fetched.claims.iss != known.id:
        raise TrustStoreError(f"{url} says it is {fetched.claims.iss}, not {known.id}")
    claimed = fetched.claims.tls_fingerprint
    fp = fetched.tls_fingerprint
    if claimed and fp and normalise_fingerprint(claimed) != fp:
        raise TrustStoreError(
            f"{url} presents certificate {fp} but its signed identity names {claimed}; not pinning"
        )
    now = time.time()
    reviewed = review(known, fetched.claims.rotations, now=now)
    when = datetime.fromtimestamp(now, UTC)
    key_vouched = reviewed.peer.key_by_kid(fetched.key.kid) is not None
    tls_vouched = fp is None or fp in reviewed.peer.tls_fingerprints(when)
    lines = [f"peer {known.id} at {url}"]
    old_kids = ", ".join(k.key.kid for k in known.keys)
    for label, old, new, vouched in (
        ("key thumbprint  ", old_kids, fetched.key.kid, key_vouched),
        (
            "tls fingerprint ",
            known.tls_fingerprint or "(plain http)",
            fp or "(plain http)",
            tls_vouched,
        ),
    ):
        if new in old:
            lines.append(f"  {label} {new} (pinned already)")
        elif vouched:
            lines.append(
                f"  {label} {old} -> {new}\n    announced by a statement a pinned key signed"
            )
        else:
            lines.append(
                f"  {label} {old} -> {new}\n    NOT vouched for by any pinned key: compare it "
                "with the peer's NCB by another channel"
            )
    for refused in reviewed.refused:
        lines.append(f"  a rotation statement was refused: {refused.reason}")
    if not confirm("\n".join(lines)):
        return None
    if key_vouched and tls_vouched:
        peer = replace(reviewed.peer, url=url.rstrip("/"))
    else:
        peer = Peer(
            id=known.id,
            url=url.rstrip("/"),
            keys=(PinnedKey(key=fetched.key),),
            tls_fingerprint=fp,
            insecure=known.insecure,
        )
    store = load_trust_store(peers_file)
    if known.id not in store.peers:  # removed meanwhile, by another admin's command
        raise TrustStoreError(f"{known.id} was removed meanwhile; add it without --update")
    save_trust_store(peers_file, store.with_peer(peer))
    return peer
