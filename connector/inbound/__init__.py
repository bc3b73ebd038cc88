"""Answering peers: a verified query decided by policy, matched, logged and signed."""
