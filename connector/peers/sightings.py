"""Nodes the running node saw on the LAN, each with its standing in peers.yaml as it is now."""

from __future__ import annotations

from dataclasses import replace

from connector.peers.discovery import Sighting, load_discovered, standing
from connector.peers.trust import load_trust_store
from connector.settings.config import Settings


def discovered(settings: Settings) -> list[Sighting]:
    """The node wrote what it saw; whether each is trusted is read now, since an admin may
    have pinned one since."""
    trust = load_trust_store(settings.path(settings.peers_file))
    seen = load_discovered(settings.state_path(settings.discovery.discovered_file))
    return [replace(s, standing=standing(trust, s.node, s.kid)) for s in seen]
