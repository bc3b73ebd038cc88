"""The admin audit trail: every change an admin makes, by whom, in a hash-chained file."""
