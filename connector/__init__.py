"""ncb-connector: a National Central Bureau's node in a peer-to-peer police information network."""

from __future__ import annotations

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
