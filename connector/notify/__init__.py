"""Notifications: which enquiries the NCB is told of, the outbox, the channels that tell it."""
