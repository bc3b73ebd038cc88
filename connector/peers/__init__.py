"""Peers: the trust store, the outgoing client, fan-out and discovery."""
