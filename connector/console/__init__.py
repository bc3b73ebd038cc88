"""The operator console: accounts, sessions, and the pages served on listen.console."""
