"""A running node: its value, live state, the two aiohttp apps and the service."""
