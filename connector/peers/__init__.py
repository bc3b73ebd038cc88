"""Peers: the trust store, the client that asks one peer, health checks, breakers, discovery."""
