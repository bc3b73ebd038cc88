"""The tamper-evident enquiry log: rows, hash chain, group commit, checkpoints."""
