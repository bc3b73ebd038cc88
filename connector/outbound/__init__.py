"""Asking peers: outbound policy, signed queries, verified answers, the fan-out."""
