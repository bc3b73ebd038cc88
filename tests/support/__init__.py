"""Helpers the tests share: databases on both backends, node processes and their CLI."""
