"""`peers add`: a peer pinned as an admin asks, and the policy rules it inherits on the way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from connector.errors import TrustStoreError
from connector.peers.admin import add_peer
from connector.peers.trust import Peer
from connector.policy import check_policy
from connector.policy.analysis import rules_by_country
from connector.settings.config import Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class Pinned:
    peer: Peer
    inherited: tuple[str, ...]  # rules that name the peer's country, and so apply to it too


def pin_peer(
    settings: Settings,
    *,
    peer_id: str,
    url: str,
    jwk_text: str | None,
    fetch: bool,
    tls_fingerprint: str | None,
    insecure: bool,
    confirm: Callable[[str], bool],
    update: bool = False,
) -> Pinned | None:
    """Pin a peer in the node's peers.yaml (see add_peer; None when the admin declined what
    --fetch found), with the rules a second node of a country gets from the first."""
    if peer_id == settings.node:
        raise TrustStoreError(f"{peer_id} is this node itself")
    if bool(jwk_text) == fetch:
        raise TrustStoreError("give exactly one of --key JWK or --fetch")
    peer = add_peer(
        settings.path(settings.peers_file),
        peer_id=peer_id,
        url=url,
        jwk_text=jwk_text,
        fetch=fetch,
        tls_fingerprint=tls_fingerprint,
        insecure=insecure,
        confirm=confirm,
        update=update,
    )
    if peer is None:
        return None
    report = check_policy(settings.path(settings.policy_dir))
    inherited = rules_by_country(report.policy, peer.id) if report.policy else []
    return Pinned(peer=peer, inherited=tuple(inherited))
